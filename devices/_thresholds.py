"""Export parity thresholds: the least parity an artifact for a device must show (numpy only).

``hetero export`` judges an artifact with them; ``hetero devices`` and ``hetero bench`` show them.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

__all__ = ["PARITY_THRESHOLDS", "describe_thresholds", "parity_failures", "parity_thresholds"]

#: The least parity an artifact must show at export, per precision (issue "Export to every device").
#:
#: "Top-1 agreement of retrievals" (``top1_agreement``) is the agreement of the two top-1
#: retrieval decisions: the first results are of the same class (DESIGN.md's top-1 is
#: class-based, and NFR compares the same decision). The stricter ``top1_item_agreement`` (the same
#: gallery image first) is measured and reported beside it but has no default threshold: on a
#: gallery with many images per class the first two similarities are near-ties (digits: median
#: gap 0.0012), and no 8-bit arithmetic keeps the same first image there. Two exact executions of
#: one int8 graph (ONNX Runtime's fused kernels and the same QDQ graph in float) agree on only
#: 98.8% of the first images, the PyTorch model and its int8 artifacts on about 81%, while their
#: decisions agree for 99.2-99.4% of the queries and cross mAP moves by under 0.1 point (README,
#: "What limits int8 top-1 agreement"). A deployment that shows the first image itself sets
#: ``top1_item_agreement`` in its profile's ``[parity]`` table.
PARITY_THRESHOLDS: dict[str, dict[str, float]] = {
    "fp32": {"cos_min": 0.99999},
    "fp16": {"cos_min": 0.9995},
    "int8": {"cos_min": 0.99, "top1_agreement": 0.98},
}


def parity_thresholds(profile) -> dict[str, float]:
    """The thresholds an artifact for ``profile`` must meet: its precision's, then the profile's own ``[parity]``."""
    return {**PARITY_THRESHOLDS[profile.precision], **profile.parity}


def parity_failures(figures: dict[str, float], thresholds: dict[str, float]) -> list[str]:
    """The ``thresholds`` that ``figures`` miss, as readable strings."""
    return [
        f"{key} {figures.get(key, float('nan')):.6f} < {limit}"
        for key, limit in thresholds.items()
        if not figures.get(key, -np.inf) >= limit
    ]


def describe_thresholds(thresholds: dict[str, float], own: Iterable[str] = ()) -> str:
    """``cos_min>=0.99 top1_agreement>=0.98 top1_item_agreement>=0.98*``: a star marks a threshold in ``own``
    (those a profile's ``[parity]`` table sets itself)."""
    own = set(own)
    return " ".join(f"{k}>={v:g}{'*' if k in own else ''}" for k, v in thresholds.items())
