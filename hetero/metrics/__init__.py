"""Retrieval metrics (top-k, mAP, mAP@R), gap closed, negative flips, parity and collapse (DESIGN.md)."""

from hetero.metrics._collapse import CollapseCheck, embedding_collapse
from hetero.metrics._compare import (
    gap_closed,
    gap_closed_entry,
    negative_flip_impact,
    negative_flip_rate,
    parity,
    probability_better,
    result_status,
)
from hetero.metrics._retrieval import RetrievalResult, check_embeddings, l2_normalize, retrieval_metrics

__all__ = [
    "RetrievalResult",
    "retrieval_metrics",
    "check_embeddings",
    "l2_normalize",
    "gap_closed",
    "gap_closed_entry",
    "CollapseCheck",
    "embedding_collapse",
    "negative_flip_rate",
    "negative_flip_impact",
    "parity",
    "probability_better",
    "result_status",
]
