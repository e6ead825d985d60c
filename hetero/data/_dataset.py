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
        class_names: the name of each class id (an image folder's sub-folder names), for messages.
        source: what the loader read and converted (one line each: format, size, channels,
            skipped files), for the line every command prints.
    """

    images: np.ndarray
    labels: np.ndarray
    spec: str
    predefined_split: np.ndarray | None = field(default=None, repr=False)
    class_names: dict[int, str] | None = field(default=None, repr=False)
    source: dict = field(default_factory=dict, repr=False)

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

    def subset(self, mask_or_index: np.ndarray) -> Dataset:
        return Dataset(self.images[mask_or_index], self.labels[mask_or_index], self.spec,
                       class_names=self.class_names, source=self.source)

    def class_name(self, label: int) -> str:
        """How a user knows class ``label``: its folder name where it has one, else its number."""
        if self.class_names and int(label) in self.class_names:
            return repr(self.class_names[int(label)])
        return str(int(label))


@dataclass
class Split:
    """A train/test split and how it was made."""

    train: Dataset
    test: Dataset
    protocol: str
    seed: int

    def describe(self) -> dict:
        """What was loaded and how it was split (metrics.json's and the manifests' ``split``)."""
        _, channels, height, width = self.train.images.shape
        return {
            "spec": self.train.spec,
            "protocol": self.protocol,
            "seed": self.seed,
            "classes": self.train.num_classes + (0 if self.protocol == "closed" else self.test.num_classes),
            "images": len(self.train.labels) + len(self.test.labels),
            "channels": int(channels),
            "size": [int(height), int(width)],
            "train_images": len(self.train.labels),
            "train_classes": self.train.num_classes,
            "test_images": len(self.test.labels),
            "test_classes": self.test.num_classes,
            **({"source": self.train.source} if self.train.source else {}),
        }

    def line(self) -> str:
        """The one line every command prints about the data it loaded."""
        d = self.describe()
        plane = "1 channel (greyscale)" if d["channels"] == 1 else f"{d['channels']} channels (RGB)"
        text = (f"data {d['spec']}: {d['classes']} classes, {d['images']} images, {plane}, "
                f"{d['size'][0]}x{d['size'][1]} px; {d['protocol']}-set split (seed {d['seed']}): "
                f"train {d['train_images']} images / {d['train_classes']} classes, "
                f"test {d['test_images']} / {d['test_classes']}")
        notes = self.train.source.get("notes")
        return text + (f"; {'; '.join(notes)}" if notes else "")


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
    if data.num_classes < 2:
        only = data.class_name(data.labels[0])
        raise UserError(f"data {data.spec}: one class only ({only}); retrieval needs at least 2 classes: "
                        "add a folder (or label) per class")
    protocol = _protocol(data, protocol)
    test_mask = _test_mask(data, protocol, seed, test_fraction)
    return Split(data.subset(~test_mask), data.subset(test_mask), protocol, seed)


def _protocol(data: Dataset, protocol: str | None) -> str:
    if protocol is None:
        protocol = "open" if data.num_classes >= OPEN_SET_MIN_CLASSES else "closed"
    if protocol not in ("open", "closed"):
        raise UserError(f"unknown protocol {protocol!r}: use --protocol open or --protocol closed")
    return protocol


def _test_mask(data: Dataset, protocol: str, seed: int, test_fraction: float) -> np.ndarray:
    """Which images of ``data`` are held out (see :func:`split_dataset`)."""
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
                    f"data {data.spec}: class {data.class_name(c)} has {idx.size} image(s); closed-set needs "
                    "at least 3 per class (add images, remove the class, or use --protocol open)"
                )
            n_test = min(idx.size - 1, max(2, int(round(idx.size * test_fraction))))
            test_mask[rng.permutation(idx)[:n_test]] = True
    return test_mask


#: A validation hold-out is made only where it leaves this much to train on (see :func:`holdout_mask`).
MIN_CLASS_IMAGES_FOR_HOLDOUT = 10
MIN_CLASSES_FOR_OPEN_HOLDOUT = 20


def holdout_mask(data: Dataset, fraction: float, protocol: str | None = None, seed: int = 0) -> tuple[np.ndarray | None, str]:
    """A validation part of a training set, made as the train/test split is, where the data allows.

    Closed-set data gives up ``fraction`` of each class's images (at least 2), so only classes of
    ``MIN_CLASS_IMAGES_FOR_HOLDOUT`` images or more can spare them; open-set data gives up whole
    classes, so it needs ``MIN_CLASSES_FOR_OPEN_HOLDOUT`` classes. The seed is ``seed + 1``, as the
    search's validation part uses.

    Returns:
        The mask of the validation images (``None`` when nothing is held out) and one sentence
        saying what was held out or why not.
    """
    if fraction <= 0:
        return None, "no validation hold-out (val_fraction 0): the last epoch is kept"
    protocol = _protocol(data, protocol)
    classes, counts = np.unique(data.labels, return_counts=True)
    if protocol == "closed" and counts.min() < MIN_CLASS_IMAGES_FOR_HOLDOUT:
        smallest = data.class_name(classes[counts.argmin()])
        return None, (f"no validation hold-out: class {smallest} has only {counts.min()} training images "
                      f"({MIN_CLASS_IMAGES_FOR_HOLDOUT} needed); the last epoch is kept")
    if protocol == "open" and classes.size < MIN_CLASSES_FOR_OPEN_HOLDOUT:
        return None, (f"no validation hold-out: {classes.size} training classes "
                      f"({MIN_CLASSES_FOR_OPEN_HOLDOUT} needed for open-set); the last epoch is kept")
    mask = _test_mask(data, protocol, seed + 1, fraction)
    return mask, (f"validation: {int(mask.sum())} of {mask.size} training images held out ({protocol}-set); "
                  "the epoch with the best validation cross mAP among those compatible on it is kept")
