"""``imagefolder:DIR``: one sub-folder per class, images in any format Pillow reads.

Images are loaded as users have them: every file Pillow can identify is read, whatever its name
(PNG, JPEG, PGM/PPM, BMP, TIFF, WebP, GIF...); each is resized so that its shorter side is the
load size, then centre-cropped to a square (torchvision's ``Resize(s)`` + ``CenterCrop(s)``), so
the aspect ratio is kept. The load size is the side the models need when the caller knows it,
else the images' own (their median shorter side, at most :data:`MAX_LOAD_SIZE`).

A set whose images are all greyscale stays single-channel; a mixed set becomes RGB, and the
conversion is stated. Files that are not images are skipped and named; a file named like an image
that Pillow cannot read, or one over Pillow's decompression-bomb limit, is refused with its name.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hetero.data._dataset import Dataset
from hetero.errors import UserError

__all__ = ["load_imagefolder", "MAX_LOAD_SIZE"]

#: The largest side loaded when no model size is given (ImageNet models' input side).
MAX_LOAD_SIZE = 224
_GREY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
# Named in a message at most this many at a time.
_SHOW = 5


@dataclass(frozen=True)
class _Header:
    path: Path
    mode: str
    size: tuple[int, int]
    format: str


def _open(path: Path):
    """``path`` opened (the caller closes it); ``None`` for a file that is not an image.

    Raises:
        UserError: naming the file, when it is named like an image but unreadable, or too large.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            # Pillow only warns between its limit and twice it; either way the file is refused.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return Image.open(path)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise UserError(
            f"imagefolder: {path} is too large to decode safely (over Pillow's decompression-bomb limit of "
            f"{Image.MAX_IMAGE_PIXELS:,} pixels); shrink or remove it"
        ) from None
    except UnidentifiedImageError:
        if path.suffix.lower() in Image.registered_extensions():
            raise UserError(f"imagefolder: {path} is corrupt or not an image (Pillow cannot identify it); remove or replace it") from None
        return None
    except OSError as exc:
        raise UserError(f"imagefolder: cannot read {path} ({exc}); check its permissions or remove it") from None


def _pixels(im, size: int, grey: bool) -> np.ndarray:
    """``im`` as ``[size, size]`` (grey) or ``[size, size, 3]`` float32 in [0, 1], shorter side + centre crop."""
    from PIL import Image

    if im.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        # 16/32-bit and float images: scale to [0, 1] by their range, not by clipping at 255.
        raw = np.asarray(im, dtype=np.float32)
        top = 1.0 if im.mode == "F" and raw.max() <= 1.0 else (255.0 if raw.max() <= 255 else 65535.0)
        im = Image.fromarray(np.clip(raw / top * 255.0, 0, 255).astype(np.uint8), mode="L")
    im = im.convert("L" if grey else "RGB")
    w, h = im.size
    scale = size / min(w, h)
    new_w, new_h = max(size, round(w * scale)), max(size, round(h * scale))
    im = im.resize((new_w, new_h), Image.Resampling.BILINEAR)
    left, top = (new_w - size) // 2, (new_h - size) // 2
    im = im.crop((left, top, left + size, top + size))
    return np.asarray(im, dtype=np.float32) / 255.0


def _list_images(folder: Path) -> tuple[list[_Header], list[str]]:
    """The images of one class folder (their headers only) and the files skipped, with why."""
    found, skipped = [], []
    for path in sorted(folder.iterdir()):
        if path.name.startswith("."):
            continue
        if path.is_dir():
            skipped.append(f"{folder.name}/{path.name}/ (a folder inside a class folder)")
            continue
        im = _open(path)
        if im is None:
            skipped.append(f"{folder.name}/{path.name} (not an image)")
            continue
        with im:  # headers only: a set of 100k images must not hold 100k open files
            found.append(_Header(path, im.mode, im.size, im.format or path.suffix.lstrip(".").upper()))
    return found, skipped


def load_imagefolder(root: Path, spec: str, size: int | None = None) -> Dataset:
    """Load ``root`` (one sub-folder per class) at ``size`` px, or at the images' own size.

    Raises:
        UserError: no class folders, an empty class, an unreadable or oversized image.
    """
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_dirs:
        raise UserError(f"imagefolder: {root} has no class sub-folders; put each class's images in its own folder")
    listed, skipped = [], []
    for label, folder in enumerate(class_dirs):
        found, skip = _list_images(folder)
        skipped += skip
        if not found:
            why = f" ({len(skip)} file(s) skipped: {', '.join(skip[:_SHOW])})" if skip else ""
            raise UserError(f"imagefolder: class folder {folder} has no images{why}; remove it or add images")
        listed += [(label, header) for header in found]
    grey = all(h.mode in _GREY_MODES for _, h in listed)
    load = size or min(MAX_LOAD_SIZE, int(np.median([min(h.size) for _, h in listed])))
    images = np.empty((len(listed), 1 if grey else 3, load, load), dtype=np.float32)
    labels = np.empty(len(listed), dtype=np.int64)
    converted = sum(h.mode in _GREY_MODES for _, h in listed) if not grey else 0
    for i, (label, header) in enumerate(listed):
        try:
            with _open(header.path) as im:
                if im.format == "JPEG":
                    im.draft("L" if grey else "RGB", (load, load))  # decode big JPEGs at a reduced scale
                pixels = _pixels(im, load, grey)
        except (OSError, SyntaxError, ValueError) as exc:
            raise UserError(f"imagefolder: {header.path} is corrupt ({exc}); remove or replace it") from None
        images[i] = pixels[None] if grey else pixels.transpose(2, 0, 1)
        labels[i] = label
    notes = [f"{'greyscale' if grey else 'RGB'}, loaded at {load}x{load} px (shorter side, centre crop)"]
    if converted:
        notes.append(f"{converted} greyscale image(s) converted to RGB")
    if skipped:
        notes.append(f"skipped {len(skipped)} file(s): {', '.join(skipped[:_SHOW])}" + (" ..." if len(skipped) > _SHOW else ""))
    source = {"formats": sorted({h.format for _, h in listed}), "load_size": load, "resize": "shorter side, centre crop",
              "converted_to_rgb": converted, "skipped": skipped, "notes": notes}
    return Dataset(images, labels, spec, class_names={i: d.name for i, d in enumerate(class_dirs)}, source=source)
