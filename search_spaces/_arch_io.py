"""Saving and loading architectures as JSON files."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hetero.devices._atomic import atomic_path
from hetero.search_spaces._errors import ArchError
from hetero.search_spaces._registry import get_space
from hetero.search_spaces._space import Arch, SearchSpace

__all__ = ["load_arch", "save_arch"]


def _space_of(arch: Mapping[str, Any], space: SearchSpace | None) -> SearchSpace:
    if space is not None:
        return space
    if not isinstance(arch, Mapping) or "space" not in arch:
        raise ArchError('an architecture must be a JSON object with a "space" key')
    return get_space(arch["space"])


def save_arch(
    arch: Mapping[str, Any], path: str | os.PathLike[str], space: SearchSpace | None = None
) -> Path:
    """Validate ``arch`` and write it to ``path`` as JSON, atomically.

    Args:
        arch: The architecture.
        path: The file to write; missing parent folders are created.
        space: The space to validate against; by default the registered space named by
            ``arch["space"]`` with its default constructor arguments.

    Returns:
        The path written.

    Raises:
        ArchError: If the architecture is invalid.
    """
    _space_of(arch, space).validate(arch)
    target = Path(path)
    with atomic_path(target) as tmp:  # devices' atomic writer, the one for every package
        tmp.write_text(json.dumps(dict(arch), indent=2) + "\n", encoding="utf-8")
    return target


def load_arch(path: str | os.PathLike[str], space: SearchSpace | None = None) -> Arch:
    """Read and validate an architecture written by :func:`save_arch` (or by hand).

    Args:
        path: The JSON file.
        space: The space to validate against; by default the registered space named by the
            file's ``"space"`` key with its default constructor arguments.

    Returns:
        The architecture.

    Raises:
        ArchError: If the file is missing, is not JSON, or holds an invalid architecture; the
            message names the file.
    """
    p = Path(path)
    if not p.is_file():
        raise ArchError(f"architecture file {p} does not exist: check the path")
    try:
        arch = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArchError(f"architecture file {p} is not valid JSON ({exc}): fix or regenerate it") from None
    try:
        _space_of(arch, space).validate(arch)
    except ArchError as exc:
        raise ArchError(f"architecture file {p}: {exc}") from None
    return arch
