"""Retrieval metrics (top-k, mAP, mAP@R), gap closed, negative flips and parity (DESIGN.md)."""

from hetero.metrics._compare import gap_closed, negative_flip_impact, negative_flip_rate, parity, probability_better
from hetero.metrics._retrieval import RetrievalResult, check_embeddings, l2_normalize, retrieval_metrics

__all__ = [
    "RetrievalResult",
    "retrieval_metrics",
    "check_embeddings",
    "l2_normalize",
    "gap_closed",
    "negative_flip_rate",
    "negative_flip_impact",
    "parity",
    "probability_better",
]
