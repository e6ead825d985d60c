"""Negative flips for `hetero bench`: the edge model against the cloud model, the runtime against
PyTorch. One function returning keys to merge into report.json."""

from __future__ import annotations

import numpy as np

from hetero.flips import classification_flips, retrieval_flips
from hetero.metrics import RetrievalResult
from hetero.models import CloudModel

__all__ = ["bench_flips"]


def bench_flips(
    cloud: CloudModel,
    labels: np.ndarray,
    gallery: np.ndarray,
    queries_torch: np.ndarray,
    queries_runtime: np.ndarray,
    paragon: RetrievalResult,
    cross_torch: RetrievalResult,
    cross_runtime: RetrievalResult,
) -> dict:
    """``{"flips": ...}`` for report.json: NFR/NFI of top-1 retrieval and of classification.

    - ``edge_vs_cloud``: reference the cloud model (cloud query → cloud gallery; classification
      of the cloud embedding), candidate the edge model on its runtime (edge query → cloud
      gallery; the edge embedding through the cloud model's classifier, which the influence loss
      trains it for).
    - ``runtime_vs_torch``: reference the PyTorch edge model, candidate the runtime's.

    Classification is ``None`` where the cloud model has no classifier for the test classes
    (imported models, open-set data).
    """
    head = None if cloud.classifier is None or cloud.classes is None else (cloud.classifier.numpy(), np.asarray(cloud.classes))
    return {
        "flips": {
            "edge_vs_cloud": {
                "retrieval": retrieval_flips(paragon, cross_runtime),
                "classification": classification_flips(gallery, queries_runtime, labels, head, head),
            },
            "runtime_vs_torch": {
                "retrieval": retrieval_flips(cross_torch, cross_runtime),
                "classification": classification_flips(queries_torch, queries_runtime, labels, head, head),
            },
        }
    }
