"""Data: the SPEC loaders, the open/closed-set split, the preprocessing and the training views."""

from hetero.data._augment import AUGMENTS, draw_params, identity_params, render, resolve_augment
from hetero.data._dataset import OPEN_SET_MIN_CLASSES, Dataset, Split, holdout_mask, split_dataset
from hetero.data._preprocess import Preprocess
from hetero.data._sources import LOAD_SIZE, list_sources, load_data, register_source

__all__ = [
    "Dataset",
    "Split",
    "split_dataset",
    "holdout_mask",
    "OPEN_SET_MIN_CLASSES",
    "Preprocess",
    "load_data",
    "list_sources",
    "register_source",
    "LOAD_SIZE",
    "load_split",
    "AUGMENTS",
    "resolve_augment",
    "draw_params",
    "identity_params",
    "render",
]


def load_split(spec: str, protocol: str | None = None, seed: int = 0, size: int | None = None) -> Split:
    """Load ``spec`` (at ``size`` px where its images are larger) and split it (the seeded split every command shares)."""
    return split_dataset(load_data(spec, size), protocol=protocol, seed=seed)
