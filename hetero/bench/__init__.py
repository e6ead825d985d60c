"""`hetero bench`: on-runtime compatibility reports (report.json, report.md, embeddings)."""

from hetero.bench._core import EMBEDDING_FILES, BenchInputs, bench_artifact, load_artifact
from hetero.bench._markdown import report_markdown, retrieval_table

__all__ = ["BenchInputs", "load_artifact", "bench_artifact", "EMBEDDING_FILES", "report_markdown", "retrieval_table"]
