"""Comparisons between two models or two runtimes: gap closed, negative flips, parity."""

from __future__ import annotations

import numpy as np

from hetero.devices import parity as row_parity
from hetero.metrics._retrieval import RetrievalResult, check_embeddings

__all__ = ["gap_closed", "gap_closed_entry", "result_status", "negative_flip_rate", "negative_flip_impact", "parity", "probability_better"]


def gap_closed(cross: float, homogeneous: float, paragon: float) -> float:
    """(M(q,g) - M(q,q)) / (M(g,g) - M(q,q)): 1 means the edge query searches like the cloud."""
    denominator = paragon - homogeneous
    if abs(denominator) < 1e-12:
        return float("nan")
    return (cross - homogeneous) / denominator


def gap_closed_entry(cross: float, homogeneous: float, paragon: float) -> dict[str, float | str | None]:
    """report.json's ``gap_closed`` (and ``gap_closed_note`` when the ratio means nothing).

    The ratio measures how much of the way from the edge's own space to the cloud's the cross
    search gets; when the paragon is no better than the homogeneous edge there is no such way
    (issue 14 saw 1.624 printed for an incompatible model), so the value is ``None`` with a note
    saying why.
    """
    if paragon <= homogeneous:
        return {
            "gap_closed": None,
            "gap_closed_note": (
                f"no gap to close: paragon mAP {paragon:.4f} <= homogeneous edge mAP {homogeneous:.4f}"
            ),
        }
    return {"gap_closed": gap_closed(cross, homogeneous, paragon)}


def result_status(compatible: bool, collapsed: bool, parity_failures: list[str] | None = None) -> str:
    """report.json's ``status``: ``"ok"`` only for a compatible, uncollapsed model within its parity
    thresholds; otherwise what failed, in words (DESIGN.md)."""
    failed = []
    if collapsed:
        failed.append("collapsed embeddings")
    if not compatible:
        failed.append("not compatible (cross mAP <= homogeneous edge mAP)")
    if parity_failures:
        failed.append("parity below thresholds (" + "; ".join(parity_failures) + ")")
    return "; ".join(failed) if failed else "ok"


def probability_better(candidate: np.ndarray, reference: np.ndarray, resamples: int = 10_000, seed: int = 0) -> float:
    """How sure we can be that ``candidate`` beats ``reference`` on the population the queries come from.

    A paired bootstrap: both models were scored on the same queries (per-query AP, say), so the
    queries are resampled with replacement and the share of resamples in which the candidate's
    mean is strictly higher is returned. 0.5 is a coin flip; identical scores give 0.

    Args:
        candidate: ``[N]`` per-query scores of the candidate (NaN where a query does not count).
        reference: ``[N]`` the reference's scores of the same queries.
        resamples: Bootstrap resamples.
        seed: Fixes the resampling, so the same scores always give the same answer.

    Raises:
        ValueError: If the two differ in shape or share no scored query.
    """
    a, b = np.asarray(candidate, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"per-query scores differ in shape: {a.shape} vs {b.shape}")
    diff = (a - b)[~(np.isnan(a) | np.isnan(b))]
    if diff.size == 0:
        raise ValueError("no query is scored for both models")
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    for start in range(0, resamples, 1000):  # bounded memory: 1000 x N draws at a time
        stop = min(start + 1000, resamples)
        means[start:stop] = diff[rng.integers(0, diff.size, (stop - start, diff.size))].mean(1)
    return float((means > 0).mean())


def negative_flip_rate(reference_correct: np.ndarray, candidate_correct: np.ndarray) -> float:
    """#(reference right and candidate wrong) / #queries (PCT's NFR)."""
    ref = np.asarray(reference_correct, dtype=bool)
    cand = np.asarray(candidate_correct, dtype=bool)
    if ref.shape != cand.shape:
        raise ValueError(f"decisions differ in shape: {ref.shape} vs {cand.shape}")
    return float((ref & ~cand).sum() / max(ref.size, 1))


def negative_flip_impact(reference_correct: np.ndarray, candidate_correct: np.ndarray) -> float:
    """#(reference right and candidate wrong) / #(candidate wrong) (PCT's NFI)."""
    ref = np.asarray(reference_correct, dtype=bool)
    cand = np.asarray(candidate_correct, dtype=bool)
    wrong = int((~cand).sum())
    return float((ref & ~cand).sum() / wrong) if wrong else 0.0


def parity(
    reference: np.ndarray,
    candidate: np.ndarray,
    reference_retrieval: RetrievalResult | None = None,
    candidate_retrieval: RetrievalResult | None = None,
    gallery_labels: np.ndarray | None = None,
) -> dict[str, float]:
    """How closely ``candidate`` embeddings (a runtime's) follow ``reference`` (PyTorch's).

    Returns ``cos_min``, ``cos_mean``, ``max_abs`` and, given both retrievals of the same queries
    against the same gallery and the gallery's labels, ``top1_agreement``, ``top1_item_agreement``
    and ``nfr``. The first three are :func:`hetero.devices.parity`'s (the one parity function, numpy
    only, which a device runs too); this adds the retrieval figures.

    ``top1_agreement`` is the agreement of the two top-1 retrieval *decisions*: the share of
    queries whose first-ranked gallery items are of the same class. That is DESIGN.md's top-1,
    which counts the first same-class item, and the decision NFR compares.
    ``top1_item_agreement`` is stricter: the same gallery image ranked first. On a gallery of
    near-duplicates (many images per class) the first two similarities are near-ties, and any
    reduced precision swaps images of one class far more often than it changes the answer; the
    two figures side by side show which of the two happened.
    """
    ref = check_embeddings(reference, "reference embeddings")
    cand = check_embeddings(candidate, "candidate embeddings", dim=ref.shape[1])
    if len(ref) != len(cand):
        raise ValueError(f"parity needs the same inputs: {len(ref)} vs {len(cand)} embeddings")
    out = row_parity(ref, cand)
    if (reference_retrieval is None) != (candidate_retrieval is None):
        raise ValueError("parity compares retrievals only when both are given")
    if reference_retrieval is not None and candidate_retrieval is not None:
        if gallery_labels is None:
            raise ValueError("top-1 agreement needs the gallery's labels (the class of each first-ranked item)")
        mask = reference_retrieval.evaluated
        ref_first = reference_retrieval.top1_index[mask]
        cand_first = candidate_retrieval.top1_index[mask]
        labels = np.asarray(gallery_labels)
        out["top1_agreement"] = float((labels[ref_first] == labels[cand_first]).mean())
        out["top1_item_agreement"] = float((ref_first == cand_first).mean())
        out["nfr"] = negative_flip_rate(reference_retrieval.top1_correct[mask], candidate_retrieval.top1_correct[mask])
    return out
