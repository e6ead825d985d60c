"""Retrieval metrics exactly as DESIGN.md defines them, computed block by block.

Queries are ranked against the whole gallery one block of queries at a time, so memory stays
bounded (``block_size x gallery`` similarities) for 100k queries against a 100k gallery.

Exact ties in similarity are judged, never left to the gallery's order (which would let a
collapsed model score by how the gallery happens to be sorted):

- mAP and mAP@R treat a group of tied items as scikit-learn's ``average_precision_score``
  treats tied scores: one threshold, its positives credited the precision at the group's end, so
  a model that ties everything scores chance;
- top-k, ``top1_index`` and ``top1_correct`` rank a tied non-matching item before a tied matching
  one: a tie is not a hit.

Similarities are computed in float64 from the float32 unit embeddings, so the same embeddings
give the same figures on any machine and thread count.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from hetero.errors import UserError

__all__ = ["RetrievalResult", "GalleryRows", "retrieval_metrics", "rank_gallery", "check_embeddings", "l2_normalize"]

# Similarities held at once: block_size * gallery_size float64 values (64 MiB).
_MAX_BLOCK_ELEMENTS = 8 * 1024 * 1024


@dataclass
class RetrievalResult:
    """Summary figures and the per-query decisions behind them.

    Attributes:
        top1, top5, map, map_at_r: the DESIGN.md metrics over the evaluated queries.
        queries: number of queries evaluated (those with at least one positive).
        skipped: queries dropped because the gallery holds no item of their class.
        top1_index: ``int64 [Nq]`` gallery index ranked first for each query (-1 if skipped).
        top1_correct: ``bool [Nq]`` whether that item is of the query's class.
        evaluated: ``bool [Nq]`` which queries count.
        average_precision: ``float64 [Nq]`` each query's AP (NaN where it does not count): what
            a paired comparison of two models on the same queries resamples.
    """

    top1: float
    top5: float
    map: float
    map_at_r: float
    queries: int
    skipped: int
    top1_index: np.ndarray
    top1_correct: np.ndarray
    evaluated: np.ndarray
    average_precision: np.ndarray

    def summary(self) -> dict[str, float]:
        """The four figures under their report.json names."""
        return {"top1": self.top1, "top5": self.top5, "map": self.map, "map_at_r": self.map_at_r}


def l2_normalize(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Row-wise L2 normalisation in float32."""
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), eps)


def check_embeddings(x: np.ndarray, name: str, dim: int | None = None) -> np.ndarray:
    """Validate an embedding matrix: 2-D, finite, float, of the expected dim."""
    x = np.asarray(x)
    if x.ndim != 2:
        raise UserError(f"{name}: embeddings must be a 2-D array [N, D], got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.floating):
        raise UserError(f"{name}: embeddings must be floating point, got {x.dtype}")
    if dim is not None and x.shape[1] != dim:
        raise UserError(
            f"{name}: embedding dim {x.shape[1]} does not match the expected {dim}; "
            "these embeddings come from another model"
        )
    if not np.isfinite(x).all():
        raise UserError(f"{name}: embeddings contain NaN or infinite values; the model or runtime is broken")
    return x.astype(np.float32, copy=False)


class GalleryRows:
    """A gallery's unit embeddings, ready to score queries against, the same way for every item.

    Similarities are float64 dot products of the float32 unit rows (each product is exact in
    float64), so a ranking follows from the embeddings, not from how a BLAS and its thread count
    round float32 sums: those reorder a weak model's near-ties from one run or machine to the
    next. A matrix product may still round one column differently from another (its kernels
    differ at the matrix's edges), which would split a tie between identical items depending on
    where they sit in the gallery; so each distinct row is scored once and shared by its copies.

    Attributes:
        rows: ``float64 [U, D]`` the distinct rows.
        inverse: ``int64 [N]`` each item's row in ``rows``.
    """

    def __init__(self, gallery: np.ndarray) -> None:
        unique, inverse = np.unique(np.asarray(gallery, dtype=np.float32), axis=0, return_inverse=True)
        self.rows = torch.from_numpy(unique).double()
        self.inverse = torch.from_numpy(inverse.reshape(-1).astype(np.int64))

    def similarities(self, queries: torch.Tensor) -> torch.Tensor:
        """``float64 [B, N]`` similarities of ``queries`` (``float64 [B, D]`` unit rows) to every item."""
        return (queries @ self.rows.T)[:, self.inverse]


def rank_gallery(sims: torch.Tensor, relevant: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Order each row of ``sims`` best first, a tie resolved against the query.

    Among items of exactly equal similarity the non-matching ones come first (then gallery
    order): a tie with a wrong item is never a hit by the luck of where the right one was stored.
    A degenerate model that embeds everything alike therefore scores top-k 0, not the share of
    galleries that happen to start with the right class.

    Args:
        sims: ``[B, N]`` similarities.
        relevant: ``[B, N]`` bool, item of the query's class.

    Returns:
        The gallery indices ``[B, N]`` in rank order and the similarities in that order.
    """
    # Two stable sorts make a lexicographic one: by relevance (False first), then by similarity.
    by_relevance = torch.sort(relevant.to(torch.uint8), dim=1, stable=True).indices
    sims_then = sims.gather(1, by_relevance)
    by_sim = torch.sort(sims_then, dim=1, descending=True, stable=True)
    return by_relevance.gather(1, by_sim.indices), by_sim.values


def _tie_aware_ap(rel: torch.Tensor, sims: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Average precision and AP@R of ranked rows, items of equal similarity taken as one group.

    As scikit-learn's ``average_precision_score``: each group of tied items is one threshold, and
    every positive in it is credited the precision at the group's end (its positives over all its
    items so far). The order within a group therefore never matters, and a model that ties
    everything scores the share of positives, chance. AP@R credits each positive of a group that
    straddles rank R by the fraction of the group's places within R (its expected share under a
    random order of the group); without ties both reduce to the usual definitions.

    Args:
        rel: ``[B, N]`` float64 relevance in rank order, every row with a positive.
        sims: ``[B, N]`` the similarities in the same order (descending).

    Returns:
        AP and AP@R, ``[B]`` each.
    """
    b, n = rel.shape
    position = torch.arange(n).expand(b, n)
    is_end = torch.ones(b, n, dtype=torch.bool)
    is_end[:, :-1] = sims[:, 1:] != sims[:, :-1]
    is_start = torch.ones(b, n, dtype=torch.bool)
    is_start[:, 1:] = is_end[:, :-1]
    # Each place's group: its last place (a reversed running minimum) and its first (a running maximum).
    end = torch.where(is_end, position, torch.full_like(position, n)).flip(1).cummin(1).values.flip(1)
    first = torch.where(is_start, position, torch.zeros_like(position)).cummax(1).values
    positives_so_far = rel.cumsum(1)
    precision_at_end = positives_so_far.gather(1, end) / (end + 1).to(torch.float64)
    npos = positives_so_far[:, -1]
    credit = precision_at_end * rel
    ap = credit.sum(1) / npos
    # mAP@R: only the first R places count, R = the query's number of positives.
    size = (end - first + 1).to(torch.float64)
    within_r = ((npos[:, None] - first.to(torch.float64)) / size).clamp(0.0, 1.0)
    ap_at_r = (credit * within_r).sum(1) / npos
    return ap, ap_at_r


def retrieval_metrics(
    queries: np.ndarray,
    gallery: np.ndarray,
    query_labels: np.ndarray,
    gallery_labels: np.ndarray,
    same_images: bool,
    block_size: int | None = None,
) -> RetrievalResult:
    """Rank ``gallery`` for every query and compute top-1/5, mAP and mAP@R.

    Args:
        queries: ``[Nq, D]`` query embeddings (normalised here).
        gallery: ``[Ng, D]`` gallery embeddings (normalised here).
        query_labels: ``[Nq]`` class of each query.
        gallery_labels: ``[Ng]`` class of each gallery item.
        same_images: queries and gallery are the same images in the same order: each query's own
            image is removed from its ranking.
        block_size: queries ranked at once; default keeps memory near 64 MiB.

    Returns:
        The summary figures and per-query decisions.
    """
    q = torch.from_numpy(l2_normalize(check_embeddings(queries, "queries"))).double()
    g = GalleryRows(l2_normalize(check_embeddings(gallery, "gallery", dim=q.shape[1])))
    ql = torch.as_tensor(np.asarray(query_labels), dtype=torch.int64)
    gl = torch.as_tensor(np.asarray(gallery_labels), dtype=torch.int64)
    if len(ql) != len(q) or len(gl) != len(g.inverse):
        raise UserError("labels and embeddings differ in length: pass one label per embedding")
    if same_images and len(q) != len(gl):
        raise UserError("same_images needs queries and gallery of the same images (same length)")
    nq, ng = len(q), len(gl)
    block = block_size or max(1, min(nq, _MAX_BLOCK_ELEMENTS // max(ng, 1)))
    n_rank = ng - 1 if same_images else ng

    top1_index = np.full(nq, -1, dtype=np.int64)
    top1_correct = np.zeros(nq, dtype=bool)
    evaluated = np.zeros(nq, dtype=bool)
    average_precision = np.full(nq, np.nan)
    hits1 = hits5 = 0.0
    ap_sum = apr_sum = 0.0
    for start in range(0, nq, block):
        stop = min(start + block, nq)
        sims = g.similarities(q[start:stop])
        if same_images:
            rows = torch.arange(stop - start)
            sims[rows, rows + start] = -float("inf")
        order, sorted_sims = rank_gallery(sims, gl[None, :] == ql[start:stop, None])
        order, sorted_sims = order[:, :n_rank], sorted_sims[:, :n_rank]
        rel = gl[order] == ql[start:stop, None]
        n_pos = rel.sum(1)
        valid = n_pos > 0
        top1_index[start:stop] = order[:, 0].numpy()
        top1_correct[start:stop] = rel[:, 0].numpy()
        evaluated[start:stop] = valid.numpy()
        relf = rel[valid].to(torch.float64)
        if relf.numel() == 0:
            continue
        hits1 += float(relf[:, 0].sum())
        hits5 += float((relf[:, :5].sum(1) > 0).sum())
        ap, ap_at_r = _tie_aware_ap(relf, sorted_sims[valid])
        average_precision[start:stop][valid.numpy()] = ap.numpy()
        ap_sum += float(ap.sum())
        apr_sum += float(ap_at_r.sum())
    n_eval = int(evaluated.sum())
    if n_eval == 0:
        raise UserError("no query has a same-class item in the gallery: check the labels and the split")
    return RetrievalResult(
        top1=hits1 / n_eval,
        top5=hits5 / n_eval,
        map=ap_sum / n_eval,
        map_at_r=apr_sum / n_eval,
        queries=n_eval,
        skipped=nq - n_eval,
        top1_index=top1_index,
        top1_correct=top1_correct & evaluated,
        evaluated=evaluated,
        average_precision=average_precision,
    )
