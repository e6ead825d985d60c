"""Parity of an artifact's embeddings with its PyTorch model's, as DESIGN.md "Metrics" defines it."""

from __future__ import annotations

import numpy as np

__all__ = ["parity"]


def parity(reference: np.ndarray, candidate: np.ndarray) -> dict[str, float]:
    """Compare two embeddings of the same inputs, row by row.

    Args:
        reference: ``[N, D]`` embeddings from the PyTorch model.
        candidate: ``[N, D]`` embeddings from the runtime.

    Returns:
        ``cos_min`` and ``cos_mean`` (cosine per row), ``max_abs`` (largest elementwise
        difference) and ``top1_agreement``: the fraction of rows whose nearest other row (dot
        product, itself excluded) is the same under both; 1.0 when N < 2.
    """
    reference = np.asarray(reference, dtype=np.float64)
    candidate = np.asarray(candidate, dtype=np.float64)
    if reference.shape != candidate.shape or reference.ndim != 2:
        raise ValueError(f"embeddings must be two [N, D] arrays of one shape, got "
                         f"{list(reference.shape)} and {list(candidate.shape)}")
    norms = np.linalg.norm(reference, axis=1) * np.linalg.norm(candidate, axis=1)
    cos = np.sum(reference * candidate, axis=1) / np.maximum(norms, 1e-12)
    agreement = 1.0
    if len(reference) > 1:
        nearest = []
        for emb in (reference, candidate):
            sim = emb @ emb.T
            np.fill_diagonal(sim, -np.inf)
            nearest.append(sim.argmax(axis=1))
        agreement = float(np.mean(nearest[0] == nearest[1]))
    return {"cos_min": float(cos.min()), "cos_mean": float(cos.mean()),
            "max_abs": float(np.abs(reference - candidate).max()), "top1_agreement": agreement}
