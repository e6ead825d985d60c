"""`hetero bench`: on-runtime compatibility reports (report.json, report.md, embeddings), the cached
gallery index, the runner path for real devices, and the comparison of every device."""

from hetero.bench._core import (
    EMBEDDING_FILES,
    NEIGHBOURS,
    BenchInputs,
    BenchResult,
    bench_artifact,
    build_report,
    device_settings,
    load_artifact,
    merge_sections,
    runtime_label,
)
from hetero.bench._gallery import FAISS_MIN_ITEMS, Gallery, bench_on_index, build_gallery, load_gallery, top_k
from hetero.bench._html import comparison_html
from hetero.bench._inputs import export_inputs, load_device_embeddings, query_inputs
from hetero.bench._latency import TorchRunner, latency_sections, measure_batches, read_latency
from hetero.bench._markdown import comparison_markdown, report_markdown, retrieval_table
from hetero.bench._multi import bench_devices, comparison_row, select_devices
from hetero.bench._schema import Report, RetrievalFigures, check_report

__all__ = [
    "BenchInputs",
    "BenchResult",
    "load_artifact",
    "bench_artifact",
    "build_report",
    "Report",
    "RetrievalFigures",
    "check_report",
    "merge_sections",
    "device_settings",
    "runtime_label",
    "EMBEDDING_FILES",
    "NEIGHBOURS",
    "Gallery",
    "FAISS_MIN_ITEMS",
    "build_gallery",
    "bench_on_index",
    "load_gallery",
    "top_k",
    "query_inputs",
    "export_inputs",
    "load_device_embeddings",
    "TorchRunner",
    "measure_batches",
    "read_latency",
    "latency_sections",
    "report_markdown",
    "retrieval_table",
    "comparison_markdown",
    "comparison_html",
    "bench_devices",
    "comparison_row",
    "select_devices",
]
