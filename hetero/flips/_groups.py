"""Group negative flips by what the inputs look like to the reference model.

The features are the reference (cloud / old) model's embeddings of the flipped queries: inputs the
reference sees as alike land in one group, so a group reads as "this kind of input breaks".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["FlipGroups", "group_flips"]

#: Silhouette is O(n^2): score at most this many points (a seeded sample) per k.
_SILHOUETTE_SAMPLE = 2000


@dataclass
class FlipGroups:
    """A partition of the flipped queries.

    Attributes:
        labels: ``[n]`` group of each flipped query, groups numbered by size (0 is the largest).
        k: number of groups.
        scores: silhouette score per k tried (empty when too few flips to choose).
        centers: ``[k, D]`` unit mean feature of each group.
    """

    labels: np.ndarray
    k: int
    scores: dict[int, float]
    centers: np.ndarray

    def members(self, group: int) -> np.ndarray:
        """Positions (into the flipped queries) of ``group``'s members, in query order."""
        return np.flatnonzero(self.labels == group)

    def ordered_members(self, group: int, features: np.ndarray) -> np.ndarray:
        """``group``'s members sorted by cosine to the group's centre, highest first."""
        idx = self.members(group)
        sims = _unit(features[idx]) @ self.centers[group]
        return idx[np.argsort(-sims, kind="stable")]


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def group_flips(features: np.ndarray, k_min: int = 2, k_max: int = 8, seed: int = 0) -> FlipGroups:
    """Cluster ``features`` with k-means, choosing k in ``k_min..k_max`` by silhouette.

    Args:
        features: ``[n, D]`` the reference model's embeddings of the flipped queries (cosine
            geometry: rows are normalised, so Euclidean k-means ranks like cosine).
        k_min, k_max: the numbers of groups tried; capped at ``n - 1`` (silhouette needs it).
        seed: fixes k-means' initialisation and the silhouette sample.

    Returns:
        The groups. Fewer than ``k_min + 1`` flips form a single group.
    """
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score

    x = _unit(features)
    n = len(x)
    if n == 0:
        return FlipGroups(np.zeros(0, dtype=np.int64), 0, {}, np.zeros((0, x.shape[1] if x.ndim == 2 else 0)))
    best_k, best_labels, scores = 1, np.zeros(n, dtype=np.int64), {}
    top = min(k_max, n - 1)
    best_score = -np.inf
    for k in range(k_min, top + 1):
        labels = KMeans(n_clusters=k, n_init=4, random_state=seed).fit_predict(x)
        if np.unique(labels).size != k:  # duplicate points: k-means found fewer groups
            continue
        score = float(
            silhouette_score(x, labels, sample_size=min(n, _SILHOUETTE_SAMPLE), random_state=seed)
        )
        scores[k] = score
        if score > best_score:
            best_k, best_labels, best_score = k, labels, score
    # Number groups by size, largest first, so "group 1" on the page is the biggest failure mode.
    sizes = np.bincount(best_labels, minlength=best_k)
    rank = np.empty(best_k, dtype=np.int64)
    rank[np.argsort(-sizes, kind="stable")] = np.arange(best_k)
    labels = rank[best_labels]
    centers = _unit(np.stack([x[labels == g].mean(0) for g in range(best_k)]))
    return FlipGroups(labels, best_k, scores, centers)
