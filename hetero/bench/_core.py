"""`hetero bench`: run an artifact on its runtime and prove it still searches the cloud gallery.

Everything is measured in one process on the same test images: the cloud gallery, the PyTorch
edge model's queries and the runtime's queries, so the report's rows are directly comparable.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hetero._io import save_npy, write_json, write_text
from hetero.bench._markdown import report_markdown
from hetero.cost import count_cost
from hetero.data import Dataset, Preprocess
from hetero.errors import UserError
from hetero.metrics import check_embeddings, gap_closed, parity, retrieval_metrics
from hetero.models import CloudModel, load_edge

__all__ = ["BenchInputs", "load_artifact", "bench_artifact", "EMBEDDING_FILES"]

EMBEDDING_FILES = {
    "queries_runtime": "queries_runtime.npy",
    "queries_torch": "queries_torch.npy",
    "gallery_cloud": "gallery_cloud.npy",
    "labels": "labels.npy",
}
SOURCE_MODEL = "edge.pt"


@dataclass
class BenchInputs:
    """An artifact ready to benchmark: its manifest, runner and the edge model it came from."""

    directory: Path
    artifact: Path
    manifest: dict
    preprocess: Preprocess


def load_artifact(directory: str | os.PathLike[str], cloud: CloudModel) -> BenchInputs:
    """Verify an artifact folder (sha256) and that it belongs to ``cloud`` (fingerprint)."""
    from devices import verify_artifact
    from devices.manifest import check_fingerprint

    directory = Path(directory)
    if not directory.is_dir():
        raise UserError(f"--artifact {directory} is not a folder; pass the folder hetero export wrote")
    artifact, manifest = verify_artifact(directory)
    check_fingerprint(manifest, cloud.fingerprint)
    if int(manifest.get("embedding_dim", -1)) != cloud.embed_dim:
        raise UserError(
            f"artifact embeds into {manifest.get('embedding_dim')} dims but the cloud model into "
            f"{cloud.embed_dim}; they cannot share a gallery"
        )
    return BenchInputs(directory, artifact, manifest, Preprocess.from_dict(manifest["preprocess"]))


def bench_artifact(
    inputs: BenchInputs,
    cloud: CloudModel,
    test: Dataset,
    out_dir: str | os.PathLike[str],
    threads: int | None = None,
    runtime_queries: np.ndarray | None = None,
    latency: dict | None = None,
    warmup: int = 5,
    repeats: int = 30,
) -> dict:
    """Write ``report.json``, ``report.md`` and the embedding files; return the report.

    Args:
        inputs: the verified artifact.
        cloud: the cloud model whose gallery the queries search.
        test: the test images (queries and gallery are the same images, self excluded).
        out_dir: where the report goes.
        threads: runtime threads (default: the device profile's).
        runtime_queries: query embeddings the runtime produced elsewhere (a real device); the
            runtime is not run here then.
        latency: latency measured on the device, with ``runtime_queries``.
    """
    from devices import load_profile
    from devices.runtimes import measure_latency

    out = Path(out_dir)
    manifest = inputs.manifest
    profile = load_profile(manifest["device"])
    threads = threads or profile.threads
    query_inputs = np.concatenate([b.numpy() for b in inputs.preprocess.batches(test.images)])
    edge = load_edge(inputs.directory / SOURCE_MODEL)
    torch_q = edge.embed_preprocessed(query_inputs)
    gallery = cloud.embed(test.images)
    if runtime_queries is None:
        from export import get_backend

        runner = get_backend(manifest["format"]).load(inputs.artifact, threads=threads)
        runtime_q = check_embeddings(runner.run(query_inputs), "runtime output", dim=cloud.embed_dim)
        latency = measure_latency(runner, query_inputs, warmup=warmup, repeats=repeats, batch=1)
        latency["threads"] = threads
        latency["measured_on"] = "this machine"
    else:
        runtime_q = check_embeddings(runtime_queries, "--embeddings", dim=cloud.embed_dim)
        if len(runtime_q) != len(test.labels):
            raise UserError(
                f"--embeddings holds {len(runtime_q)} rows but the test split has {len(test.labels)} "
                "queries; embed the inputs written by --export-inputs with the same --data and --seed"
            )
        latency = latency or {}
    labels = test.labels
    paragon = retrieval_metrics(gallery, gallery, labels, labels, same_images=True)
    homogeneous = retrieval_metrics(torch_q, torch_q, labels, labels, same_images=True)
    cross_torch = retrieval_metrics(torch_q, gallery, labels, labels, same_images=True)
    cross_runtime = retrieval_metrics(runtime_q, gallery, labels, labels, same_images=True)
    cloud_cost = count_cost(cloud.net, cloud.input_shape)
    report = {
        "device": manifest["device"],
        "backend": manifest["format"],
        "precision": manifest["precision"],
        "data": {"spec": test.spec, "queries": int(len(labels)), "gallery": int(len(labels))},
        "cloud": {"fingerprint": cloud.fingerprint, **cloud_cost},
        "edge": {
            "macs": manifest["edge"]["macs"],
            "params": manifest["edge"]["params"],
            "artifact_bytes": manifest["bytes"],
            "sha256": manifest["sha256"],
        },
        "retrieval": {
            "paragon": paragon.summary(),
            "homogeneous_edge": homogeneous.summary(),
            "cross_torch": cross_torch.summary(),
            "cross_runtime": cross_runtime.summary(),
        },
        "gap_closed": gap_closed(cross_runtime.map, homogeneous.map, paragon.map),
        "compatible": bool(cross_runtime.map > homogeneous.map),
        "parity": parity(torch_q, runtime_q, cross_torch, cross_runtime),
        "latency_ms": {"batch": latency.get("batch", 1), "threads": latency.get("threads", threads),
                       "p50": latency.get("p50"), "p95": latency.get("p95"), **latency},
        "cost_ratio": cloud_cost["macs"] / max(manifest["edge"]["macs"], 1),
        "embeddings": dict(EMBEDDING_FILES),
    }
    for key, array in (
        ("queries_runtime", runtime_q),
        ("queries_torch", torch_q),
        ("gallery_cloud", gallery),
        ("labels", labels),
    ):
        save_npy(out / EMBEDDING_FILES[key], array)
    write_json(out / "report.json", report)
    write_text(out / "report.md", report_markdown(report))
    return report
