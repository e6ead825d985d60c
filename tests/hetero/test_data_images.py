"""Images as users have them: any format Pillow reads, any size, aspect kept; bad data named."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from hetero.cli import main
from hetero.data import Dataset, load_data, load_split, split_dataset
from hetero.errors import UserError


def _folder(root, classes=("a", "b"), per_class=3, make=None):
    for c in classes:
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            (make or (lambda p, i: Image.fromarray(np.full((10, 12), 30 * i, np.uint8)).save(p / f"{i}.png")))(root / c, i)
    return root


def test_pgm_ppm_bmp_tiff_webp_all_load(tmp_path):
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 255, (9, 7), dtype=np.uint8)
    for i, ext in enumerate(("pgm", "bmp", "tif", "webp")):
        (tmp_path / "grey").mkdir(exist_ok=True)
        Image.fromarray(grey).save(tmp_path / "grey" / f"{i}.{ext}")
    (tmp_path / "colour").mkdir()
    for i, ext in enumerate(("ppm", "png", "jpg")):
        Image.fromarray(rng.integers(0, 255, (9, 7, 3), dtype=np.uint8)).save(tmp_path / "colour" / f"{i}.{ext}")
    data = load_data(f"imagefolder:{tmp_path}")
    assert len(data.labels) == 7 and data.images.shape[1] == 3  # a mixed set becomes RGB...
    # WebP stores no greyscale (it reopens as RGB), so 3 of the 4 grey files are converted.
    assert data.source["converted_to_rgb"] == 3 and any("converted to RGB" in n for n in data.source["notes"])  # ...saying so
    assert {"PPM", "BMP", "TIFF", "WEBP", "PNG", "JPEG"} <= set(data.source["formats"])


def test_sixteen_bit_pgm_keeps_its_range(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "a.pgm").write_bytes(b"P5\n2 2\n65535\n" + struct.pack(">4H", 0, 65535, 32768, 65535))
    (tmp_path / "x" / "b.pgm").write_bytes(b"P5\n2 2\n255\n" + bytes([0, 255, 128, 255]))
    data = load_data(f"imagefolder:{tmp_path}")
    assert data.images.shape == (2, 1, 2, 2)  # all greyscale: one channel
    np.testing.assert_allclose(data.images[0, 0], [[0, 1], [0.5, 1]], atol=0.01)  # not clipped at 255


def test_any_size_loads_at_the_asked_size_with_the_aspect_kept(tmp_path):
    def wide(p, i):  # 20 x 40: left half black, right half white
        pixels = np.zeros((20, 40), np.uint8)
        pixels[:, 20:] = 255
        Image.fromarray(pixels).save(p / f"{i}.png")

    _folder(tmp_path, make=wide)
    data = load_data(f"imagefolder:{tmp_path}", size=10)
    # Shorter side to 10 (10 x 20), centre crop: half black, half white, not squashed.
    assert data.images.shape == (6, 1, 10, 10)
    assert data.images[0, 0, :, :4].max() < 0.05 and data.images[0, 0, :, 6:].min() > 0.95
    big = load_data(f"imagefolder:{tmp_path}")  # no size: the images' own (shorter side 20)
    assert big.images.shape[-2:] == (20, 20)


def test_files_that_are_not_images_are_skipped_and_named(tmp_path):
    _folder(tmp_path)
    (tmp_path / "a" / "notes.txt").write_text("not an image")
    data = load_data(f"imagefolder:{tmp_path}")
    assert len(data.labels) == 6 and data.source["skipped"] == ["a/notes.txt (not an image)"]
    split = load_split(f"imagefolder:{tmp_path}")
    assert "skipped 1 file(s): a/notes.txt (not an image)" in split.line()
    assert "2 classes, 6 images, 1 channel (greyscale), 10x10 px; closed-set" in split.line()


def _png_header_only(path, width, height):
    """A PNG of a few bytes whose header claims ``width`` x ``height`` (a decompression bomb's shape)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def test_a_decompression_bomb_is_one_line_naming_the_file(tmp_path, capsys):
    _folder(tmp_path)
    _png_header_only(tmp_path / "b" / "bomb.png", 20000, 20000)
    with pytest.raises(UserError, match="bomb.png is too large to decode safely"):
        load_data(f"imagefolder:{tmp_path}")
    assert main(["cloud", "train", "--data", f"imagefolder:{tmp_path}", "--out", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bomb.png" in err[0] and "Traceback" not in err[0]


def test_one_class_is_refused_and_a_small_class_is_named_by_its_folder(tmp_path):
    _folder(tmp_path / "one", classes=("only",))
    with pytest.raises(UserError, match="one class only \\('only'\\).*at least 2 classes"):
        load_split(f"imagefolder:{tmp_path / 'one'}")
    _folder(tmp_path / "small", classes=("cats", "dogs"))
    (tmp_path / "small" / "dogs" / "2.png").unlink()
    with pytest.raises(UserError, match="class 'dogs' has 2 image"):
        load_split(f"imagefolder:{tmp_path / 'small'}")
    with pytest.raises(UserError, match="one class only"):
        split_dataset(Dataset(np.zeros((4, 1, 2, 2), np.float32), np.zeros(4, np.int64), "x"))


def test_an_image_folder_says_what_it_loaded_in_the_split(tmp_path):
    _folder(tmp_path, classes=("a", "b", "c"), per_class=4)
    d = load_split(f"imagefolder:{tmp_path}").describe()
    assert (d["classes"], d["images"], d["channels"], d["size"], d["protocol"]) == (3, 12, 1, [10, 10], "closed")
    assert d["source"]["load_size"] == 10
