"""Which fine-tuned model the search picks: the best on validation, if it surely beats the default.

The final phase ends with several fine-tuned models, the hand-picked default architecture trained
with the default knobs (the *reference*) among them when it is under the budget. Ranking them by
validation cross mAP alone is a coin flip between models that differ by less than the validation
part can tell apart: where the cloud model trained on the validation images (they come from the
training split), their cloud gallery is so tightly clustered that every candidate scores 0.99 and
the differences are a few queries. On digits, a subnet 0.0037 ahead of the reference on validation
came out 0.0005 behind it on the test split. So a searched model replaces the reference only when
a paired bootstrap over the validation queries (both models score the same queries) is at least
``confidence`` sure that it is better; otherwise the pick is the reference itself, and the search
says which challenger came closest and how sure it was.

Among models that clear the bar, the best on validation wins: highest cross mAP, an exact tie to
the higher *alignment* (mean cosine between the edge and the cloud embedding of the same
validation image), then to the earlier trial.
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np

from hetero.metrics import probability_better

__all__ = ["choose_best", "choose_pick", "describe_choice", "describe_test_gain", "encode_scores", "decode_scores", "reference_label",
           "test_gain"]


def _rank(trial: dict) -> tuple[float, float, int]:
    alignment = float("-inf") if trial.get("alignment") is None else trial["alignment"]
    return trial["cross_map"], alignment, -trial["number"]


def choose_best(trials: list[dict]) -> dict:
    """The best trial on validation: highest cross mAP, exact ties broken by alignment.

    Args:
        trials: Complete final trials, each with ``number``, ``cross_map`` and ``alignment``
            (``None`` where it was not recorded: it then loses the tie).

    Returns:
        The trial with the highest cross mAP; of those tied, the highest alignment, then the earliest.
    """
    if not trials:
        raise ValueError("choose_best needs at least one trial")
    return max(trials, key=_rank)


def choose_pick(trials: list[dict], reference: int | None, confidence: float) -> tuple[dict, dict[str, Any]]:
    """The pick: the best trial on validation among those surely better than the reference.

    Args:
        trials: Complete final trials as for :func:`choose_best`, each also with ``val_ap``: the
            per-query validation AP (``None`` where it was not recorded: it cannot challenge).
        reference: The number of the trial that is the reference (default architecture, default
            knobs), or ``None`` where there is none (the default is over the budget).
        confidence: How sure the paired bootstrap must be that a trial beats the reference; 0
            takes the best on validation.

    Returns:
        The chosen trial, and how it was chosen: ``rule``, and where a reference took part, the
        ``required`` confidence, the ``challenger`` (the trial that won or came closest) and the
        ``confidence`` that it beats the reference.
    """
    best = choose_best(trials)
    by_number = {t["number"]: t for t in trials}
    if reference is None or reference not in by_number or confidence <= 0:
        return best, {"rule": "best on validation" + ("" if reference is None else " (no confidence required)")}
    ref = by_number[reference]
    if best is ref:
        return ref, {"rule": "the reference is the best on validation", "required": confidence}
    if ref.get("val_ap") is None:  # a study from before per-query scores were kept
        return best, {"rule": "best on validation (the reference has no per-query scores)"}
    closest: tuple[float, dict] | None = None
    for trial in sorted(trials, key=_rank, reverse=True):
        if trial is ref:
            break  # the rest score below the reference on validation
        if trial.get("val_ap") is None:
            continue
        sure = probability_better(decode_scores(trial["val_ap"]), decode_scores(ref["val_ap"]))
        if sure >= confidence:
            return trial, {"rule": "best on validation that surely beats the reference", "required": confidence,
                           "challenger": trial["number"], "confidence": sure}
        if closest is None or sure > closest[0]:
            closest = (sure, trial)
    info: dict[str, Any] = {"rule": "kept the reference: no trial surely beats it", "required": confidence}
    if closest is not None:
        info.update(challenger=closest[1]["number"], confidence=closest[0])
    return ref, info


def reference_label(reference: dict | None, searched_space: str) -> str:
    """What the report calls the reference: the default architecture, with its space where it is not the searched one
    (``None`` where there is no reference: the plain name)."""
    space = ((reference or {}).get("arch") or {}).get("space", searched_space)
    return "default architecture" + ("" if space == searched_space else f" ({space}, as hetero train builds it)")


def describe_choice(pick: dict) -> str:
    """One line on why the pick (``search.json``'s ``pick``) was chosen."""
    choice = pick.get("choice", {})
    sure = closest = ""
    if "confidence" in choice:
        sure = f"{choice['confidence']:.0%} sure (required {choice['required']:.0%}, paired bootstrap over the validation queries)"
        closest = f"the closest, final trial {choice['challenger']}, is {sure}"
    if pick.get("final_trial") is None:  # the reference itself, trained apart from the final trials
        return f"the default architecture with the default knobs, {choice.get('rule', 'the best on validation')}" + (f"; {closest}" if closest else "")
    which = f"final trial {pick['final_trial']} (search trial {pick['search_trial']})"
    if not sure:
        return f"{which}, {choice.get('rule', 'best on validation')}"
    if choice["challenger"] == pick["final_trial"]:
        return f"{which}, the best on validation that beats the default architecture: {sure}"
    return f"{which}: the default architecture with the default knobs, kept because no fine-tuned model surely beats it; {closest}"


def test_gain(pick_ap: np.ndarray, reference_ap: np.ndarray) -> dict[str, float] | None:
    """The pick against the reference on the test queries, which neither the search nor the choice saw.

    Args:
        pick_ap: ``[N]`` each test query's cross AP with the pick (NaN where it does not count).
        reference_ap: The same queries' with the reference.

    Returns:
        ``cross_map_gain`` (points of cross mAP, the pick's minus the reference's), ``confidence``
        (how sure a paired bootstrap over the test queries is that the pick is better) and
        ``queries``; ``None`` where the pick is the reference's model itself.
    """
    a, b = np.asarray(pick_ap, dtype=np.float64), np.asarray(reference_ap, dtype=np.float64)
    if np.array_equal(a, b, equal_nan=True):
        return None
    counted = ~(np.isnan(a) | np.isnan(b))
    return {"cross_map_gain": float(100 * (a[counted].mean() - b[counted].mean())), "confidence": probability_better(a, b),
            "queries": int(counted.sum())}


def describe_test_gain(gain: dict, label: str) -> str:
    """One line on ``search.json``'s ``pick.test_vs_reference``: how far the pick beats ``label`` on the test queries."""
    return (f"on the test queries: the pick {gain['cross_map_gain']:+.2f} points of cross mAP against the {label}, "
            f"{gain['confidence']:.1%} sure (paired bootstrap over {gain['queries']:,} queries)")


# Per-query scores travel as trial attributes, which an RDB storage keeps in one text column per
# attribute: 2 bytes a query (base64 of uint16 steps of 1/65534) keep 10,000 queries near 27 kB.
_STEPS = 65534
_MISSING = 65535


def encode_scores(scores: np.ndarray) -> str:
    """Per-query scores in [0, 1] as a compact string for a trial's user attributes (NaN kept)."""
    values = np.asarray(scores, dtype=np.float64)
    if np.any((values < 0) | (values > 1)):
        raise ValueError("per-query scores must lie in [0, 1]")
    steps = np.where(np.isnan(values), _MISSING, np.rint(np.nan_to_num(values) * _STEPS)).astype("<u2")
    return base64.b64encode(steps.tobytes()).decode("ascii")


def decode_scores(text: str | list[float | None]) -> np.ndarray:
    """The inverse of :func:`encode_scores` (to within 1/65534); also reads a plain JSON list."""
    if isinstance(text, list):  # how commit 0030ce9 stored them
        return np.array([np.nan if v is None else v for v in text], dtype=np.float64)
    steps = np.frombuffer(base64.b64decode(text), dtype="<u2")
    return np.where(steps == _MISSING, np.nan, steps / _STEPS)
