"""Rank the oneshot search's best candidates by a short fine-tuning before choosing the finalists.

Scores with inherited weights order subnets only roughly: on Omniglot (20 subnets across the
space) they agree with fine-tuned scores at Kendall tau +0.58, while two epochs of fine-tuning from
the inherited weights (a third of the six-epoch fine-tuning) agree at +0.79, above two fine-tunings
of the same subnets with different seeds (+0.71); on 40 subnets and three supernet seeds, +0.59 to
+0.66 against +0.73 to +0.77, with +0.77 to +0.80 between fine-tunings (benchmarks/README.md,
"Kendall tau"). So the best ``rerank_candidates`` architectures under the budget (by the search's
scores) are each fine-tuned ``rerank_epochs`` epochs from their inherited weights with the default
knobs, and the finalists are chosen among them by that score. Each short fine-tuning's scores are
saved in ``RUN/rerank/`` as it finishes: a resumed run trains only those it lacks.
"""

from __future__ import annotations

import time

from hetero._io import read_json, write_json
from hetero.runtime import progress
from hetero.search._knobs import knobs_of
from hetero.search._ranking import kendall_tau
from hetero.search._storage import run_lock

__all__ = ["RERANK_DIR", "RERANK_SEED_OFFSET", "rerank_epochs", "rerank_candidates", "describe_rerank", "rerank_line"]

RERANK_DIR = "rerank"
#: Added to the search seed for a short fine-tuning: its own batch order, not the fine-tuning's cut short.
RERANK_SEED_OFFSET = 1000


def rerank_epochs(config) -> int:
    """Epochs of a candidate's short fine-tuning: ``config.rerank_epochs``, or a third of the fine-tuning's (at least 1).

    0 for standalone searches (their trials are trained already) and when reranking is off.
    """
    if config.strategy != "oneshot" or not config.rerank_candidates:
        return 0
    if config.rerank_epochs is not None:
        return config.rerank_epochs
    return max(1, round((config.final_epochs or 3) / 3))


def rerank_candidates(run, candidates: list[dict], train_short) -> list[dict]:
    """``candidates`` (search rows) with ``cross_map`` replaced by a short fine-tuning's score.

    Args:
        run: The search run.
        candidates: The search's best rows under the budget.
        train_short: ``(arch, epochs) -> scores``: fine-tunes ``arch`` from its inherited weights.

    Returns:
        The rows, each also keeping its search score as ``search_cross_map`` and the short
        fine-tuning's scores as ``rerank``.
    """
    epochs = rerank_epochs(run.config)
    folder = run.run_dir / RERANK_DIR
    out = []
    # One process trains them (another worker waits, then reads the saved scores).
    with run_lock(run.run_dir / ".rerank.lock"):
        for row in progress(candidates, desc=f"rerank ({epochs} epochs each)", unit="arch"):
            key = {"study": run.study_name, "arch": row["arch"], "epochs": epochs, "knobs": knobs_of(run.base),
                   "final_epochs": run.config.final_epochs, "seed": run.config.seed}
            path = folder / f"trial-{row['number']}.json"
            saved = read_json(path) if path.exists() else None
            if saved is None or saved.get("key") != key:
                start = time.perf_counter()
                scores = train_short(row["arch"], epochs)
                saved = {"key": key, "val": scores, "seconds": time.perf_counter() - start}
                write_json(path, saved)
            out.append({**row, "search_cross_map": row["cross_map"], "cross_map": saved["val"]["cross_map"],
                        "rerank": {**saved["val"], "seconds": saved["seconds"], "epochs": epochs}})
    return out


def describe_rerank(rows: list[dict]) -> dict:
    """What the reranking did: each candidate's two scores and the rank correlation between them."""
    pairs = [{"search_trial": r["number"], "search": r["search_cross_map"], "rerank": r["cross_map"]} for r in rows]
    return {"candidates": pairs, "epochs": rows[0]["rerank"]["epochs"] if rows else 0,
            "seconds": sum(r["rerank"]["seconds"] for r in rows),
            "kendall_tau_search_vs_rerank": kendall_tau([p["search"] for p in pairs], [p["rerank"] for p in pairs])}


def rerank_line(info: dict) -> str:
    """One line on the reranking (what :func:`describe_rerank` returned)."""
    n, tau = len(info["candidates"]), info["kendall_tau_search_vs_rerank"]
    agree = "" if tau is None else f"; their inherited-weight and short fine-tuning orders agree at Kendall tau {tau:+.2f}"
    return (f"rerank: the best {n} candidates fine-tuned {info['epochs']} epochs each from inherited weights "
            f"({info['seconds']:.0f} s) to choose the finalists{agree}")
