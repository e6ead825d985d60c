"""The gallery index: the cloud model's embeddings of the gallery, computed once and cached.

A gallery is indexed by one cloud model; a query embedded by an edge model trained for another
cloud model is not comparable with it. The cache therefore records the cloud fingerprint (and
the data it was built from) in ``index.json`` and refuses to serve a query model of another cloud.

Layout of a cache folder::

    gallery.npy   float32 [N, D] cloud embeddings (L2-normalised)
    labels.npy    int64 [N] class of each item
    index.json    cloud fingerprint and cost, data spec, seed, protocol, size, search method

A gallery *index* written by ``hetero index`` (or a user's own embeddings) is another thing: any
gallery, of any size, searched by :func:`bench_on_index` in bounded memory.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from hetero._io import read_json, save_npy, write_json
from hetero.errors import UserError
from hetero.metrics import check_embeddings, l2_normalize, retrieval_metrics
from hetero.metrics._retrieval import GalleryRows, rank_gallery

__all__ = ["Gallery", "GALLERY_FORMAT", "FAISS_MIN_ITEMS", "load_gallery", "build_gallery", "top_k", "search_method",
           "bench_on_index"]

GALLERY_FORMAT = "hetero.gallery/1"
#: From this many gallery items on, top-k search goes through faiss (IndexFlatIP: exact, SIMD,
#: multi-threaded); below it, blocks of torch matrix products are as fast and need no index.
FAISS_MIN_ITEMS = 50_000
# Similarities held at once by the block search (query block x gallery): 64 MiB of float64.
_BLOCK_ELEMENTS = 8 * 1024 * 1024
#: Candidates faiss returns beyond k: re-ranked in float64, they show whether its float32 set is exact.
_FAISS_MARGIN = 8


@dataclass
class Gallery:
    """Cloud embeddings of the gallery images and what they were built from.

    Attributes:
        embeddings: ``float32 [N, D]`` unit rows.
        labels: ``int64 [N]``.
        info: the ``index.json`` record (fingerprint, data, cloud cost, ...).
        directory: the cache folder, or ``None`` when not cached.
    """

    embeddings: np.ndarray
    labels: np.ndarray
    info: dict
    directory: Path | None = None
    _paragon: object = field(default=None, init=False, repr=False)

    @property
    def fingerprint(self) -> str:
        return self.info["cloud"]["fingerprint"]

    def check_fingerprint(self, fingerprint: str, what: str = "the artifact") -> None:
        """Refuse queries from a model compatible with another cloud model (one readable line)."""
        _check_same_cloud(self.fingerprint, fingerprint, self.directory, what)

    def paragon(self):
        """Cloud-to-cloud retrieval over the gallery, computed once (every device's report shares it)."""
        if self._paragon is None:
            self._paragon = retrieval_metrics(self.embeddings, self.embeddings, self.labels, self.labels, same_images=True)
        return self._paragon

    def search(self, queries: np.ndarray, k: int, same_images: bool) -> np.ndarray:
        """Indices ``int64 [Nq, k]`` of the ``k`` most similar gallery items (see :func:`top_k`).

        With ``same_images`` the queries are the gallery's images, so their labels are known and a
        tie ranks as in the retrieval metrics: the first neighbour is the top-1 decision.
        """
        if same_images:
            return top_k(queries, self.embeddings, k, True, self.labels, self.labels)
        return top_k(queries, self.embeddings, k, False)


def _check_same_cloud(gallery_fp: str, fingerprint: str, directory: Path | None, what: str) -> None:
    if fingerprint != gallery_fp:
        where = f"gallery index {directory}" if directory else "the gallery"
        raise UserError(
            f"{where} was built with cloud model {gallery_fp[:19]}... but {what} is compatible with "
            f"cloud model {fingerprint[:19]}...; its queries cannot search this gallery: pass --gallery "
            "for a folder built with that cloud model (or a new folder to build one)"
        )


def _data_record(test, protocol: str | None, seed: int | None) -> dict:
    return {"spec": test.spec, "protocol": protocol, "seed": None if seed is None else int(seed), "items": int(len(test.labels))}


def build_gallery(cloud, test, protocol: str | None, seed: int | None, directory: str | os.PathLike[str] | None = None) -> Gallery:
    """Embed the gallery images with ``cloud``; cache them in ``directory`` when given."""
    from hetero.cost import count_cost

    embeddings = l2_normalize(cloud.embed(test.images))
    info = {
        "format": GALLERY_FORMAT,
        "cloud": {"fingerprint": cloud.fingerprint, **count_cost(cloud.net, cloud.input_shape)},
        "data": _data_record(test, protocol, seed),
        "embedding_dim": int(embeddings.shape[1]),
        "search": search_method(len(embeddings)),
    }
    gallery = Gallery(embeddings, np.asarray(test.labels, dtype=np.int64), info)
    if directory is not None:
        out = Path(directory)
        save_npy(out / "gallery.npy", gallery.embeddings)
        save_npy(out / "labels.npy", gallery.labels)
        # index.json last: a folder without it is an unfinished cache and is rebuilt.
        write_json(out / "index.json", info)
        gallery.directory = out
    return gallery


def load_gallery(
    directory: str | os.PathLike[str],
    test,
    protocol: str,
    seed: int,
    fingerprint: str,
    cloud=None,
) -> Gallery:
    """The cached gallery in ``directory``, built with ``cloud`` first if the folder holds none.

    Args:
        directory: the cache folder.
        test: the gallery images (the test split).
        protocol, seed: how the split was made (recorded, and checked on reuse).
        fingerprint: the cloud fingerprint the queries are compatible with.
        cloud: the cloud model, needed only to build a missing cache.

    Raises:
        UserError: the cache was built by another cloud model or from other images, or there is
            no cache and no cloud model to build one.
    """
    folder = Path(directory)
    if not (folder / "index.json").is_file():
        if cloud is None:
            raise UserError(f"--gallery {folder} holds no gallery index (index.json); pass --cloud DIR to build it")
        _check_same_cloud(cloud.fingerprint, fingerprint, None, "the artifact")
        return build_gallery(cloud, test, protocol, seed, folder)
    info = read_json(folder / "index.json")
    if not isinstance(info, dict) or info.get("format") != GALLERY_FORMAT:
        raise UserError(f"{folder}/index.json is not a hetero gallery index; pass another --gallery folder")
    gallery = Gallery(np.zeros((0, 0), np.float32), np.zeros(0, np.int64), info, folder)
    gallery.check_fingerprint(fingerprint)
    if cloud is not None:
        gallery.check_fingerprint(cloud.fingerprint, what="--cloud")
    wanted = _data_record(test, protocol, seed)
    if info.get("data") != wanted:
        raise UserError(
            f"gallery index {folder} was built from {info.get('data')}, not {wanted}; pass the same --data, "
            "--protocol and --seed, or another --gallery folder"
        )
    try:
        gallery.embeddings = check_embeddings(np.load(folder / "gallery.npy"), f"{folder}/gallery.npy", dim=info["embedding_dim"])
        gallery.labels = np.load(folder / "labels.npy")
    except (OSError, ValueError) as exc:
        raise UserError(f"gallery index {folder} is damaged ({exc}); delete the folder to rebuild it") from None
    if not np.array_equal(gallery.labels, test.labels):
        raise UserError(f"gallery index {folder} labels differ from the test split's; delete the folder to rebuild it")
    return gallery


def top_k(
    queries: np.ndarray,
    gallery: np.ndarray,
    k: int,
    same_images: bool,
    query_labels: np.ndarray | None = None,
    gallery_labels: np.ndarray | None = None,
) -> np.ndarray:
    """The ``k`` gallery items most similar (dot product) to each query, best first.

    Exact either way: faiss ``IndexFlatIP`` for galleries of :data:`FAISS_MIN_ITEMS` items or
    more, blocks of torch matrix products below; both order exact ties the same way. With labels,
    a tie is resolved against the query as :func:`hetero.metrics.rank_gallery` does (a tied
    non-matching item first), so the first neighbour is the top-1 decision of
    :func:`hetero.metrics.retrieval_metrics`; without them (a deployment knows no labels) ties
    keep gallery order. With ``same_images`` (query ``i`` is gallery item ``i``) each query's own
    image is left out.
    """
    q = l2_normalize(queries)
    g = l2_normalize(gallery)
    k = min(k, len(g) - (1 if same_images else 0))
    own = np.arange(len(q)) if same_images else None
    labels = None
    if query_labels is not None and gallery_labels is not None:
        labels = (torch.as_tensor(np.asarray(query_labels), dtype=torch.int64),
                  torch.as_tensor(np.asarray(gallery_labels), dtype=torch.int64))
    if search_method(len(g)).startswith("faiss"):
        return _top_k_faiss(q, g, k, own, labels)
    return _top_k_blocks(q, g, k, own, labels)


def search_method(items: int) -> str:
    """How :func:`top_k` searches a gallery of ``items``: faiss where large and installed."""
    if items < FAISS_MIN_ITEMS:
        return "exact, blocks"
    if importlib.util.find_spec("faiss") is None:
        return "exact, blocks (faiss not installed: pip install 'hetero[index]')"
    return "faiss IndexFlatIP (exact)"


def _top_k_blocks(q: np.ndarray, g: np.ndarray, k: int, own: np.ndarray | None,
                  labels: tuple[torch.Tensor, torch.Tensor] | None) -> np.ndarray:
    """Exact top-k by blocks of matrix products; ``own[i]``: the gallery index left out of query ``i``'s."""
    # Scored as hetero.metrics.retrieval_metrics scores them: the same order, whatever the BLAS.
    qt, rows = torch.from_numpy(q).double(), GalleryRows(g)
    block = max(1, _BLOCK_ELEMENTS // max(len(g), 1))
    out = np.empty((len(q), k), dtype=np.int64)
    for start in range(0, len(q), block):
        sims = rows.similarities(qt[start : start + block])
        if own is not None:
            sims[torch.arange(len(sims)), torch.from_numpy(own[start : start + len(sims)])] = -float("inf")
        if labels is not None:
            relevant = labels[1][None, :] == labels[0][start : start + len(sims), None]
            order = rank_gallery(sims, relevant)[0]
        else:  # stable: tied items keep gallery order
            order = torch.sort(sims, dim=1, descending=True, stable=True).indices
        out[start : start + len(sims)] = order[:, :k].numpy()
    return out


def _top_k_faiss(q: np.ndarray, g: np.ndarray, k: int, own: np.ndarray | None,
                 labels: tuple[torch.Tensor, torch.Tensor] | None) -> np.ndarray:
    """faiss finds candidates in float32; they are re-ranked exactly as the blocks rank.

    faiss orders near and exact ties as its float32 sums and heap leave them. Its candidates
    (k plus a margin) are therefore scored again in float64 and ranked by :func:`_top_k_blocks`'s
    rule; a row is accepted only when its k-th item beats the best item faiss left out by more
    than float32 rounding can explain, so nothing outside the candidates could belong in its top
    k. The other rows (many ties or near-duplicates) are searched again by the blocks.
    """
    import faiss

    index = faiss.IndexFlatIP(g.shape[1])
    index.add(np.ascontiguousarray(g))
    wanted = min(k + _FAISS_MARGIN + (own is not None), len(g))
    sims32, found = index.search(np.ascontiguousarray(q), wanted)
    found = found.astype(np.int64)
    # |float32 dot - exact| <= D * 2^-24 for unit vectors; twice that covers both sides.
    slack = 2 * g.shape[1] * 2.0**-24
    out = np.empty((len(q), k), dtype=np.int64)
    redo = []
    for i in range(len(q)):
        cand = found[i] if own is None else found[i][found[i] != own[i]]
        sims = GalleryRows(g[cand]).similarities(torch.from_numpy(q[i : i + 1]).double())[0].numpy()
        relevant = np.zeros(len(cand), bool) if labels is None else (labels[1][torch.from_numpy(cand)] == labels[0][i]).numpy()
        # The blocks' order: similarity, then (with labels) non-matching first, then gallery index.
        order = np.lexsort((cand, relevant, -sims))
        complete = len(cand) >= len(g) - (own is not None)  # faiss returned the whole gallery
        if len(cand) < k or (not complete and sims[order[k - 1]] <= sims32[i, -1] + slack):
            redo.append(i)
            continue
        out[i] = cand[order[:k]]
    if redo:
        rows = np.asarray(redo)
        sub_labels = None if labels is None else (labels[0][torch.from_numpy(rows)], labels[1])
        out[rows] = _top_k_blocks(q[rows], g, k, None if own is None else own[rows], sub_labels)
    return out


def bench_on_index(inputs, test, gallery_dir: str | os.PathLike[str], out_dir: str | os.PathLike[str],
                   threads: int | None = None, runtime_queries: np.ndarray | None = None, k: int = 10) -> dict:
    """The artifact's queries (the test images) searched in a gallery index (``hetero index`` or a user's own).

    The gallery is not the test split here: it is whatever the index holds, and a query's own
    image is left out where the index holds it (same pixel hash). Exact metrics come from a
    blockwise, memory-mapped search; faiss's top-k is reported beside them with its recall.

    Args:
        inputs: the verified artifact (:class:`hetero.bench.BenchInputs`).
        test: the query images (the test split of ``--data``).
        gallery_dir: the index folder; refused if built with another cloud model.
        out_dir: where ``report.json``, ``report.md`` and ``neighbours_index.npy`` go.
        threads: runtime threads.
        runtime_queries: embeddings made on the device (``--embeddings``); else the runtime runs here.
        k: neighbours searched.
    """
    from hetero.bench._inputs import query_inputs
    from hetero.index import bench_index, image_ids, load_index

    # Refuse another cloud's gallery before embedding anything.
    load_index(gallery_dir, verify=False).check_fingerprint(inputs.manifest["cloud_fingerprint"], "the artifact")
    if runtime_queries is None:
        from hetero.devices import RuntimeUnavailableError
        from hetero.devices.runtimes import get_runtime

        try:
            runner = get_runtime(inputs.runtime).load(inputs.artifact, threads=threads)
        except RuntimeUnavailableError as exc:
            raise UserError(f"{exc}; run it on the device instead: --export-inputs DIR, `python -m hetero.devices.run`, "
                            "then --embeddings") from None
        runtime_queries = runner.run(query_inputs(inputs.preprocess, test.images))
    elif len(runtime_queries) != len(test.labels):
        raise UserError(f"--embeddings holds {len(runtime_queries)} rows but the test split has {len(test.labels)} queries; "
                        "embed the inputs written by --export-inputs with the same --data and --seed")
    extra = {"device": inputs.manifest["device"], "backend": inputs.manifest["format"],
             "precision": inputs.manifest["precision"], "data": {"spec": test.spec, "queries": int(len(test.labels))},
             "cloud": {"fingerprint": inputs.manifest["cloud_fingerprint"]}}
    return bench_index(gallery_dir, runtime_queries, np.asarray(test.labels), image_ids(test.images),
                       inputs.manifest["cloud_fingerprint"], out_dir, extra=extra, k=k)
