"""Atomic file writing: an interrupted run never leaves a half-written file behind."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

# The one atomic writer lives in the lowest layer; hetero re-exports it.
from hetero.devices._atomic import atomic_path

__all__ = ["atomic_path", "write_json", "write_text", "save_npy", "read_json"]


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(path: str | os.PathLike[str], data: Any) -> Path:
    """Write ``data`` as indented JSON atomically."""
    return write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def read_json(path: str | os.PathLike[str]) -> Any:
    """Read a JSON file, turning a missing or malformed file into a :class:`UserError`."""
    from hetero.errors import UserError

    p = Path(path)
    if not p.is_file():
        raise UserError(f"{p} does not exist: check the path")
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{p} is not valid JSON ({exc}): regenerate or fix the file") from None


def save_npy(path: str | os.PathLike[str], array: np.ndarray) -> Path:
    """Save a NumPy array atomically (``np.save`` would append ``.npy`` to a temp name)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, array)
    return Path(path)
