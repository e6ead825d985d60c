"""Negative flips between two models' decisions on the same queries (PCT's NFR and NFI).

A decision is per query: "its top-1 retrieval is of its class" or "its predicted class is right".
A negative flip is a query the reference model gets right and the candidate gets wrong.
"""

from __future__ import annotations

import numpy as np

from hetero.metrics import RetrievalResult, negative_flip_impact, negative_flip_rate

__all__ = ["flip_summary", "retrieval_flips", "classify", "classification_flips"]


def flip_summary(reference_correct: np.ndarray, candidate_correct: np.ndarray) -> dict:
    """NFR, NFI and the counts behind them.

    Returns:
        ``nfr`` (flips / queries), ``nfi`` (flips / candidate errors), ``flips``,
        ``positive_flips`` (reference wrong, candidate right), ``queries``, ``reference_errors``,
        ``candidate_errors``, ``reference_accuracy`` and ``candidate_accuracy``.
    """
    ref = np.asarray(reference_correct, dtype=bool)
    cand = np.asarray(candidate_correct, dtype=bool)
    n = max(int(ref.size), 1)
    return {
        "nfr": negative_flip_rate(ref, cand),
        "nfi": negative_flip_impact(ref, cand),
        "flips": int((ref & ~cand).sum()),
        "positive_flips": int((~ref & cand).sum()),
        "queries": int(ref.size),
        "reference_errors": int((~ref).sum()),
        "candidate_errors": int((~cand).sum()),
        "reference_accuracy": float(ref.sum() / n),
        "candidate_accuracy": float(cand.sum() / n),
    }


def retrieval_flips(reference: RetrievalResult, candidate: RetrievalResult) -> dict:
    """Flips of top-1 retrieval decisions, over the queries both searches evaluated."""
    both = reference.evaluated & candidate.evaluated
    return flip_summary(reference.top1_correct[both], candidate.top1_correct[both])


def classify(embeddings: np.ndarray, classifier, classes) -> np.ndarray:
    """The class id of the classifier row most similar (cosine) to each embedding."""
    w = np.asarray(classifier, dtype=np.float32)
    w = w / np.maximum(np.linalg.norm(w, axis=1, keepdims=True), 1e-12)
    return np.asarray(classes)[np.argmax(np.asarray(embeddings, dtype=np.float32) @ w.T, axis=1)]


def classification_flips(
    reference_embeddings: np.ndarray,
    candidate_embeddings: np.ndarray,
    labels: np.ndarray,
    reference_head: tuple | None,
    candidate_head: tuple | None,
) -> dict | None:
    """Flips of classification decisions, where both models have a classifier for ``labels``.

    Args:
        reference_embeddings, candidate_embeddings: ``[N, D]`` each model's embeddings of the
            same images.
        labels: ``[N]`` their classes.
        reference_head, candidate_head: ``(classifier [K, D], classes [K])`` of each model, or
            ``None`` for a model without one. Two models may share one head (an edge model
            classifies through its cloud model's frozen classifier).

    Returns:
        :func:`flip_summary` of the two models' right/wrong predictions, or ``None`` where a
        model has no classifier or it does not know every class in ``labels`` (open-set data).
    """
    if reference_head is None or candidate_head is None:
        return None
    heads = (reference_head, candidate_head)
    if any(h[0] is None or h[1] is None for h in heads):
        return None
    if any(not set(np.unique(labels).tolist()) <= set(np.asarray(h[1]).tolist()) for h in heads):
        return None
    ref_right = classify(reference_embeddings, *reference_head) == labels
    cand_right = classify(candidate_embeddings, *candidate_head) == labels
    return flip_summary(ref_right, cand_right)
