"""Data: the SPEC loaders, the open/closed-set split and the preprocessing of images."""

from hetero.data._dataset import OPEN_SET_MIN_CLASSES, Dataset, Split, split_dataset
from hetero.data._preprocess import Preprocess
from hetero.data._sources import LOAD_SIZE, list_sources, load_data, register_source

__all__ = [
    "Dataset",
    "Split",
    "split_dataset",
    "OPEN_SET_MIN_CLASSES",
    "Preprocess",
    "load_data",
    "list_sources",
    "register_source",
    "LOAD_SIZE",
    "load_split",
]


def load_split(spec: str, protocol: str | None = None, seed: int = 0) -> Split:
    """Load ``spec`` and split it (the seeded split every command shares)."""
    return split_dataset(load_data(spec), protocol=protocol, seed=seed)
