"""Reading and writing hetero's model files (``cloud.pt``, ``edge.pt``) safely.

The files hold only tensors and plain data, so they load with ``torch.load(weights_only=True)``:
opening a model file never runs code from it.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch

from hetero._io import atomic_path
from hetero.errors import UserError

__all__ = ["save_model_file", "load_model_file", "fingerprint"]


def save_model_file(path: str | os.PathLike[str], payload: dict[str, Any]) -> Path:
    """``torch.save`` to a temporary file, then rename: a crash never leaves half a model."""
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def load_model_file(path: str | os.PathLike[str], expected_format: str, what: str) -> dict[str, Any]:
    """Load a model file written by :func:`save_model_file` and check its format tag.

    Args:
        path: the file, or a folder holding it under its usual name.
        expected_format: the ``format`` tag it must carry (e.g. ``"hetero.cloud/1"``).
        what: how to name the file in messages (``"cloud model"``).
    """
    p = Path(path)
    if not p.exists():
        raise UserError(f"{what} {p} does not exist: check the path (or create it with hetero {what.split()[0]} ...)")
    try:
        payload = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises RuntimeError, pickle errors, EOFError... for a bad file
        raise UserError(f"{what} {p} is corrupt or truncated ({type(exc).__name__}); re-create or re-copy it") from None
    if not isinstance(payload, dict) or payload.get("format") != expected_format:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise UserError(f"{p} is not a hetero {what} (format {found!r}, expected {expected_format!r})")
    return payload


def fingerprint(state_dict: dict[str, torch.Tensor], preprocess: dict, embed_dim: int) -> str:
    """sha256 over the weights, the preprocessing and the embedding dim (DESIGN.md).

    Two models share a fingerprint only if they embed every image identically, so a gallery
    indexed by one model can be checked against the model a query comes from.
    """
    h = hashlib.sha256()
    for name in sorted(state_dict):
        tensor = state_dict[name].detach().cpu().contiguous()
        h.update(name.encode())
        h.update(str(tensor.dtype).encode())
        h.update(str(tuple(tensor.shape)).encode())
        h.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    keys = ("size", "channels", "mean", "std")
    h.update(json.dumps({k: preprocess[k] for k in keys}, sort_keys=True).encode())
    h.update(str(int(embed_dim)).encode())
    return "sha256:" + h.hexdigest()
