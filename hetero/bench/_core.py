"""`hetero bench`: run an artifact on its runtime and prove it still searches the cloud gallery.

Everything is measured on the same test images: the cloud gallery, the PyTorch edge model's
queries and the runtime's queries (run here, or on the device by ``python -m hetero.devices.run``), so
the report's rows are directly comparable.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

import numpy as np

from hetero._io import save_npy, write_json, write_text
from hetero.bench._flips import bench_flips
from hetero.bench._gallery import Gallery, build_gallery, search_method
from hetero.bench._inputs import query_inputs
from hetero.bench._latency import latency_sections, measure_batches
from hetero.bench._markdown import report_markdown
from hetero.bench._schema import check_report
from hetero.data import Dataset, Preprocess
from hetero.devices import PARITY_THRESHOLDS, parity_failures
from hetero.errors import UserError
from hetero.metrics import (
    RetrievalResult,
    check_embeddings,
    embedding_collapse,
    gap_closed_entry,
    parity,
    result_status,
    retrieval_metrics,
)
from hetero.models import CloudModel, load_edge

__all__ = [
    "BenchInputs",
    "BenchResult",
    "load_artifact",
    "device_settings",
    "runtime_label",
    "bench_artifact",
    "build_report",
    "EMBEDDING_FILES",
    "NEIGHBOURS",
    "merge_sections",
]

EMBEDDING_FILES = {
    "queries_runtime": "queries_runtime.npy",
    "queries_torch": "queries_torch.npy",
    "gallery_cloud": "gallery_cloud.npy",
    "labels": "labels.npy",
}
#: The runtime's top-k gallery neighbours of every query, as a deployment would return them.
class Neighbours(TypedDict):
    """report.json's ``neighbours``: how many nearest gallery items are kept per query, and where."""

    k: int
    runtime: str


NEIGHBOURS: Neighbours = {"k": 5, "runtime": "neighbours_runtime.npy"}
SOURCE_MODEL = "edge.pt"
INTERPRETER_ENGINE = "hetero-mil-interpreter"


@dataclass
class BenchInputs:
    """An artifact ready to benchmark: its manifest, runner and the edge model it came from."""

    directory: Path
    artifact: Path
    manifest: dict
    preprocess: Preprocess

    @property
    def runtime(self) -> str:
        """The :mod:`hetero.devices.runtimes` name that runs this artifact."""
        from hetero.export import get_backend

        backend = get_backend(self.manifest["format"])
        return backend.runtime or backend.name


@dataclass
class BenchResult:
    """Everything a report is made of: embeddings, per-query decisions, latency.

    Report sections computed elsewhere (e.g. negative flips) read the per-query decisions in
    ``retrieval`` (:class:`hetero.metrics.RetrievalResult`).
    """

    inputs: BenchInputs
    test: Dataset
    gallery: Gallery
    queries_torch: np.ndarray
    queries_runtime: np.ndarray
    neighbours_runtime: np.ndarray
    neighbours_torch: np.ndarray
    retrieval: dict[str, RetrievalResult]
    latency: dict
    runtime: dict = field(default_factory=dict)


def load_artifact(directory: str | os.PathLike[str], cloud: CloudModel | None = None) -> BenchInputs:
    """Verify an artifact folder (sha256) and, given ``cloud``, that it belongs to it (fingerprint)."""
    from hetero.devices import verify_artifact
    from hetero.devices.manifest import check_fingerprint

    directory = Path(directory)
    if not directory.is_dir():
        raise UserError(f"--artifact {directory} is not a folder; pass the folder hetero export wrote")
    artifact, manifest = verify_artifact(directory)
    if cloud is not None:
        check_fingerprint(manifest, cloud.fingerprint)
        if int(manifest.get("embedding_dim", -1)) != cloud.embed_dim:
            raise UserError(
                f"artifact embeds into {manifest.get('embedding_dim')} dims but the cloud model into "
                f"{cloud.embed_dim}; they cannot share a gallery"
            )
    from hetero.devices.manifest import verify_source_model

    verify_source_model(directory, manifest)  # edge.pt, the PyTorch reference, is the one exported
    return BenchInputs(directory, artifact, manifest, Preprocess.from_dict(manifest["preprocess"]))


def device_settings(manifest: dict) -> tuple[int | None, tuple[int, ...]]:
    """Threads and batch sizes of the artifact's device profile (``(None, (1,))`` if unknown)."""
    from hetero.devices import ProfileError, list_profiles, load_profile

    # The name comes from a file: only a built-in profile's name is looked up, never a path.
    if manifest.get("device") not in list_profiles():
        return None, (1,)
    try:
        profile = load_profile(manifest["device"])
    except ProfileError:  # a built-in profile that does not load
        return None, (1,)
    return profile.threads, tuple(profile.batch_sizes)


def runtime_label(backend: str, engine: str | None) -> str:
    """How a table names the runtime: Core ML run by hetero's interpreter says so."""
    if engine == INTERPRETER_ENGINE:
        return f"{backend} (interpreted)"
    if engine == "device":
        return f"{backend} (on device)"
    return backend


def _engine(runner) -> str:
    for attr in ("engine", "tool"):
        if isinstance(getattr(runner, attr, None), str):
            return getattr(runner, attr)
    providers = getattr(runner, "providers", None)
    if providers:
        return f"onnxruntime {providers[0]}"
    return type(runner).__name__


def _run_here(inputs: BenchInputs, x: np.ndarray, threads, batch_sizes, warmup, repeats) -> tuple[np.ndarray, dict, dict]:
    from hetero.devices import RuntimeUnavailableError
    from hetero.devices.runtimes import get_runtime

    try:
        runner = get_runtime(inputs.runtime).load(inputs.artifact, threads=threads)
    except RuntimeUnavailableError as exc:
        raise UserError(
            f"{exc}; run it on the device instead: --export-inputs DIR, `python -m hetero.devices.run`, then --embeddings"
        ) from None
    queries = runner.run(x)
    engine = _engine(runner)
    figures = measure_batches(runner, x, batch_sizes, threads, warmup=warmup, repeats=repeats)
    runtime = {"name": inputs.runtime, "engine": engine, "label": runtime_label(inputs.manifest["format"], engine)}
    return queries, latency_sections(figures, threads, "this machine"), runtime


def bench_artifact(
    inputs: BenchInputs,
    cloud: CloudModel | None,
    test: Dataset,
    out_dir: str | os.PathLike[str],
    threads: int | None = None,
    runtime_queries: np.ndarray | None = None,
    latency: list[dict] | None = None,
    warmup: int = 5,
    repeats: int = 30,
    gallery: Gallery | None = None,
    batch_sizes: Sequence[int] | None = None,
    protocol: str | None = None,
    seed: int | None = None,
    extra: Callable[[BenchResult], dict] | None = None,
) -> dict:
    """Write ``report.json``, ``report.md`` and the embedding files; return the report.

    Args:
        inputs: the verified artifact.
        cloud: the cloud model whose gallery the queries search (may be ``None`` with a cached
            ``gallery``).
        test: the test images (queries and gallery are the same images, self excluded).
        out_dir: where the report goes.
        threads: runtime threads (default: the device profile's).
        runtime_queries: query embeddings the runtime produced elsewhere (a real device); the
            runtime is not run here then.
        latency: latency figures measured on the device (:func:`hetero.bench.read_latency`),
            with ``runtime_queries``.
        warmup, repeats: untimed and timed runs per batch size.
        gallery: the cloud gallery (e.g. a cached index); built from ``cloud`` when ``None``.
        batch_sizes: batch sizes to time besides 1 (default: the device profile's).
        protocol, seed: how ``test`` was split (recorded in the report).
        extra: a function adding report sections from the :class:`BenchResult`.
    """
    profile_threads, profile_batches = device_settings(inputs.manifest)
    threads = threads or profile_threads
    batch_sizes = tuple(batch_sizes or profile_batches)
    fingerprint = inputs.manifest["cloud_fingerprint"]
    if gallery is None:
        if cloud is None:
            raise UserError("no gallery: pass --cloud DIR (or --gallery DIR holding a cached gallery index)")
        gallery = build_gallery(cloud, test, protocol, seed)
    gallery.check_fingerprint(fingerprint)
    dim = gallery.embeddings.shape[1]
    x = query_inputs(inputs.preprocess, test.images)
    torch_q = check_embeddings(load_edge(inputs.directory / SOURCE_MODEL).embed_preprocessed(x), "PyTorch edge output", dim=dim)
    if runtime_queries is None:
        runtime_q, lat, runtime = _run_here(inputs, x, threads, batch_sizes, warmup, repeats)
        runtime_q = check_embeddings(runtime_q, "runtime output", dim=dim)
    else:
        runtime_q = check_embeddings(runtime_queries, "--embeddings", dim=dim)
        if len(runtime_q) != len(test.labels):
            raise UserError(
                f"--embeddings holds {len(runtime_q)} rows but the test split has {len(test.labels)} "
                "queries; embed the inputs written by --export-inputs with the same --data and --seed"
            )
        lat = latency_sections(latency or [], threads, "device")
        runtime = {"name": inputs.runtime, "engine": "device", "label": runtime_label(inputs.manifest["format"], "device")}
    labels, g = test.labels, gallery.embeddings
    retrieval = {
        "paragon": gallery.paragon(),
        "homogeneous_edge": retrieval_metrics(torch_q, torch_q, labels, labels, same_images=True),
        "cross_torch": retrieval_metrics(torch_q, g, labels, labels, same_images=True),
        "cross_runtime": retrieval_metrics(runtime_q, g, labels, labels, same_images=True),
    }
    result = BenchResult(
        inputs, test, gallery, torch_q, runtime_q,
        neighbours_runtime=gallery.search(runtime_q, NEIGHBOURS["k"], same_images=True),
        neighbours_torch=gallery.search(torch_q, NEIGHBOURS["k"], same_images=True),
        retrieval=retrieval, latency=lat, runtime=runtime,
    )
    report = build_report(result, protocol, seed)
    if cloud is not None:  # flips by classification need the cloud model's classifier
        merge_sections(report, bench_flips(cloud, labels, g, torch_q, runtime_q, retrieval["paragon"],
                                           retrieval["cross_torch"], retrieval["cross_runtime"]))
    if extra is not None:
        merge_sections(report, extra(result))
    out = Path(out_dir)
    for key, array in (("queries_runtime", runtime_q), ("queries_torch", torch_q), ("gallery_cloud", g), ("labels", labels)):
        save_npy(out / EMBEDDING_FILES[key], array)
    save_npy(out / NEIGHBOURS["runtime"], result.neighbours_runtime)
    write_json(out / "report.json", check_report(report))  # with the merged sections: every key in the schema
    write_text(out / "report.md", report_markdown(report))
    return report


def _overlap(a: np.ndarray, b: np.ndarray) -> float:
    """Mean fraction of the top-k neighbours two searches share."""
    k = a.shape[1]
    return float(np.mean([len(np.intersect1d(x, y)) / k for x, y in zip(a, b)]))


def build_report(result: BenchResult, protocol: str | None = None, seed: int | None = None) -> dict[str, Any]:
    """report.json (DESIGN.md keys, plus runtime, latency per batch, gallery and neighbours); checked
    against :class:`hetero.bench.Report` once its other sections are merged, before it is written."""
    manifest, r = result.inputs.manifest, result.retrieval
    cloud = result.gallery.info["cloud"]
    summaries = {k: v.summary() for k, v in r.items()}
    figures = {
        **parity(result.queries_torch, result.queries_runtime, r["cross_torch"], r["cross_runtime"],
                 gallery_labels=result.gallery.labels),
        f"top{NEIGHBOURS['k']}_overlap": _overlap(result.neighbours_torch, result.neighbours_runtime),
    }
    # The verdict at bench, on these queries (a device's --embeddings too), against the export's thresholds.
    thresholds = manifest.get("parity_thresholds") or PARITY_THRESHOLDS.get(manifest["precision"], {})
    missed = parity_failures(figures, thresholds)
    # The runtime's queries are what a device searches with: a degenerate model (or runtime) is
    # never "ok", whatever its parity with PyTorch.
    check = embedding_collapse(result.queries_runtime, name="the runtime's query embeddings")
    collapse = check.to_dict()
    compatible = bool(r["cross_runtime"].map > r["homogeneous_edge"].map)
    return {
        "device": manifest["device"],
        "backend": manifest["format"],
        "precision": manifest["precision"],
        "runtime": result.runtime,
        "data": {"spec": result.test.spec, "queries": int(len(result.test.labels)), "gallery": int(len(result.gallery.labels)),
                 "protocol": protocol, "seed": seed},
        "cloud": dict(cloud),
        "edge": {
            "macs": manifest["edge"]["macs"],
            "params": manifest["edge"]["params"],
            "artifact_bytes": manifest["bytes"],
            "sha256": manifest["sha256"],
        },
        "retrieval": summaries,
        **gap_closed_entry(r["cross_runtime"].map, r["homogeneous_edge"].map, r["paragon"].map),
        "compatible": compatible,
        "collapsed": check.collapsed,
        "collapse": collapse,
        "status": result_status(compatible, check.collapsed, missed),
        "parity": figures,
        "parity_thresholds": thresholds,
        "parity_passed": not missed,
        "parity_failures": missed,
        **result.latency,
        "cost_ratio": cloud["macs"] / max(manifest["edge"]["macs"], 1),
        "gallery": {
            "index": None if result.gallery.directory is None else str(result.gallery.directory),
            "search": search_method(len(result.gallery.labels)),
            "items": int(len(result.gallery.labels)),
        },
        "export": {
            "parity_passed": manifest.get("parity_passed"),
            "allow_drift": manifest.get("allow_drift", False),
            "cross_map_at_export": manifest.get("cross_map_at_export"),
        },
        "embeddings": dict(EMBEDDING_FILES),
        "neighbours": dict(NEIGHBOURS),
    }


def merge_sections(report: dict, sections: dict) -> dict:
    """Add ``sections`` to ``report``: new keys as they are, existing dict keys extended (never overwritten)."""
    for key, value in sections.items():
        if isinstance(report.get(key), dict) and isinstance(value, dict):
            report[key].update({k: v for k, v in value.items() if k not in report[key]})
        elif key not in report:
            report[key] = value
    return report
