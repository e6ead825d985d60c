"""The correction sweep as a figure: held-out failure accuracy and the original test top-1 per lambda."""

from __future__ import annotations

import os
from pathlib import Path

from hetero._io import atomic_path

__all__ = ["correction_plot"]


def correction_plot(rows: list[dict], path: str | os.PathLike[str], title: str = "") -> Path:
    """Write a PNG: failure-group accuracy (held-out generated failures) and test top-1 against lambda.

    Args:
        rows: :func:`hetero.defuse.correction_sweep`'s rows.
        path: the PNG to write.
        title: the figure's title.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lams = [r["lambda"] for r in rows]
    fig, left = plt.subplots(figsize=(6.0, 4.0))
    left.plot(lams, [100 * r["failure_accuracy"] for r in rows], "o-", color="tab:red", label="held-out failures")
    left.set_xlabel("lambda (share of generated failures in the fine-tuning mix)")
    left.set_ylabel("failure-group accuracy (%)", color="tab:red")
    right = left.twinx()
    right.plot(lams, [100 * r["test_top1"] for r in rows], "s--", color="tab:blue", label="original test top-1")
    before = rows[0]["test_before"]["top1"] if rows else None
    if before is not None:
        right.axhline(100 * before, color="tab:blue", linewidth=0.8, alpha=0.5)
    right.set_ylabel("original test top-1 (%)  (line: before fine-tuning)", color="tab:blue")
    left.set_title(title or "Defuse correction sweep", fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return Path(path)
