"""Exact retrieval metrics and top-k against a gallery too large to rank whole, in bounded memory.

:func:`hetero.metrics.retrieval_metrics` sorts every query's whole gallery: fine for thousands of
items, slow and memory-hungry for millions. Here the gallery (a memory-mapped ``.npy``) is read
chunk by chunk and nothing of size ``queries x gallery`` is ever held:

1. pass one collects each query's similarities to the items of its class (its positives);
2. pass two counts, for every positive, how many items score at least (and more than) it,
   and keeps a running exact top-k.

The counts are all tie-aware average precision needs (DESIGN.md; scikit-learn's definition: a
positive is credited the precision at the end of its group of tied items), so the figures are
those of ``retrieval_metrics``, without any sort of the gallery. Both passes compute each chunk's
similarities by the same float64 product, so a positive's similarity is compared with exactly
the values it was counted among.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from hetero.errors import UserError
from hetero.metrics import l2_normalize

__all__ = ["ExactResult", "exact_search", "gallery_chunks", "recall_at_k", "OwnItems"]

#: Similarities held at once (query block x gallery chunk): 4M float64 values, 32 MiB per array.
BLOCK_ELEMENTS = 4 * 1024 * 1024
#: Gallery rows read (and normalised) at once.
CHUNK_ROWS = 65_536
# Similarity buckets of the counting pass (see _count_pass): 2^16 over [-1, 1].
_BUCKETS = 65_536


@dataclass
class OwnItems:
    """Gallery items left out of a query's ranking: the query's own image where the gallery holds it.

    Attributes:
        query: ``int64 [M]`` query rows.
        item: ``int64 [M]`` the gallery item each pair leaves out.
    """

    query: np.ndarray
    item: np.ndarray

    @classmethod
    def none(cls) -> OwnItems:
        return cls(np.zeros(0, np.int64), np.zeros(0, np.int64))

    def __len__(self) -> int:
        return len(self.query)

    def mask(self, q0: int, q1: int, g0: int, g1: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(rows, columns) inside the block ``[q0:q1] x [g0:g1]``, relative to it."""
        keep = (self.query >= q0) & (self.query < q1) & (self.item >= g0) & (self.item < g1)
        return torch.from_numpy(self.query[keep] - q0), torch.from_numpy(self.item[keep] - g0)


@dataclass
class ExactResult:
    """Exact figures of one set of queries against the gallery.

    Attributes:
        figures: ``top1``, ``top5``, ``map``, ``map_at_r`` as DESIGN.md defines them (empty without labels).
        queries: queries evaluated (with at least one positive); ``skipped``: those without.
        top_k: ``int64 [Nq, k]`` exact nearest items, best first (ties in gallery order).
        top_k_sims: ``float64 [Nq, k]`` their similarities.
        average_precision: ``float64 [Nq]`` per-query AP (``nan`` where not evaluated).
    """

    figures: dict[str, float]
    queries: int
    skipped: int
    top_k: np.ndarray
    top_k_sims: np.ndarray
    average_precision: np.ndarray

    def summary(self) -> dict[str, float]:
        """The figures under their report.json names."""
        return dict(self.figures)


def gallery_chunks(gallery: np.ndarray, rows: int = CHUNK_ROWS) -> Iterator[tuple[int, torch.Tensor]]:
    """``(start, float64 unit rows)`` chunks of a (memory-mapped) gallery of any float dtype.

    Rows are normalised in float32 as :func:`hetero.metrics.l2_normalize` does, so a float16
    gallery is scored as its float32 upcast.
    """
    for start in range(0, len(gallery), rows):
        chunk = l2_normalize(np.asarray(gallery[start : start + rows], dtype=np.float32))
        yield start, torch.from_numpy(chunk).double()


def exact_search(
    queries: np.ndarray,
    gallery: np.ndarray,
    query_labels: np.ndarray | None = None,
    gallery_labels: np.ndarray | None = None,
    own: OwnItems | None = None,
    k: int = 10,
    chunk_rows: int = CHUNK_ROWS,
    block_elements: int = BLOCK_ELEMENTS,
    progress=None,
) -> ExactResult:
    """Exact top-k and (with labels) top-1/5, mAP and mAP@R, reading ``gallery`` in chunks.

    Args:
        queries: ``[Nq, D]`` query embeddings (normalised here; held in memory).
        gallery: ``[Ng, D]`` gallery embeddings, typically ``np.load(..., mmap_mode="r")``.
        query_labels, gallery_labels: classes; without them only the top-k is computed.
        own: items left out of a query's ranking (its own image).
        k: neighbours kept per query.
        chunk_rows: gallery rows per chunk.
        block_elements: similarities held at once (query block x chunk).
        progress: optional callable ``(pairs)`` called after every chunk of every pass with the
            query-item pairs it scored (two passes with labels, one without).

    Returns:
        The figures; identical (up to float64 rounding of duplicates) to
        :func:`hetero.metrics.retrieval_metrics` with the same inputs.
    """
    q = torch.from_numpy(l2_normalize(queries)).double()
    if q.ndim != 2 or gallery.ndim != 2 or gallery.shape[1] != q.shape[1]:
        raise UserError(f"queries {tuple(q.shape)} and gallery {tuple(gallery.shape)} differ in embedding dim; "
                        "they come from models of different cloud models")
    own = own or OwnItems.none()
    nq, ng = len(q), len(gallery)
    k = max(1, min(k, ng))
    labelled = query_labels is not None and gallery_labels is not None
    classes = _ClassIndex(np.asarray(gallery_labels)) if labelled else None
    chunk_rows = max(1, min(chunk_rows, ng))
    # A block holds chunk similarities and every query's positives: both within block_elements.
    widest = classes.largest if classes else 1
    block = max(1, min(nq, block_elements // chunk_rows, block_elements // max(widest, 1)))
    top_idx = np.empty((nq, k), np.int64)
    top_sims = np.empty((nq, k), np.float64)
    ap = np.full(nq, np.nan)
    sums = np.zeros(4)  # hits@1, hits@5, AP, AP@R over evaluated queries
    evaluated = 0
    for q0 in range(0, nq, block):
        q1 = min(q0 + block, nq)
        pairs = classes.pairs(np.asarray(query_labels)[q0:q1], own, q0) if classes else None
        positives, counts, best = _scan(q[q0:q1], gallery, pairs, own, q0, k, chunk_rows, progress)
        top_sims[q0:q1], top_idx[q0:q1] = best[0].numpy(), best[1].numpy()
        if positives is not None:
            block_ap, block_sums, n = _ap_from_counts(positives, counts)
            ap[q0:q1] = block_ap
            sums += block_sums
            evaluated += n
    if labelled and evaluated == 0:
        raise UserError("no query has a same-class item in the gallery: check the labels of the gallery and the queries")
    names = ("top1", "top5", "map", "map_at_r")
    figures = {name: float(v) for name, v in zip(names, sums / evaluated)} if evaluated else {}
    return ExactResult(figures, queries=evaluated, skipped=nq - evaluated if labelled else 0,
                       top_k=top_idx, top_k_sims=top_sims, average_precision=ap)


class _ClassIndex:
    """The gallery items of each class (one stable argsort of the labels)."""

    def __init__(self, labels: np.ndarray) -> None:
        self.order = np.argsort(labels, kind="stable")
        self.sorted = labels[self.order]
        counts = np.unique(self.sorted, return_counts=True)[1] if len(labels) else np.zeros(1, np.int64)
        self.largest = int(counts.max())

    def pairs(self, labels: np.ndarray, own: OwnItems, q0: int) -> tuple[np.ndarray, np.ndarray]:
        """``(rows, items)`` of every query (row of the block) and positive item, sorted by item."""
        lo = np.searchsorted(self.sorted, labels, side="left")
        hi = np.searchsorted(self.sorted, labels, side="right")
        n = hi - lo
        rows = np.repeat(np.arange(len(labels), dtype=np.int64), n)
        starts = np.repeat(lo - (np.cumsum(n) - n), n)
        items = self.order[np.arange(len(rows)) + starts].astype(np.int64)
        if len(own):
            inside = (own.query >= q0) & (own.query < q0 + len(labels))
            drop = np.isin(rows * (1 << 40) + items, (own.query[inside] - q0) * (1 << 40) + own.item[inside])
            rows, items = rows[~drop], items[~drop]
        by_item = np.argsort(items, kind="stable")
        return rows[by_item], items[by_item]


def _similarities(qb: torch.Tensor, start: int, chunk: torch.Tensor, own: OwnItems, q0: int) -> torch.Tensor:
    """The block's float64 similarities, a query's own items at ``-inf`` (never ranked, never counted)."""
    sims = qb @ chunk.T
    rows, cols = own.mask(q0, q0 + len(qb), start, start + len(chunk))
    if len(rows):
        sims[rows, cols] = -float("inf")
    return sims


def _mark_positive_buckets(qb: torch.Tensor, gallery: np.ndarray, pairs, nb: int) -> torch.Tensor:
    """``bool [B * nb]``: the buckets where a positive of each query falls.

    Scored here by a row-wise product, a positive's similarity may differ in the last bits from
    the value the chunk's matrix product gives it; the neighbouring buckets are marked too, so
    its bucket by either value is marked.
    """
    rows, items = pairs
    marked = torch.zeros(len(qb) * nb, dtype=torch.bool)
    step = 131_072  # pairs scored at once (with D = 128: 128 MiB of float64 rows)
    for i in range(0, len(rows), step):
        g = torch.from_numpy(l2_normalize(np.asarray(gallery[items[i : i + step]], dtype=np.float32))).double()
        r = torch.from_numpy(rows[i : i + step])
        bucket = _bucket((qb[r] * g).sum(1), nb).long() + r * nb
        for shift in (-1, 0, 1):
            marked[(bucket + shift).clamp(r * nb, r * nb + nb - 1)] = True
    return marked


def _scan(qb, gallery, pairs, own, q0, k, chunk_rows, progress):
    """One pass over the gallery for a block of queries: the exact top-k and, with labels, the counts.

    Comparing every item with every positive (a binary search per item) would be the cost of the
    whole evaluation; instead each item only falls into one of ``nb`` fixed buckets of similarity
    (a histogram per query) and is kept, value and all, only where its bucket holds a positive. A
    positive's counts are then the items of the buckets above its own plus the kept items of its
    bucket that score at least as high (or higher): exact, at a few operations per item. Each
    positive's own similarity is read from the same chunk product it is counted among.

    Returns:
        The positives (ascending, ``+inf``-padded, and their number per query; ``None`` without
        labels), the ``(ge, gt)`` int64 ``[B, P]`` counts, and the top-k ``(sims, indices)``.
    """
    b, nb = len(qb), _buckets(len(gallery))
    best_s = torch.full((b, 0), -float("inf"), dtype=torch.float64)
    best_i = torch.zeros((b, 0), dtype=torch.int64)
    offset = (torch.arange(b, dtype=torch.int32) * nb)[:, None]
    if pairs is not None:
        marked = _mark_positive_buckets(qb, gallery, pairs, nb)
        hist = torch.zeros(b * nb, dtype=torch.int64)
        kept_key, kept_sim = [], []
        pos_rows, pos_items = torch.from_numpy(pairs[0]), torch.from_numpy(pairs[1])
        pos_sims = torch.empty(len(pos_rows), dtype=torch.float64)
    for start, chunk in gallery_chunks(gallery, chunk_rows):
        sims = _similarities(qb, start, chunk, own, q0)
        if pairs is not None:
            lo, hi = np.searchsorted(pairs[1], [start, start + len(chunk)])
            pos_sims[lo:hi] = sims[pos_rows[lo:hi], pos_items[lo:hi] - start]
            # A query's own image (-inf) lands in bucket 0, never above a positive and below any there.
            key = _bucket(sims, nb).add_(offset).view(-1)
            hist += torch.bincount(key, minlength=b * nb)
            keep = marked[key].nonzero().view(-1)
            kept_key.append(key[keep].long())
            kept_sim.append(sims.view(-1)[keep])
        top = torch.topk(sims, min(k, sims.shape[1]), dim=1, sorted=True)
        # Ties kept in gallery order (topk itself does not order them).
        best_s, best_i = _gallery_order_ties(torch.cat([best_s, top.values], 1), torch.cat([best_i, top.indices + start], 1))
        best_s, best_i = best_s[:, :k], best_i[:, :k]
        if progress:
            progress(len(chunk) * b)
    if pairs is None:
        return None, None, (best_s, best_i)
    positives = _padded(pos_rows, pos_sims, b)
    pos_bucket = (_bucket(positives[0], nb) + offset).long()  # +inf padding: the last bucket, harmless
    per_query = hist.view(b, nb)
    above = (per_query.sum(1, keepdim=True) - per_query.cumsum(1)).view(-1)  # items in higher buckets
    base = above[pos_bucket]
    same_ge, same_gt = _same_bucket_counts(pos_bucket, positives[0], torch.cat(kept_key), torch.cat(kept_sim))
    return positives, (base + same_ge, base + same_gt), (best_s, best_i)


def _padded(rows: torch.Tensor, values: torch.Tensor, b: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row's values ascending in ``float64 [B, P]``, padded with ``+inf``; and their counts."""
    npos = torch.bincount(rows, minlength=b)
    padded = torch.full((b, max(int(npos.max()) if b else 1, 1)), float("inf"), dtype=torch.float64)
    # Sort by (row, value): a stable sort by value, then a stable one by row.
    order = torch.sort(values, stable=True).indices
    order = order[torch.sort(rows[order], stable=True).indices]
    r, v = rows[order], values[order]
    slot = torch.arange(len(r)) - torch.repeat_interleave(torch.cumsum(npos, 0) - npos, npos)
    padded[r, slot] = v
    return padded, npos


def _buckets(items: int) -> int:
    """Similarity buckets for a gallery of ``items``: at least as many as items, 256 to 65,536."""
    return int(min(_BUCKETS, max(256, 1 << max(0, items.bit_length()))))


def _bucket(sims: torch.Tensor, buckets: int) -> torch.Tensor:
    """A monotone int32 bucket of each similarity (``s1 >= s2`` implies ``bucket1 >= bucket2``)."""
    return (sims + 1.0).mul_(buckets / 2).floor_().clamp_(0, buckets - 1).to(torch.int32)


def _same_bucket_counts(pos_key: torch.Tensor, pos_sim: torch.Tensor, key: torch.Tensor, sim: torch.Tensor):
    """For each positive, the kept items of its (query, bucket) key scoring >= and > it (exact).

    Similarities are replaced by their rank among all the values involved (equal values, equal
    rank), so ``key * ranks + rank`` is one exact int64 order: the items of a positive's key at
    or above it are then two binary searches away.
    """
    shape = pos_key.shape
    pk, ik = pos_key.reshape(-1).numpy().astype(np.int64), key.numpy().astype(np.int64)
    values, rank = np.unique(np.concatenate([pos_sim.reshape(-1).numpy(), sim.numpy()]), return_inverse=True)
    width = np.int64(len(values) + 1)
    p_rank, i_rank = rank[: len(pk)].astype(np.int64), rank[len(pk):].astype(np.int64)
    items = np.sort(ik * width + i_rank)
    key_end = np.searchsorted(items, (pk + 1) * width, side="left")
    ge = key_end - np.searchsorted(items, pk * width + p_rank, side="left")
    gt = key_end - np.searchsorted(items, pk * width + p_rank, side="right")
    return torch.from_numpy(ge.reshape(shape)), torch.from_numpy(gt.reshape(shape))


def _gallery_order_ties(sims: torch.Tensor, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Order each row by similarity, then gallery index (what a stable full sort gives)."""
    order = torch.from_numpy(np.lexsort((idx.numpy(), -sims.numpy()), axis=-1))
    return sims.gather(1, order), idx.gather(1, order)


def _ap_from_counts(positives, counts) -> tuple[np.ndarray, np.ndarray, int]:
    """Per-query AP and the block's summed figures (hits@1, hits@5, AP, AP@R) from the counts.

    A positive of similarity ``s`` ends its tie group at place ``ge(s)`` (items scoring >= s); the
    positives up to there are those scoring >= s, so it is credited ``pos_ge(s) / ge(s)``. For
    AP@R the group's places run from ``gt(s) + 1`` to ``ge(s)``; its share within R is credited.
    """
    sims, npos = positives
    ge, gt = counts
    b, width = sims.shape
    valid = torch.arange(width)[None, :] < npos[:, None]
    # Positives scoring >= each positive: those at or after its first tied copy in ascending order.
    pos_ge = npos[:, None] - torch.searchsorted(sims, sims, right=False)
    ge_f, gt_f = ge.double(), gt.double()
    credit = torch.where(valid, pos_ge.double() / ge_f.clamp(min=1), torch.zeros(()).double())
    n = npos.double().clamp(min=1)
    ap = credit.sum(1) / n
    within_r = ((npos[:, None].double() - gt_f) / (ge_f - gt_f).clamp(min=1)).clamp(0.0, 1.0)
    ap_r = (credit * within_r).sum(1) / n
    # The best positive (the last, ascending): a hit@k when fewer than k non-matching items score >= it.
    last = (npos - 1).clamp(min=0)[:, None]
    best_ge = ge.gather(1, last)[:, 0]
    best_pos_eq = npos - torch.searchsorted(sims, sims.gather(1, last), right=False)[:, 0]
    negatives_before = best_ge - best_pos_eq
    ok = npos > 0
    ap_np = np.where(ok.numpy(), ap.numpy(), np.nan)
    sums = np.array([
        float(((negatives_before < 1) & ok).sum()),
        float(((negatives_before < 5) & ok).sum()),
        float(ap[ok].sum()),
        float(ap_r[ok].sum()),
    ])
    return ap_np, sums, int(ok.sum())


def recall_at_k(approx: np.ndarray, exact: np.ndarray, k: int) -> float:
    """Mean share of each query's exact top-``k`` that the approximate search also returned in its top ``k``.

    ``-1`` (faiss: fewer results than asked) never counts as found.
    """
    a, e = np.asarray(approx)[:, :k], np.asarray(exact)[:, :k]
    if a.size == 0:
        return float("nan")
    found = (a[:, :, None] == e[:, None, :]) & (e[:, None, :] >= 0)
    return float(found.any(1).sum(1).mean() / e.shape[1])
