"""Checking a JSON document's keys against the TypedDict that is its schema (manifest, report)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["check_keys"]


def check_keys(schema: Any, document: Mapping[str, Any], owner: str) -> None:
    """Raise when ``document`` lacks a required key of ``schema`` or has a key ``schema`` does not name.

    Args:
        schema: a TypedDict class (its ``__required_keys__`` and ``__optional_keys__`` are read).
        document: the dict about to be written.
        owner: what writes it, for the message (the mismatch is a bug there, not bad input).

    Raises:
        ValueError: naming the missing and the unknown keys.
    """
    missing = sorted(schema.__required_keys__ - set(document))
    unknown = sorted(set(document) - schema.__required_keys__ - schema.__optional_keys__)
    if missing or unknown:
        raise ValueError(f"{owner} keys out of step with {schema.__module__}.{schema.__qualname__}: "
                         f"missing {missing}, unknown {unknown}")
