"""Grouping the kept failures' latent codes into "model bugs" (Defuse, step 3).

A Gaussian mixture under a Dirichlet-process prior (scikit-learn's ``BayesianGaussianMixture``):
the number of groups is not known in advance, so up to ``max_groups`` components are fitted and
the prior leaves the unneeded ones (nearly) empty. The groups are the components that hold at least
one code, numbered by size (group 0 the largest).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hetero.errors import UserError

__all__ = ["LatentGroups", "group_codes"]


@dataclass
class LatentGroups:
    """A partition of latent codes.

    Attributes:
        labels: ``[n]`` the group of each code, numbered by size (0 the largest).
        k: the number of groups (components holding at least one code).
        weights: ``[k]`` the mixture weight of each group's component.
        means: ``[k, latent_dim]`` its mean.
        converged: whether the variational fit converged.
    """

    labels: np.ndarray
    k: int
    weights: np.ndarray
    means: np.ndarray
    converged: bool

    def counts(self) -> list[int]:
        """Codes per group, in group order."""
        return np.bincount(self.labels, minlength=self.k).tolist() if self.k else []

    def ordered_members(self, group: int, codes: np.ndarray) -> np.ndarray:
        """Positions of ``group``'s codes, the nearest its mean (the most typical) first."""
        members = np.flatnonzero(self.labels == group)
        distance = np.linalg.norm(codes[members] - self.means[group], axis=1)
        return members[np.argsort(distance, kind="stable")]


def group_codes(codes: np.ndarray, max_groups: int = 10, seed: int = 0, concentration: float | None = None) -> LatentGroups:
    """Fit a Dirichlet-process Gaussian mixture to ``codes`` and return its non-empty groups.

    Args:
        codes: ``[n, latent_dim]`` latent codes of the kept failures.
        max_groups: components fitted (the most groups found).
        seed: fixes the fit.
        concentration: the Dirichlet process's concentration (smaller: fewer groups); default
            scikit-learn's ``1 / max_groups``.
    """
    if max_groups < 1:
        raise UserError(f"--max-groups {max_groups} must be at least 1")
    x = np.asarray(codes, dtype=np.float64)
    n = len(x)
    dim = x.shape[1] if x.ndim == 2 else 0
    if n == 0:
        return LatentGroups(np.zeros(0, dtype=np.int64), 0, np.zeros(0), np.zeros((0, dim)), True)
    if n < 3:  # too few codes to fit a mixture: one group
        return LatentGroups(np.zeros(n, dtype=np.int64), 1, np.ones(1), x.mean(0, keepdims=True), True)
    from sklearn.mixture import BayesianGaussianMixture

    mixture = BayesianGaussianMixture(
        n_components=min(max_groups, n - 1), weight_concentration_prior_type="dirichlet_process",
        weight_concentration_prior=concentration, covariance_type="diag", max_iter=500, n_init=1,
        init_params="k-means++", random_state=seed,
    ).fit(x)
    raw = mixture.predict(x)
    used, counts = np.unique(raw, return_counts=True)
    order = used[np.argsort(-counts, kind="stable")]
    rank = {int(c): i for i, c in enumerate(order)}
    labels = np.array([rank[int(c)] for c in raw], dtype=np.int64)
    return LatentGroups(labels, len(order), mixture.weights_[order], mixture.means_[order], bool(mixture.converged_))
