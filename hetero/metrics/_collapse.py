"""Collapsed embeddings: a model that maps (nearly) every image to the same direction.

A collapsed model still produces finite, normalised embeddings, so parity checks pass and mAP is
a number; but its rankings are ties or noise. Two label-free signals catch it:

- the **spread of pairwise cosines** (their standard deviation over distinct pairs): a healthy
  embedding puts same-class pairs near 1 and other pairs far lower, so the cosines spread over
  tenths; collapsed ones all sit within a hair of one value;
- the **effective rank** (Roy & Vetterli, 2007) of the L2-normalised embedding matrix: the
  exponential of the entropy of its normalised singular values. Identical rows give 1; a healthy
  embedding of k classes spreads over at least about min(k, D) directions.

Thresholds (``MIN_COSINE_SPREAD``, ``MIN_EFFECTIVE_RANK``) sit far below any trained model and
far above a collapsed one: the collapsed face model of issue 14 had every pairwise cosine within
2e-6 of 1 (spread ~1e-6, rank ~1), while two classes whose centres have cosine 0.9 already spread
their cosines by 0.05 with rank 1.6.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from hetero.errors import UserError
from hetero.metrics._retrieval import check_embeddings, l2_normalize

__all__ = ["CollapseCheck", "embedding_collapse", "MIN_COSINE_SPREAD", "MIN_EFFECTIVE_RANK"]

# Below either figure the embeddings are called collapsed (see the module docstring).
MIN_COSINE_SPREAD = 0.02
MIN_EFFECTIVE_RANK = 1.5
# Pairwise cosines of at most this many rows: 2000^2 floats is 16 MB and the spread's estimate
# is already exact to the third decimal.
_MAX_ROWS = 2000


@dataclass(frozen=True)
class CollapseCheck:
    """The verdict and the figures behind it.

    Attributes:
        collapsed: Whether the embeddings are degenerate.
        cosine_spread: Standard deviation of the cosines of distinct pairs.
        cosine_mean: Mean cosine of distinct pairs (near 1 when collapsed to one direction).
        effective_rank: exp(entropy of the normalised singular values), between 1 and min(N, D).
        dim: Embedding dimension (the effective rank's ceiling).
        reason: One sentence saying why it is collapsed; empty when it is not.
    """

    collapsed: bool
    cosine_spread: float
    cosine_mean: float
    effective_rank: float
    dim: int
    reason: str

    def to_dict(self) -> dict[str, object]:
        """The figures as JSON-ready values (report.json's ``collapse``)."""
        return asdict(self)


def _sample_rows(x: np.ndarray, limit: int, seed: int) -> np.ndarray:
    """At most ``limit`` rows, picked with a fixed seed so the verdict is reproducible."""
    if len(x) <= limit:
        return x
    return x[np.sort(np.random.default_rng(seed).choice(len(x), limit, replace=False))]


def embedding_collapse(
    embeddings: np.ndarray,
    min_spread: float = MIN_COSINE_SPREAD,
    min_rank: float = MIN_EFFECTIVE_RANK,
    name: str = "embeddings",
    seed: int = 0,
) -> CollapseCheck:
    """Decide whether ``embeddings`` are collapsed.

    Args:
        embeddings: ``[N, D]`` float embeddings (normalised here), N >= 2.
        min_spread: Collapsed when the pairwise cosines' standard deviation is below this.
        min_rank: Collapsed when the effective rank is below this.
        name: What the embeddings are, for the messages.
        seed: Picks the rows when there are more than 2000.

    Returns:
        The verdict with the cosine spread, mean cosine and effective rank.

    Raises:
        UserError: If the matrix is not a finite 2-D float array or has fewer than 2 rows.
    """
    x = check_embeddings(embeddings, name)
    if len(x) < 2:
        raise UserError(f"{name}: a collapse check needs at least 2 embeddings, got {len(x)}")
    x = l2_normalize(_sample_rows(x, _MAX_ROWS, seed)).astype(np.float64)
    n = len(x)
    sims = x @ x.T
    off = sims[~np.eye(n, dtype=bool)]
    spread, mean = float(off.std()), float(off.mean())
    singular = np.linalg.svd(x, compute_uv=False)
    p = singular / max(float(singular.sum()), 1e-300)
    p = p[p > 0]
    rank = float(np.exp(-(p * np.log(p)).sum()))
    reasons = []
    if spread < min_spread:
        reasons.append(f"pairwise cosines spread by only {spread:.2g} (std; mean {mean:.4f}, healthy >= {min_spread})")
    if rank < min_rank:
        reasons.append(f"effective rank {rank:.2f} of {x.shape[1]} dims (healthy >= {min_rank})")
    reason = f"{name} are collapsed: " + "; ".join(reasons) if reasons else ""
    return CollapseCheck(
        collapsed=bool(reasons),
        cosine_spread=spread,
        cosine_mean=mean,
        effective_rank=rank,
        dim=int(x.shape[1]),
        reason=reason,
    )
