"""Loaders for every data SPEC (``digits``, ``fashion-mnist[:DIR]``, ``omniglot:DIR``,
``imagefolder:DIR``, ``npz:FILE``), found by name in a registry.

Each loader returns a :class:`Dataset` of ``float32 [N, C, H, W]`` images in ``[0, 1]``. A caller
that knows the side its models need passes it as ``size``: sources larger than that are reduced to
it on load (shorter side, centre crop: the aspect ratio is kept), so that a whole set fits in
memory; the per-model resizing happens later, in one place (:class:`hetero.data.Preprocess`).
"""

from __future__ import annotations

import gzip
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from hetero.data._dataset import Dataset
from hetero.data._imagefolder import MAX_LOAD_SIZE, load_imagefolder
from hetero.devices._registry import Registry
from hetero.errors import UserError

__all__ = ["load_data", "register_source", "list_sources", "LOAD_SIZE", "FASHION_MNIST_DIR"]

#: Side of Omniglot's images in memory when no model size is given (its files are 105 px).
LOAD_SIZE = 32
FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
Loader = Callable[[str | None, str, int | None], Dataset]
_SOURCES: Registry[Loader] = Registry("data source", UserError)


def register_source(name: str) -> Callable[[Loader], Loader]:
    """Register a loader ``fn(argument, spec, size) -> Dataset`` under the SPEC prefix ``name``.

    ``size`` is the side the models need (``None`` when unknown): a loader of large images
    reduces them to it.
    """

    return _SOURCES.register(name)


def list_sources() -> list[str]:
    return _SOURCES.names()


def load_data(spec: str, size: int | None = None) -> Dataset:
    """Load the data named by ``spec`` (``NAME`` or ``NAME:ARGUMENT``).

    Args:
        spec: The data SPEC.
        size: The largest input side of the models that will use the data; images larger than
            that are reduced to it on load (``None``: each source's own default).
    """
    name, _, argument = spec.partition(":")
    if name not in _SOURCES:
        raise UserError(f"unknown data spec {spec!r}: use one of {', '.join(s + '[:...]' for s in list_sources())}")
    if size is not None and size < 1:
        raise UserError(f"load size must be a positive number of pixels, got {size}")
    return _SOURCES.get(name)(argument or None, spec, size)


def _resize(images: np.ndarray, size: int) -> np.ndarray:
    """Shorter side to ``size``, then a centre crop to ``size`` x ``size`` (aspect ratio kept).

    Antialiased bilinear, in chunks (bounded memory for tens of thousands of images).
    """
    import torch
    import torch.nn.functional as F

    h, w = images.shape[-2:]
    if h == size and w == size:
        return images.astype(np.float32, copy=False)
    scale = size / min(h, w)
    new_h, new_w = max(size, round(h * scale)), max(size, round(w * scale))
    top, left = (new_h - size) // 2, (new_w - size) // 2
    out = np.empty((len(images), images.shape[1], size, size), dtype=np.float32)
    for start in range(0, len(images), 2048):
        chunk = torch.from_numpy(np.ascontiguousarray(images[start : start + 2048], dtype=np.float32))
        resized = F.interpolate(chunk, size=(new_h, new_w), mode="bilinear", antialias=True, align_corners=False)
        out[start : start + 2048] = resized[:, :, top : top + size, left : left + size].numpy()
    return out


def _existing(path: str | None, what: str, fix: str) -> Path:
    if not path:
        raise UserError(f"{what}: no path given; {fix}")
    p = Path(path).expanduser()
    if not p.exists():
        raise UserError(f"{what}: {p} does not exist; {fix}")
    return p


@register_source("digits")
def _digits(argument: str | None, spec: str, size: int | None) -> Dataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = (bunch.images / 16.0).astype(np.float32)[:, None]
    return Dataset(images, bunch.target.astype(np.int64), spec)


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
        magic = int.from_bytes(raw[:4], "big")
        ndim = magic & 0xFF
        dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
        return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)
    except (OSError, EOFError, ValueError) as exc:
        raise UserError(f"{path} is corrupt or not an IDX file ({exc}); reinstall the data set") from None


@register_source("fashion-mnist")
def _fashion_mnist(argument: str | None, spec: str, size: int | None) -> Dataset:
    root = _existing(
        argument or FASHION_MNIST_DIR,
        "fashion-mnist",
        "install Debian's dataset-fashion-mnist or pass fashion-mnist:DIR",
    )
    parts_images, parts_labels = [], []
    for prefix in ("train", "t10k"):
        found = [root / f"{prefix}-{kind}-idx{n}-ubyte{ext}" for kind, n in (("images", 3), ("labels", 1)) for ext in (".gz", "")]
        img = next((p for p in found[:2] if p.exists()), None)
        lab = next((p for p in found[2:] if p.exists()), None)
        if img is None or lab is None:
            raise UserError(f"fashion-mnist: {root} lacks {prefix}-images/labels IDX files; pass the folder that holds them")
        parts_images.append(_read_idx(img))
        parts_labels.append(_read_idx(lab))
    images = np.concatenate(parts_images).astype(np.float32)[:, None] / 255.0
    return Dataset(images, np.concatenate(parts_labels).astype(np.int64), spec)


@register_source("omniglot")
def _omniglot(argument: str | None, spec: str, size: int | None) -> Dataset:
    root = _existing(argument, "omniglot", "pass omniglot:DIR, the folder holding images_background.npz")
    halves = []
    # Both files number their characters from 0; the evaluation half continues after the 964
    # background characters (character id - 1), so the two halves never share a label.
    for name, first_label in (("images_background.npz", 0), ("images_evaluation.npz", 964)):
        path = root / name
        if not path.is_file():
            raise UserError(f"omniglot: {path} is missing; pass the folder holding both Omniglot .npz files")
        with _open_npz(path) as npz:
            images, labels = _npz_arrays(npz, path)
        # Paper is True and ink False in these files; ink becomes the bright foreground.
        ink = (~images.astype(bool)).reshape(-1, 1, *images.shape[-2:]).astype(np.float32)
        halves.append((_resize(ink, min(size or LOAD_SIZE, ink.shape[-1])), labels.reshape(-1).astype(np.int64) + first_label))
    images = np.concatenate([h[0] for h in halves])
    labels = np.concatenate([h[1] for h in halves])
    # Omniglot's own open-set split: the evaluation alphabets are never seen in training.
    is_test = np.concatenate([np.zeros(len(halves[0][1]), bool), np.ones(len(halves[1][1]), bool)])
    return Dataset(images, labels, spec, predefined_split=is_test)


def _open_npz(path: Path):
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise UserError(f"{path} is corrupt or not an .npz file ({exc}); replace it") from None


def _npz_arrays(npz, path: Path) -> tuple[np.ndarray, np.ndarray]:
    missing = {"images", "labels"} - set(npz.files)
    if missing:
        raise UserError(f"{path} lacks array(s) {sorted(missing)}; it needs 'images' and 'labels'")
    try:
        return npz["images"], npz["labels"]
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise UserError(f"{path} is corrupt ({exc}); replace it") from None


@register_source("npz")
def _npz(argument: str | None, spec: str, size: int | None) -> Dataset:
    path = _existing(argument, "npz", "pass npz:FILE with arrays 'images' and 'labels'")
    with _open_npz(path) as npz:
        images, labels = _npz_arrays(npz, path)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise UserError(f"{path}: 'labels' must be a 1-D integer array, got {labels.dtype} {labels.shape}")
    if images.ndim == 3:
        images = images[:, None]
    elif images.ndim == 4 and images.shape[-1] in (1, 3) and images.shape[1] not in (1, 3):
        images = images.transpose(0, 3, 1, 2)
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise UserError(f"{path}: 'images' must be [N,H,W], [N,H,W,C] or [N,C,H,W] with C 1 or 3, got {images.shape}")
    if images.dtype == np.uint8:
        images = images.astype(np.float32) / 255.0
    elif np.issubdtype(images.dtype, np.floating):
        images = images.astype(np.float32)
        if not np.isfinite(images).all():
            raise UserError(f"{path}: 'images' contain NaN or infinite values; clean the data")
        if images.min() < 0 or images.max() > 1:
            raise UserError(f"{path}: float images must lie in [0, 1] (got {images.min():.3g}..{images.max():.3g}); rescale them or save uint8")
    else:
        raise UserError(f"{path}: 'images' dtype {images.dtype} is not supported; use uint8 or float32 in [0, 1]")
    # Larger than the models need (or, with no size given, than MAX_LOAD_SIZE): shrink on load.
    target = size or MAX_LOAD_SIZE
    if min(images.shape[-2:]) > target:
        images = _resize(images, target)
    return Dataset(images, labels.astype(np.int64), spec)


@register_source("imagefolder")
def _imagefolder(argument: str | None, spec: str, size: int | None) -> Dataset:
    root = _existing(argument, "imagefolder", "pass imagefolder:DIR with one sub-folder per class")
    if not root.is_dir():
        raise UserError(f"imagefolder: {root} is not a folder; pass imagefolder:DIR with one sub-folder per class")
    return load_imagefolder(root, spec, size)
