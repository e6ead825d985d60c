"""A 2-d map of latent codes (t-SNE), failures coloured by group, like the Defuse article's figure."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from hetero._io import atomic_path

__all__ = ["embed_2d", "latent_map"]

#: Codes that are not failures drawn at most (grey context; t-SNE's cost grows with the points).
_CONTEXT = 1500


def embed_2d(codes: np.ndarray, seed: int = 0) -> np.ndarray:
    """t-SNE coordinates ``[n, 2]`` of ``codes`` (PCA for fewer than 5 points, where t-SNE cannot run)."""
    x = np.asarray(codes, dtype=np.float64)
    if len(x) < 5:
        if len(x) < 2:
            return np.zeros((len(x), 2))
        centred = x - x.mean(0)
        vt = np.linalg.svd(centred, full_matrices=False)[2]
        out = centred @ vt[:2].T
        return np.pad(out, ((0, 0), (0, 2 - out.shape[1])))
    from sklearn.manifold import TSNE

    perplexity = float(min(30.0, (len(x) - 1) / 3))
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(x)


def latent_map(codes: np.ndarray, kept: np.ndarray, groups: np.ndarray, path: str | os.PathLike[str],
               seed: int = 0, title: str = "") -> Path:
    """Draw the t-SNE map of generated codes to a PNG: kept failures coloured by group, the rest grey.

    Args:
        codes: ``[M, latent_dim]`` every generated image's code.
        kept: ``[M]`` which are failures.
        groups: ``[kept.sum()]`` the group of each failure (in the order of ``codes[kept]``).
        path: the PNG to write.
        seed: fixes t-SNE and the sample of grey context codes.
        title: the figure's title.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kept = np.asarray(kept, dtype=bool)
    failures = np.flatnonzero(kept)
    rest = np.flatnonzero(~kept)
    rest = np.random.default_rng(seed).permutation(rest)[:_CONTEXT]
    xy = embed_2d(np.concatenate([codes[rest], codes[failures]]), seed)
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    ax.scatter(xy[: len(rest), 0], xy[: len(rest), 1], s=4, c="lightgrey", label="not a failure (sample)")
    cmap = plt.get_cmap("tab10" if int(groups.max(initial=0)) < 10 else "tab20")
    for g in range(int(groups.max(initial=-1)) + 1):
        pts = xy[len(rest) :][groups == g]
        ax.scatter(pts[:, 0], pts[:, 1], s=9, color=cmap(g % cmap.N), label=f"group {g + 1} ({len(pts)})")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title or "t-SNE of generated latent codes", fontsize=10)
    ax.legend(fontsize=7, markerscale=2, loc="best")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return Path(path)
