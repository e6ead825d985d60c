"""Is a new model a backward-compatible update of an old one? (BCT's empirical criterion.)

The old model indexed the gallery; the new model should search it without re-indexing
("backfilling"). On the test split, every image a query against all the others:

- ``old_old``: M(old, old), what users have today;
- ``new_new``: M(new, new), what they get after backfilling the gallery;
- ``new_old``: M(new→old), new queries against the old gallery: the update before backfilling.

The update is compatible when M(new→old) > M(old, old) (BCT, Shen et al. 2020). The **update gap
closed** is ``(M(new→old) − M(old,old)) / (M(new,new) − M(old,old))``: 1 means new queries search
the old gallery as well as the new model searches its own, 0 no better than the old model, below 0
worse (an incompatible update).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hetero.cost import count_cost
from hetero.data import Dataset
from hetero.errors import UserError
from hetero.flips import classification_flips, retrieval_flips
from hetero.metrics import RetrievalResult, gap_closed, retrieval_metrics
from hetero.models import CloudModel, EdgeModel, EmbeddingModel, load_cloud, load_edge

__all__ = ["UpdateCheck", "check_update", "load_model", "model_record", "UPDATE_GAP_FORMULA"]

UPDATE_GAP_FORMULA = "(M(new->old) - M(old,old)) / (M(new,new) - M(old,old))"


def load_model(path: str | os.PathLike[str], flag: str) -> CloudModel | EdgeModel:
    """A cloud or edge model from a file or a folder holding ``cloud.pt`` (preferred) or ``edge.pt``."""
    p = Path(path)
    if p.is_dir():
        if (p / "cloud.pt").is_file():
            return load_cloud(p)
        if (p / "edge.pt").is_file():
            return load_edge(p)
        raise UserError(f"{flag} {p} holds neither cloud.pt nor edge.pt; pass a folder written by hetero cloud train or hetero train")
    if p.suffix == ".pt" and p.name.startswith("edge"):
        return load_edge(p)
    return load_cloud(p)


def _head(model: EmbeddingModel) -> tuple | None:
    """``(classifier, classes)`` of a model that has its own classifier."""
    if isinstance(model, CloudModel) and model.classifier is not None and model.classes is not None:
        return model.classifier.numpy(), np.asarray(model.classes)
    return None


def _trained_against(old: CloudModel, new: EmbeddingModel) -> bool:
    if isinstance(new, EdgeModel):
        return new.cloud_fingerprint == old.fingerprint
    return new.meta.get("compatible_with") == old.fingerprint


def model_record(model: EmbeddingModel, path: str | os.PathLike[str]) -> dict:
    """What a report says about a model: where it came from, its dim and its cost."""
    record = {
        "path": str(path),
        "kind": "cloud" if isinstance(model, CloudModel) else "edge",
        "embed_dim": model.embed_dim,
        "has_classifier": _head(model) is not None,
        **count_cost(model.net, model.input_shape),
    }
    if isinstance(model, CloudModel):
        record["fingerprint"] = model.fingerprint
    return record


@dataclass
class UpdateCheck:
    """The three searches of an update and the flips between them.

    Attributes:
        results: ``old_old``, ``new_new`` and ``new_old`` retrievals.
        queries_new: ``[N, D]`` the new model's embeddings of the test images.
        gallery_old: ``[N, D]`` the old model's.
        labels: ``[N]`` the test labels.
        flips: negative flips of the new model's decisions against the old model's.
        trained_against_old: whether the new model records the old one as its reference.
    """

    results: dict[str, RetrievalResult]
    queries_new: np.ndarray
    gallery_old: np.ndarray
    labels: np.ndarray
    flips: dict
    trained_against_old: bool

    @property
    def reference(self) -> tuple[np.ndarray, RetrievalResult]:
        """The old model's gallery embeddings and its own search, for checking another update."""
        return self.gallery_old, self.results["old_old"]

    @property
    def compatible(self) -> bool:
        """BCT's empirical criterion on mAP: M(new→old) > M(old, old)."""
        return bool(self.results["new_old"].map > self.results["old_old"].map)

    def update_gap_closed(self, metric: str = "map") -> float:
        r = {name: getattr(result, metric) for name, result in self.results.items()}
        # gap_closed's (cross - low) / (high - low) with the old model as the low end.
        return gap_closed(r["new_old"], r["old_old"], r["new_new"])

    def summary(self) -> dict:
        """The report keys: retrieval, the criterion, the update gap closed and the flips."""
        return {
            "retrieval": {name: r.summary() for name, r in self.results.items()},
            "compatible": self.compatible,
            "compatible_top1": bool(self.results["new_old"].top1 > self.results["old_old"].top1),
            "update_gap_closed": self.update_gap_closed("map"),
            "update_gap_closed_top1": self.update_gap_closed("top1"),
            "update_gap_closed_formula": UPDATE_GAP_FORMULA,
            "trained_against_old": self.trained_against_old,
            "flips": self.flips,
        }


def check_update(
    old: CloudModel, new: EmbeddingModel, test: Dataset, reference: tuple[np.ndarray, RetrievalResult] | None = None
) -> UpdateCheck:
    """Embed ``test`` with both models and compare old→old, new→new and new→old retrieval.

    Args:
        old: the model that indexed the gallery.
        new: the update.
        test: the test split; every image a query against all the others.
        reference: ``UpdateCheck.reference`` of an earlier check of the same ``old`` on the same
            ``test`` (skips re-embedding and re-searching with the old model when comparing
            several updates).

    Raises:
        UserError: if the two models embed into different dimensions (new queries cannot search
            the old gallery then).
    """
    if new.embed_dim != old.embed_dim:
        raise UserError(
            f"--new embeds into {new.embed_dim} dims but --old into {old.embed_dim}, so new queries cannot search "
            "the old gallery; train the new model against the old one (hetero train --cloud OLD --arch ARCH.json), "
            "which gives it the old model's dimension"
        )
    y = test.labels
    g, old_old = reference if reference is not None else (old.embed(test.images), None)
    q = new.embed(test.images)
    results = {
        "old_old": old_old or retrieval_metrics(g, g, y, y, same_images=True),
        "new_new": retrieval_metrics(q, q, y, y, same_images=True),
        "new_old": retrieval_metrics(q, g, y, y, same_images=True),
    }
    old_head = _head(old)
    flips = {
        "retrieval": {
            # The update before backfilling, then after: each against what the old model did.
            "new_old_vs_old_old": retrieval_flips(results["old_old"], results["new_old"]),
            "new_new_vs_old_old": retrieval_flips(results["old_old"], results["new_new"]),
        },
        # Each model through its own classifier (None on open-set data: the test classes are new).
        "classification": classification_flips(g, q, y, old_head, _head(new)),
        # New embeddings through the old model's frozen classifier (what BCT's influence loss trains).
        "classification_old_head": classification_flips(g, q, y, old_head, old_head),
    }
    return UpdateCheck(results, q, g, y, flips, _trained_against(old, new))
