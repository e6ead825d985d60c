"""Queries against a gallery index: exact metrics in bounded memory beside faiss's top-k and its recall.

The exact search (:func:`hetero.index.exact_search`) is the reference; the faiss index is what a
service answers with, so its top-k is scored against the exact top-k (recall@k) and its top-1
against the labels, side by side.
"""

from __future__ import annotations

import os
import resource
import time
from pathlib import Path
from typing import Any

import numpy as np

from hetero._io import save_npy, write_json, write_text
from hetero.index._exact import OwnItems, exact_search, recall_at_k
from hetero.index._faiss import search_faiss
from hetero.index._store import GalleryIndex, load_index
from hetero.metrics import check_embeddings
from hetero.runtime import progress

__all__ = ["own_items", "search_report", "bench_index", "peak_rss_mib"]


def peak_rss_mib() -> float:
    """This process's peak resident memory so far, MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def own_items(gallery_ids: np.ndarray, query_ids: np.ndarray | None) -> OwnItems:
    """Gallery items that are a query's own image (same id): left out of its ranking, as DESIGN.md's protocol does."""
    if query_ids is None or len(gallery_ids) == 0 or np.asarray(query_ids).dtype.kind != gallery_ids.dtype.kind:
        return OwnItems.none()
    order = np.argsort(gallery_ids, kind="stable")
    ids = gallery_ids[order]
    lo = np.searchsorted(ids, query_ids, side="left")
    hi = np.searchsorted(ids, query_ids, side="right")
    n = hi - lo
    query = np.repeat(np.arange(len(query_ids), dtype=np.int64), n)
    item = order[np.arange(int(n.sum())) + np.repeat(lo - (np.cumsum(n) - n), n)].astype(np.int64)
    return OwnItems(query, item)


def _approximate(index: GalleryIndex, queries: np.ndarray, own: OwnItems, k: int) -> tuple[np.ndarray, float]:
    """faiss's top-k of each query, its own image dropped; and the seconds the search took."""
    extra = int(np.bincount(own.query, minlength=len(queries)).max()) if len(own) else 0
    faiss_index = index.faiss_index()
    started = time.perf_counter()
    _, found = search_faiss(faiss_index, queries, min(k + extra, len(index)))
    seconds = time.perf_counter() - started
    if extra:
        n = np.int64(len(index))
        rows = np.arange(len(found), dtype=np.int64)[:, None]
        drop = np.isin(rows * n + found, own.query * n + own.item)
        # Each row keeps its first k items that are not its own image (stable: faiss's order).
        keep = np.argsort(drop, axis=1, kind="stable")[:, :k]
        found = np.take_along_axis(found, keep, axis=1)
    return found[:, :k], seconds


def search_report(
    index: GalleryIndex,
    queries: np.ndarray,
    query_labels: np.ndarray | None,
    query_ids: np.ndarray | None = None,
    k: int = 10,
) -> tuple[dict, np.ndarray]:
    """Exact metrics and top-k of ``queries`` in ``index``, and faiss's top-k with its recall against them.

    Returns:
        The report section (``exact``, ``approximate``, ``recall_at_1``, ``recall_at_k``, ...) and
        faiss's ``int64 [Nq, k]`` neighbours.
    """
    queries = check_embeddings(queries, "queries", dim=index.embeddings.shape[1])
    labelled = query_labels is not None and index.labels is not None
    own = own_items(index.ids, query_ids)
    total = len(queries) * len(index)
    bar = progress(total=total, unit="pair", unit_scale=True, desc="exact search")
    started = time.perf_counter()
    exact = exact_search(queries, index.embeddings, query_labels if labelled else None, index.labels if labelled else None,
                         own=own, k=k, progress=bar.update)
    exact_s = time.perf_counter() - started
    bar.close()
    found, approx_s = _approximate(index, queries, own, k)
    record = index.index_record()
    section: dict[str, Any] = {
        "items": int(len(index)),
        "queries": int(len(queries)),
        "dim": int(index.embeddings.shape[1]),
        "dtype": str(index.embeddings.dtype),
        "own_images_left_out": int(len(own)),
        "k": int(k),
        "exact": {"method": "blockwise float64, memory-mapped (hetero.index.exact_search)", "seconds": round(exact_s, 3),
                  "queries_per_s": len(queries) / max(exact_s, 1e-9),
                  **(exact.summary() if labelled else {}), "evaluated": exact.queries, "skipped": exact.skipped},
        "approximate": {"index": record.get("kind"), "params": record.get("params"), "seconds": round(approx_s, 3),
                        "queries_per_s": len(queries) / max(approx_s, 1e-9)},
        "recall_at_1": recall_at_k(found, exact.top_k, 1),
        f"recall_at_{k}": recall_at_k(found, exact.top_k, k),
        "speedup": exact_s / max(approx_s, 1e-9),
        "labelled": labelled,
        "peak_rss_mib": round(peak_rss_mib(), 1),
    }
    if labelled:
        assert index.labels is not None  # labelled says so
        ok = ~np.isnan(exact.average_precision)
        hits = index.labels[np.maximum(found[:, 0], 0)] == np.asarray(query_labels)
        section["approximate"]["top1"] = float((hits & (found[:, 0] >= 0))[ok].mean()) if ok.any() else float("nan")
    return section, found


def bench_index(
    gallery_dir: str | os.PathLike[str],
    queries: np.ndarray,
    query_labels: np.ndarray | None,
    query_ids: np.ndarray,
    fingerprint: str,
    out_dir: str | os.PathLike[str],
    what: str = "the artifact",
    extra: dict | None = None,
    k: int = 10,
) -> dict:
    """Search ``gallery_dir`` with the edge queries; write ``report.json``, ``report.md`` and the neighbours.

    Args:
        gallery_dir: a gallery index folder (``hetero index``, or a user's own).
        queries, query_labels, query_ids: the edge model's query embeddings, classes and ids.
        fingerprint: the cloud fingerprint the queries are compatible with (refused if another).
        out_dir: where the report goes.
        what: how the refusal names the query model.
        extra: report keys to add (the artifact, the data).
        k: neighbours searched.
    """
    index = load_index(gallery_dir)
    index.check_fingerprint(fingerprint, what)
    if index.labels is None:
        query_labels = None
    section, found = search_report(index, queries, query_labels, query_ids, k)
    report = {**(extra or {}), "gallery_index": {"directory": str(index.directory), **section}}
    if section["labelled"]:
        report["retrieval"] = {"cross_runtime": {key: section["exact"][key] for key in ("top1", "top5", "map", "map_at_r")}}
    out = Path(out_dir)
    save_npy(out / "neighbours_index.npy", found)
    write_json(out / "report.json", report)
    write_text(out / "report.md", _markdown(report))
    return report


def _markdown(report: dict) -> str:
    g = report["gallery_index"]
    lines = [f"# Queries against gallery index {g['directory']}", "",
             f"{g['queries']} queries, {g['items']} items ({g['dtype']}, dim {g['dim']}); "
             f"{g['own_images_left_out']} own images left out.", "",
             "| search | seconds | queries/s | top-1 | mAP | recall@1 | recall@k |", "|---|---|---|---|---|---|---|"]
    e, a, at_k = g["exact"], g["approximate"], g["recall_at_{}".format(g["k"])]
    fmt = lambda v: "n/a" if v is None else f"{v:.4f}"  # noqa: E731
    lines.append(f"| exact (blockwise) | {e['seconds']:.2f} | {e['queries_per_s']:.1f} | {fmt(e.get('top1'))} | {fmt(e.get('map'))} | 1 | 1 |")
    lines.append(f"| faiss {a['index']} {a['params']} | {a['seconds']:.2f} | {a['queries_per_s']:.1f} | {fmt(a.get('top1'))} | n/a | "
                 f"{g['recall_at_1']:.4f} | {at_k:.4f} |")
    lines += ["", f"Peak memory of the process: {g['peak_rss_mib']:.0f} MiB.", ""]
    return "\n".join(lines)
