"""Which generated images the model mishandles (Defuse, step 2: keep).

A generated image is a query against a gallery of real images embedded by the reference model (the
cloud, or the old model of an update), its own source image left out. Its decision is right when
the top-1 gallery item is of its label. It is kept as a failure when the reference's own search
gets it right and the candidate's search of the same gallery (the edge's queries, or the new
model's) gets it wrong: the negative-flip rule of :mod:`hetero.flips`, on generated queries. The
reference being right also checks that the variation still shows its source's class.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from hetero.errors import UserError
from hetero.flips import flip_summary
from hetero.metrics import l2_normalize

__all__ = ["Embedder", "Judgement", "top1_correct", "keep_failures", "judge"]

#: Similarity entries computed at once (bounded memory for large galleries).
_BLOCK_ELEMENTS = 1 << 24


class Embedder(Protocol):
    """Anything that embeds raw ``[N, C, H, W]`` images in [0, 1] (a cloud or edge model)."""

    def embed(self, images: np.ndarray, batch_size: int = ...) -> np.ndarray: ...


def top1_correct(queries: np.ndarray, gallery: np.ndarray, gallery_labels: np.ndarray, query_labels: np.ndarray,
                 exclude: np.ndarray | None = None) -> np.ndarray:
    """Whether each query's most similar gallery item (cosine) is of its label.

    Args:
        queries: ``[M, D]`` query embeddings.
        gallery: ``[N, D]`` gallery embeddings.
        gallery_labels: ``[N]`` their classes.
        query_labels: ``[M]`` the queries' classes.
        exclude: ``[M]`` a gallery index per query left out of its ranking (its source image).
    """
    if queries.shape[1] != gallery.shape[1]:
        raise UserError(f"query embeddings have {queries.shape[1]} dims but the gallery {gallery.shape[1]}; "
                        "compare a model with its own cloud (same embedding size)")
    q = torch.from_numpy(l2_normalize(np.asarray(queries, dtype=np.float32)))
    g = torch.from_numpy(l2_normalize(np.asarray(gallery, dtype=np.float32)))
    gl, ql = np.asarray(gallery_labels), np.asarray(query_labels)
    block = max(1, _BLOCK_ELEMENTS // max(len(g), 1))
    top = np.empty(len(q), dtype=np.int64)
    for start in range(0, len(q), block):
        sims = q[start : start + block] @ g.T
        if exclude is not None:
            rows = torch.arange(len(sims))
            sims[rows, torch.as_tensor(exclude[start : start + block])] = -float("inf")
        top[start : start + block] = sims.argmax(1).numpy()
    return gl[top] == ql


def keep_failures(reference_correct: np.ndarray, candidate_correct: np.ndarray) -> np.ndarray:
    """The keep rule: the reference right and the candidate wrong (a negative flip)."""
    return np.asarray(reference_correct, dtype=bool) & ~np.asarray(candidate_correct, dtype=bool)


@dataclass
class Judgement:
    """The two searches' decisions on generated images and the failures kept.

    Attributes:
        reference_correct: ``[M]`` the reference's search right.
        candidate_correct: ``[M]`` the candidate's search right.
        kept: ``[M]`` the failures (:func:`keep_failures`).
        summary: :func:`hetero.flips.flip_summary` of the two (NFR on generated queries).
    """

    reference_correct: np.ndarray
    candidate_correct: np.ndarray
    kept: np.ndarray
    summary: dict


def judge(reference: Embedder, candidate: Embedder, images: np.ndarray, labels: np.ndarray, sources: np.ndarray,
          gallery: np.ndarray, gallery_labels: np.ndarray) -> Judgement:
    """Decide every generated image with both models against the reference's gallery of real images.

    Args:
        reference, candidate: the two models.
        images: ``[M, C, S, S]`` generated images; ``labels`` their classes; ``sources`` the
            gallery index of the image each was perturbed from (left out of its ranking).
        gallery: ``[N, D]`` the reference model's embeddings of the real images.
        gallery_labels: ``[N]`` their classes.
    """
    ref = top1_correct(reference.embed(images), gallery, gallery_labels, labels, sources)
    cand = top1_correct(candidate.embed(images), gallery, gallery_labels, labels, sources)
    return Judgement(ref, cand, keep_failures(ref, cand), flip_summary(ref, cand))
