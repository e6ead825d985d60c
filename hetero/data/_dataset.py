"""An in-memory labelled image set and the seeded open-set / closed-set split."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hetero.errors import UserError

__all__ = ["Dataset", "Split", "split_dataset", "OPEN_SET_MIN_CLASSES"]

#: Data with at least this many classes is split open-set by default (DESIGN.md).
OPEN_SET_MIN_CLASSES = 100


@dataclass
class Dataset:
    """Images and labels, as every loader returns them.

    Attributes:
        images: ``float32 [N, C, H, W]`` in ``[0, 1]`` (ink/foreground bright).
        labels: ``int64 [N]`` class ids.
        spec: the data SPEC it came from (recorded in manifests and reports).
        predefined_split: for sources that define their own open-set split (Omniglot's
            background/evaluation halves), a boolean mask of the test images.
    """

    images: np.ndarray
    labels: np.ndarray
    spec: str
    predefined_split: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.images.ndim != 4:
            raise UserError(f"data {self.spec}: images must be [N, C, H, W], got shape {self.images.shape}")
        if len(self.images) != len(self.labels):
            raise UserError(
                f"data {self.spec}: {len(self.images)} images but {len(self.labels)} labels; "
                "give one label per image"
            )
        if len(self.images) == 0:
            raise UserError(f"data {self.spec}: no images found")
        if not np.isfinite(self.images).all():
            raise UserError(f"data {self.spec}: images contain NaN or infinite values; clean the data")

    @property
    def num_classes(self) -> int:
        return int(np.unique(self.labels).size)

    def subset(self, mask_or_index: np.ndarray) -> "Dataset":
        return Dataset(self.images[mask_or_index], self.labels[mask_or_index], self.spec)


@dataclass
class Split:
    """A train/test split and how it was made."""

    train: Dataset
    test: Dataset
    protocol: str
    seed: int

    def describe(self) -> dict:
        return {
            "protocol": self.protocol,
            "seed": self.seed,
            "train_images": len(self.train.labels),
            "train_classes": self.train.num_classes,
            "test_images": len(self.test.labels),
            "test_classes": self.test.num_classes,
        }


def split_dataset(
    data: Dataset, protocol: str | None = None, seed: int = 0, test_fraction: float = 0.3
) -> Split:
    """Split ``data`` into training and test images, reproducibly for a given ``seed``.

    Args:
        data: the full data set.
        protocol: ``"open"`` (train and test classes disjoint) or ``"closed"`` (held-out images of
            the training classes); ``None`` picks open for 100 classes or more, closed below.
        seed: fixes the split.
        test_fraction: share of classes (open) or of each class's images (closed) held out.

    Returns:
        The split. Every test class keeps at least two images, so each query has a positive.
    """
    if protocol is None:
        protocol = "open" if data.num_classes >= OPEN_SET_MIN_CLASSES else "closed"
    if protocol not in ("open", "closed"):
        raise UserError(f"unknown protocol {protocol!r}: use --protocol open or --protocol closed")
    rng = np.random.default_rng(seed)
    classes = np.unique(data.labels)
    if protocol == "open":
        if data.predefined_split is not None:
            test_mask = data.predefined_split
        else:
            if classes.size < 4:
                raise UserError(f"data {data.spec}: open-set needs at least 4 classes, found {classes.size}")
            n_test = max(2, int(round(classes.size * test_fraction)))
            test_classes = rng.permutation(classes)[:n_test]
            test_mask = np.isin(data.labels, test_classes)
    else:
        test_mask = np.zeros(len(data.labels), dtype=bool)
        for c in classes:
            idx = np.flatnonzero(data.labels == c)
            if idx.size < 3:
                raise UserError(
                    f"data {data.spec}: class {c} has {idx.size} image(s); closed-set needs at least 3 per class"
                )
            n_test = min(idx.size - 1, max(2, int(round(idx.size * test_fraction))))
            test_mask[rng.permutation(idx)[:n_test]] = True
    return Split(data.subset(~test_mask), data.subset(test_mask), protocol, seed)
