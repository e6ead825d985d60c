"""Galleries at scale: `hetero index` (cloud embeddings in resumable parts, a faiss index, a
manifest with the cloud fingerprint and sha256s) and the exact and approximate search of such a
gallery in bounded memory (`hetero bench --gallery DIR`)."""

from hetero.index._build import DTYPES, build_index
from hetero.index._evaluate import bench_index, search_report
from hetero.index._exact import ExactResult, OwnItems, exact_search, gallery_chunks, recall_at_k
from hetero.index._faiss import INDEX_KINDS, build_faiss, default_kind, default_params, search_faiss
from hetero.index._store import INDEX_FORMAT, GalleryIndex, image_ids, is_index_dir, load_index

__all__ = [
    "build_index",
    "DTYPES",
    "bench_index",
    "search_report",
    "ExactResult",
    "OwnItems",
    "exact_search",
    "gallery_chunks",
    "recall_at_k",
    "INDEX_KINDS",
    "build_faiss",
    "default_kind",
    "default_params",
    "search_faiss",
    "INDEX_FORMAT",
    "GalleryIndex",
    "image_ids",
    "is_index_dir",
    "load_index",
]
