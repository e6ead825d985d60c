"""Parity of an artifact's embeddings with its PyTorch model's (DESIGN.md "Metrics"), numpy only.

Only the per-row figures live here, so a device can compute them; retrieval figures
(``top1_agreement``, ``top1_item_agreement``, ``nfr``) need a gallery and labels and belong to ``hetero.metrics``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["parity"]


def parity(reference: np.ndarray, candidate: np.ndarray) -> dict[str, float]:
    """Compare two embeddings of the same inputs, row by row.

    Args:
        reference: ``[N, D]`` embeddings from the PyTorch model.
        candidate: ``[N, D]`` embeddings from the runtime.

    Returns:
        ``cos_min`` and ``cos_mean`` (cosine per row) and ``max_abs`` (largest elementwise
        difference).

    Raises:
        ValueError: The arrays are not two ``[N, D]`` arrays of one shape.
    """
    reference = np.asarray(reference, dtype=np.float64)
    candidate = np.asarray(candidate, dtype=np.float64)
    if reference.shape != candidate.shape or reference.ndim != 2 or not len(reference):
        raise ValueError(f"embeddings must be two [N, D] arrays of one shape, got "
                         f"{list(reference.shape)} and {list(candidate.shape)}")
    norms = np.linalg.norm(reference, axis=1) * np.linalg.norm(candidate, axis=1)
    cos = np.sum(reference * candidate, axis=1) / np.maximum(norms, 1e-12)
    return {"cos_min": float(cos.min()), "cos_mean": float(cos.mean()),
            "max_abs": float(np.abs(reference - candidate).max())}
