"""The search's data: a held-out validation part of the training split, and the cloud's view of it.

Search decisions (trial scores, pruning, the pick) are made on the validation part; the test split
is touched only to report the final figures of the pick and of the references.

Every score carries three figures: cross mAP (edge queries against the cloud's embeddings of the
validation images), homogeneous mAP, and *alignment*, the mean cosine between the edge and the
cloud embedding of the same validation image. The validation images come from the training split,
which the cloud model was trained on, so its gallery of them is tightly clustered and cross mAP
can saturate (fine-tuned digits models reach 0.99-0.996): where candidates tie on it, alignment
still tells them apart, and the final phase breaks exact cross-mAP ties with it
(``hetero.search._final``). Alignment is measured on images the edge model never trained on (the
validation part is held out of ``fit``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import torch
from torch import nn

from hetero.data import Dataset, Split, split_dataset
from hetero.errors import UserError
from hetero.metrics import l2_normalize, retrieval_metrics
from hetero.models import CloudModel
from hetero.pipeline import default_preprocess
from hetero.training import CloudTargets

__all__ = ["FEW_CLASSES", "SATURATED", "SearchData", "cloud_training_part", "describe_validation", "holdout_record", "search_parts"]

#: What identifies a split (the cloud's recorded split against the search's).
_SPLIT_KEYS = ("spec", "protocol", "seed", "train_images", "train_classes", "test_images")

#: A cloud validation mAP at or above this leaves no room to rank edge models on the validation part.
SATURATED = 0.98
#: Fewer open-set validation classes than this rank subnets noisily: on a 100-class Omniglot subset,
#: the search's 20 validation classes (400 images) ranked subnets at Kendall tau +0.07 to +0.44
#: against their fine-tuned scores, the 100 test classes at +0.39 to +0.66 (benchmarks/README.md).
FEW_CLASSES = 50


def search_parts(split: Split, val_fraction: float, seed: int) -> Split:
    """The training split cut into the part the search trains on and its validation part.

    Made as the split itself was: closed-set data keeps images of every training class in both
    parts; open-set data holds out whole classes, so the validation queries are classes the edge
    never trains on, as the test queries are. ``hetero cloud train --val-fraction`` leaves out the
    same validation part (same fraction and seed), so the cloud never trains on the images that
    judge the edge models. (``hetero train``'s own hold-out, the same cut at its own fraction, is a
    prefix of the same permutation: with a smaller fraction it lies inside this part.)
    """
    return split_dataset(split.train, protocol=split.protocol, seed=seed + 1, test_fraction=val_fraction)


def holdout_record(val_fraction: float, seed: int) -> dict:
    """What a cloud trained on ``search_parts(split, val_fraction, seed).train`` records in its
    ``meta["holdout"]`` (beside ``meta["split"]``), for the search to recognise its validation part."""
    return {"val_fraction": float(val_fraction), "seed": int(seed)}


def cloud_training_part(split: Split, val_fraction: float, seed: int) -> tuple[Dataset, dict | None, str]:
    """The images a cloud trained for this split learns from: the training split less the search's
    validation part (``val_fraction`` 0: all of it).

    Returns:
        The images, the record for the cloud's ``meta["holdout"]`` (``None`` when nothing is held
        out) and one line saying what was left out.
    """
    if val_fraction <= 0:
        return split.train, None, ("the cloud trains on every training image: a search on this split judges "
                                   "edges on images the cloud was trained on (--val-fraction 0)")
    try:
        parts = search_parts(split, val_fraction, seed)
    except UserError as exc:
        raise UserError(f"{exc}; or train the cloud with --val-fraction 0 (no validation part left out)") from None
    return parts.train, holdout_record(val_fraction, seed), (
        f"validation: {len(parts.test.labels)} training images of {parts.test.num_classes} classes left out of the "
        f"cloud's training ({split.protocol}-set), the part `hetero search --val-fraction {val_fraction:g}` judges on")


@dataclass
class SearchData:
    """The training split cut into a part to train on and a validation part to judge on.

    Attributes:
        split: The train/test split every command shares (same SPEC, protocol and seed).
        fit: The part of ``split.train`` the search trains on.
        val: The held-out part of ``split.train`` that scores trials.
        cloud: The frozen cloud model.
        targets: The cloud model's targets for ``fit`` (computed once for every trial).
        gallery: The cloud model's embeddings of ``val``: the gallery trials search.
        holdout: How ``val`` was cut (:func:`holdout_record`), to tell whether the cloud saw it.
    """

    split: Split
    fit: Dataset
    val: Dataset
    cloud: CloudModel
    targets: CloudTargets
    gallery: np.ndarray
    holdout: dict | None = None
    _cache: dict = field(default_factory=dict, repr=False)

    @classmethod
    def prepare(cls, cloud: CloudModel, split: Split, val_fraction: float, seed: int, prototype_temperature: float) -> SearchData:
        """Hold out ``val_fraction`` of the training split the way the split itself was made.

        Closed-set data keeps images of every training class in both parts; open-set data holds
        out whole classes, so the validation queries are unseen classes, as the test queries are.
        """
        parts = search_parts(split, val_fraction, seed)
        targets = CloudTargets.from_cloud(cloud, parts.train.images, parts.train.labels, prototype_temperature)
        return cls(split, parts.train, parts.test, cloud, targets, cloud.embed(parts.test.images),
                   holdout_record(val_fraction, seed))

    @property
    def channels(self) -> int:
        return int(self.split.train.images.shape[1])

    def inputs(self, part: str, resolution: int) -> torch.Tensor:
        """Preprocessed images of ``part`` (``"fit"`` or ``"val"``) at ``resolution``, cached."""
        key = (part, resolution)
        if key not in self._cache:
            images = getattr(self, part).images
            preprocess = default_preprocess(resolution, self.channels)
            self._cache[key] = torch.cat(list(preprocess.batches(images)))
        return self._cache[key]

    def calibration_batches(self, resolution: int, n_images: int, batch_size: int = 512) -> list[torch.Tensor]:
        """The same ``n_images`` training images for every subnet, in batches (batch-norm statistics).

        One batch by default: the statistics are then the exact mean and variance over the images
        (several batches average per-batch variances, which misses the spread of the batch means),
        and one large forward pass costs less than several small ones on a CPU.
        """
        x = self.inputs("fit", resolution)
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))[:n_images]
        return [x[order[i : i + batch_size]] for i in range(0, len(order), batch_size)]

    @torch.inference_mode()
    def embed_val(self, net: nn.Module, resolution: int, batch_size: int = 512) -> np.ndarray:
        """Embed the validation images with ``net`` (left in eval mode)."""
        net.eval()
        device = next(net.parameters()).device
        x = self.inputs("val", resolution)
        return torch.cat([net(x[i : i + batch_size].to(device)).float().cpu() for i in range(0, len(x), batch_size)]).numpy()

    def score(self, queries: np.ndarray) -> dict[str, float]:
        """Validation scores of the edge embeddings ``queries`` of the validation images.

        Returns:
            ``cross_map`` (queries against the cloud gallery), ``homogeneous_map`` (queries against
            each other) and ``alignment`` (mean cosine between each query and the cloud embedding of
            the same image; 1 is a perfect copy of the cloud's embedding).
        """
        labels = self.val.labels
        cross = retrieval_metrics(queries, self.gallery, labels, labels, same_images=True)
        homogeneous = retrieval_metrics(queries, queries, labels, labels, same_images=True)
        return {"cross_map": float(cross.map), "homogeneous_map": float(homogeneous.map),
                "alignment": float(np.mean(np.sum(l2_normalize(queries) * l2_normalize(self.gallery), axis=1)))}

    def cross_average_precision(self, queries: np.ndarray) -> np.ndarray:
        """Each validation query's AP against the cloud gallery (what ``score``'s cross mAP averages)."""
        labels = self.val.labels
        return retrieval_metrics(queries, self.gallery, labels, labels, same_images=True).average_precision

    def judged_on(self, images: Dataset) -> SearchData:
        """The same training part and targets, with ``images`` as the part trials are scored on.

        The fit part's preprocessed inputs are shared; ``images`` are embedded by the cloud once.
        """
        fit_inputs = {key: value for key, value in self._cache.items() if key[0] == "fit"}
        return replace(self, val=images, gallery=self.cloud.embed(images.images), _cache=fit_inputs)

    def paragon(self) -> float:
        """Cloud-to-cloud mAP on the validation images: the ceiling of every trial's score."""
        labels = self.val.labels
        return float(retrieval_metrics(self.gallery, self.gallery, labels, labels, same_images=True).map)

    def describe(self) -> dict:
        return {**self.split.describe(), "fit_images": len(self.fit.labels), "val_images": len(self.val.labels),
                "val_classes": self.val.num_classes}

    def validation_check(self) -> dict:
        """Whether the validation part can tell models apart, for the report.

        Returns:
            ``shared_classes`` (validation classes the edge also trains on: 0 for open-set data,
            as on the test split), ``cloud_val_map`` (the cloud's own cross mAP on the validation
            part, the ceiling of every trial's score), ``saturated`` (that ceiling at or above
            :data:`SATURATED`: candidates then differ by a few queries and cannot be told apart),
            ``few_classes`` (open-set validation of fewer than :data:`FEW_CLASSES` classes, whose
            scores rank candidates noisily) and ``cloud_saw_val`` (see :meth:`cloud_saw_val`).
        """
        shared = np.intersect1d(np.unique(self.fit.labels), np.unique(self.val.labels)).size
        ceiling = self.paragon()
        return {"protocol": self.split.protocol, "val_classes": self.val.num_classes, "shared_classes": int(shared),
                "cloud_val_map": ceiling, "saturated": ceiling >= SATURATED,
                "few_classes": self.split.protocol == "open" and self.val.num_classes < FEW_CLASSES, "cloud_saw_val": self.cloud_saw_val()}

    def cloud_saw_val(self) -> bool | None:
        """Whether the cloud trained on the validation images: ``False`` where ``hetero cloud train``
        left out this very part, ``True`` where it trained on this split's training images with no
        (or another) hold-out, ``None`` where unknown (an imported cloud, or another split)."""
        if self.holdout is None:
            return None
        trained_on, ours = self.cloud.meta.get("split"), self.split.describe()
        if not isinstance(trained_on, dict) or any(trained_on.get(k) != ours[k] for k in _SPLIT_KEYS):
            return None
        return self.cloud.meta.get("holdout") != self.holdout


def describe_validation(check: dict) -> str:
    """One line on the validation part: its classes and the cloud's own score on it."""
    classes = (f"{check['val_classes']} classes the edge does not train on" if not check["shared_classes"]
               else f"{check['val_classes']} classes, {check['shared_classes']} of them also trained on")
    line = f"validation: {classes} ({check['protocol']}-set); the cloud's own validation mAP {check['cloud_val_map']:.4f}"
    if check.get("cloud_saw_val"):
        line += ("; the cloud trained on these images: train it with `hetero cloud train --val-fraction "
                 "<the search's --val-fraction>` to leave them out")
    elif check.get("cloud_saw_val") is False:
        line += "; the cloud never trained on them"
    if check["saturated"]:
        line += " (saturated: trials near it differ by a few queries and cannot be told apart)"
    if check.get("few_classes"):
        line += (f"; {check['val_classes']} classes rank candidates noisily: a larger --val-fraction (the same for "
                 "`hetero cloud train`) steadies the ranking where the training classes can spare it")
    return line
