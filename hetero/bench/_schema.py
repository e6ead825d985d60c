"""The schema of ``report.json`` (``hetero bench``): a TypedDict, checked before the file is written.

docs/design.md documents the same keys; ``tests/hetero/test_bench.py`` holds the two in step, and
:func:`check_report` refuses a report with a key the schema does not name, so a new key is added
here (and documented) first.
"""

from __future__ import annotations

from typing import Any, TypedDict

from hetero.devices._keys import check_keys

__all__ = ["Report", "RetrievalFigures", "check_report"]


class RetrievalFigures(TypedDict):
    """One search's figures (DESIGN's metric definitions), as :meth:`RetrievalMetrics.summary` gives them."""

    top1: float
    top5: float
    map: float
    map_at_r: float


class _ReportRequired(TypedDict):
    """The keys every bench report has (see :class:`Report`)."""

    device: str
    backend: str  # the artifact's format: onnx | tflite | coreml | tensorrt
    precision: str  # fp32 | fp16 | int8
    runtime: dict[str, Any]  # name, engine, label: what ran the queries
    data: dict[str, Any]  # spec, queries, gallery, protocol, seed
    cloud: dict[str, Any]  # fingerprint, macs, params
    edge: dict[str, Any]  # macs, params, artifact_bytes, sha256
    retrieval: dict[str, RetrievalFigures]  # paragon, homogeneous_edge, cross_torch, cross_runtime
    gap_closed: float | None  # None (with gap_closed_note) where paragon <= homogeneous
    compatible: bool  # cross_runtime mAP > homogeneous_edge mAP
    collapsed: bool
    collapse: dict[str, Any]  # hetero.metrics.CollapseCheck's figures
    status: str  # "ok", or what failed, in words
    parity: dict[str, float]  # runtime vs PyTorch on these queries
    parity_thresholds: dict[str, float]
    parity_passed: bool
    parity_failures: list[str]
    latency_ms: dict[str, Any]  # batch 1: batch, threads, p50, p95 (None for a device without figures)
    latency_ms_batches: list[dict[str, Any]]
    cost_ratio: float  # cloud MACs / edge MACs
    gallery: dict[str, Any]  # index, search, items
    export: dict[str, Any]  # the export's verdict: parity_passed, allow_drift, cross_map_at_export
    embeddings: dict[str, str]  # file names of the arrays written beside the report
    neighbours: dict[str, Any]  # k, and the file of the runtime's top-k gallery rows


class Report(_ReportRequired, total=False):
    """The keys of ``report.json``: those of docs/design.md and the sections added to them."""

    gap_closed_note: str  # why gap_closed is None
    flips: dict[str, Any]  # negative flips by retrieval and classification (needs the cloud model)
    gallery_index: dict[str, Any]  # hetero bench --gallery INDEX: exact and faiss figures in that index


def check_report(report: dict[str, Any]) -> Report:
    """``report`` as a :class:`Report`, its keys checked against the schema.

    Raises:
        ValueError: A required key is missing or a key is not in the schema (a bug in the bench).
    """
    check_keys(Report, report, "report")
    return report  # type: ignore[return-value]  # checked above
