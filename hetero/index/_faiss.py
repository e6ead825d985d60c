"""The faiss index of a gallery: flat (exact), IVF or HNSW, built from a memory-mapped .npy in chunks.

All three use inner product on unit rows (cosine similarity), the metric hetero ranks by.
"""

from __future__ import annotations

import importlib.util
import math
import os

import numpy as np

from hetero.errors import UserError
from hetero.metrics import l2_normalize

__all__ = ["INDEX_KINDS", "default_kind", "default_params", "build_faiss", "search_faiss", "set_search_params", "require_faiss"]

INDEX_KINDS = ("flat", "ivf", "hnsw")
#: Galleries from this size on get an approximate index by default. Below it flat search is fast
#: enough and exact: 706 queries/s on one loaded core at 100k x 128 (benchmarks/scale.py), where
#: IVF needed half its lists probed, and HNSW 118 s of building, to reach recall@1 0.95.
APPROXIMATE_FROM = 1_000_000
_ADD_ROWS = 65_536  # rows converted and added at once


def require_faiss():
    """The faiss module, or one line saying how to install it."""
    if importlib.util.find_spec("faiss") is None:
        raise UserError("faiss is not installed: pip install 'hetero[index]' (faiss-cpu)")
    import faiss

    # One thread unless HETERO_THREADS says otherwise (as torch in hetero.runtime).
    faiss.omp_set_num_threads(int(os.environ.get("HETERO_THREADS", "1")))
    return faiss


def default_kind(items: int) -> str:
    """flat below :data:`APPROXIMATE_FROM` items, IVF from there (built in a minute, memory = the data)."""
    return "flat" if items < APPROXIMATE_FROM else "ivf"


def default_params(kind: str, items: int) -> dict:
    """Build and search settings: IVF with about sqrt(N) lists, 1/16 of them probed; HNSW M=32.

    On real cloud embeddings (1M augmented Omniglot views, benchmarks/scale.py) IVF probing 1/16
    of 1,024 lists finds exact search's top-1 for every one of 1,000 held-out queries at 19.8x its
    throughput (1/64: 0.998 at 77.8x); on a synthetic set of isotropic noise, far harder for any
    index, it needs half the lists.
    """
    if kind == "ivf":
        nlist = int(min(65_536, max(1, 2 ** round(math.log2(max(math.sqrt(items), 1))))))
        return {"nlist": nlist, "nprobe": max(1, nlist // 16), "train_items": int(min(items, 64 * nlist))}
    if kind == "hnsw":
        return {"M": 32, "ef_construction": 40, "ef_search": 128}
    if kind == "flat":
        return {}
    raise UserError(f"unknown index kind {kind!r}: use one of {', '.join(INDEX_KINDS)}")


def _rows(embeddings: np.ndarray, start: int, stop: int) -> np.ndarray:
    return np.ascontiguousarray(l2_normalize(np.asarray(embeddings[start:stop], dtype=np.float32)))


def build_faiss(embeddings: np.ndarray, kind: str, params: dict | None = None, seed: int = 0, progress=None):
    """A faiss index over ``embeddings`` (any float dtype, e.g. a float16 memory map), added in chunks.

    Args:
        embeddings: ``[N, D]`` rows (normalised here in float32).
        kind: ``flat``, ``ivf`` or ``hnsw``.
        params: settings (default :func:`default_params`).
        seed: IVF's training sample and k-means.
        progress: optional callable ``(rows_added)``.

    Returns:
        The index and the settings it was built with.
    """
    faiss = require_faiss()
    n, d = embeddings.shape
    params = {**default_params(kind, n), **(params or {})}
    if kind == "flat":
        index = faiss.IndexFlatIP(d)
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(d, int(params["M"]), faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = int(params["ef_construction"])
    else:
        nlist = int(min(params["nlist"], n))
        params["nlist"] = nlist
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, nlist, faiss.METRIC_INNER_PRODUCT)
        # k-means on a seeded sample: what the lists are cut from, not the whole gallery.
        sample = np.sort(np.random.default_rng(seed).choice(n, size=min(n, int(params["train_items"])), replace=False))
        index.cp.seed = seed
        index.train(np.ascontiguousarray(l2_normalize(np.asarray(embeddings[sample], dtype=np.float32))))
    for start in range(0, n, _ADD_ROWS):
        index.add(_rows(embeddings, start, min(n, start + _ADD_ROWS)))
        if progress:
            progress(min(_ADD_ROWS, n - start))
    set_search_params(index, kind, params)
    return index, params


def set_search_params(index, kind: str, params: dict) -> None:
    """Apply the search-time settings (nprobe, efSearch) recorded with the index."""
    if kind == "ivf" and "nprobe" in params:
        index.nprobe = int(params["nprobe"])
    if kind == "hnsw" and "ef_search" in params:
        index.hnsw.efSearch = int(params["ef_search"])


def search_faiss(index, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """``(similarities, indices)`` of the ``k`` nearest items (``-1`` where fewer were found)."""
    sims, idx = index.search(np.ascontiguousarray(l2_normalize(queries)), int(k))
    return sims, idx.astype(np.int64)
