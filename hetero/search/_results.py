"""A study's trials as plain rows, their Pareto front, the finalists (and the default's trial) and the evaluation rates."""

from __future__ import annotations

import statistics

import optuna

from hetero.search._knobs import KNOBS

__all__ = ["trial_rows", "pareto_front", "best_feasible", "default_row", "rates", "ROW_ATTRS"]

#: User attributes of a trial copied into its row.
ROW_ATTRS = ("cross_map", "homogeneous_map", "macs", "params", "artifact_bytes", "latency_ms", "feasible",
             "constraints", "seconds", "epochs_trained", "epoch_seconds", "pruned_because", "reference", "worker")


def trial_rows(study: optuna.Study, space) -> list[dict]:
    """Every trial of a search study: number, state, architecture, knobs and recorded figures."""
    rows = []
    arch_keys = list(space.choices())
    for t in study.get_trials(deepcopy=False):
        arch = {"space": space.name, **{k: t.params[k] for k in arch_keys}} if all(k in t.params for k in arch_keys) else None
        rows.append({
            "number": t.number,
            "state": t.state.name,
            "arch": arch,
            "knobs": {k: t.params[k] for k in KNOBS if k in t.params},
            **{k: t.user_attrs.get(k) for k in ROW_ATTRS},
            "retry_of": t.system_attrs.get("failed_trial"),
        })
    return rows


def _scored(rows: list[dict], cost_key: str) -> list[dict]:
    return [r for r in rows if r["state"] == "COMPLETE" and r.get("cross_map") is not None and r.get(cost_key) is not None]


def pareto_front(rows: list[dict], cost_key: str = "macs") -> list[dict]:
    """Complete trials no other complete trial beats on both cross mAP (higher) and cost (lower).

    Returns:
        The front, cheapest first.
    """
    front: list[dict] = []
    best = float("-inf")
    for r in sorted(_scored(rows, cost_key), key=lambda r: (r[cost_key], -r["cross_map"], r["number"])):
        if r["cross_map"] > best:
            front.append(r)
            best = r["cross_map"]
    return front


def best_feasible(rows: list[dict], k: int, cost_key: str = "macs") -> list[dict]:
    """``k`` complete trials under every budget, best first by Pareto rank, then by cross mAP.

    The first Pareto front of the feasible trials comes first (its best-scoring member leads),
    then the front of what is left, and so on: the finalists spread over the costs the budget
    allows instead of crowding at one size. A repeated architecture counts once.
    """
    left = [r for r in _scored(rows, cost_key) if r.get("feasible")]
    picked: list[dict] = []
    seen: set[str] = set()
    while left and len(picked) < k:
        front = pareto_front(left, cost_key)
        for r in sorted(front, key=lambda r: (-r["cross_map"], r[cost_key], r["number"])):
            key = repr(sorted(r["arch"].items()))
            if key not in seen:
                picked.append(r)
                seen.add(key)
        numbers = {r["number"] for r in front}
        left = [r for r in left if r["number"] not in numbers]
    return picked[:k]


def default_row(rows: list[dict], cost_key: str = "macs") -> dict | None:
    """The complete search trial of the space's default architecture, if it is under every budget.

    ``run_search`` enqueues the default as the study's first trial (user attribute
    ``reference="default"``); the final phase makes it a finalist so the pick competes with it.
    """
    for r in _scored(rows, cost_key):
        if r.get("reference") == "default" and r.get("feasible"):
            return r
    return None


def rates(rows: list[dict]) -> dict:
    """How fast the trials went: seconds per architecture and architectures per minute.

    ``seconds_per_complete`` is the mean duration of a complete trial (a full evaluation);
    ``per_minute`` counts every finished trial (pruned ones too) over the time trials took.
    """
    complete = [r["seconds"] for r in rows if r["state"] == "COMPLETE" and r.get("seconds")]
    finished = [r["seconds"] for r in rows if r["state"] in ("COMPLETE", "PRUNED") and r.get("seconds")]
    out: dict[str, float] = {"complete": len(complete), "finished": len(finished)}
    if complete:
        out["seconds_per_complete"] = statistics.fmean(complete)
    if finished:
        out["per_minute"] = 60.0 * len(finished) / sum(finished)
    return out
