"""Data SPECs, the seeded split and the preprocessing."""

from pathlib import Path

import numpy as np
import pytest

from hetero.data import Preprocess, load_data, load_split, split_dataset
from hetero.errors import UserError

OMNIGLOT = Path(__file__).resolve().parents[3] / "shared" / "data" / "omniglot"
FASHION = Path("/usr/share/datasets/fashion-mnist")


def test_digits_closed_split_is_seeded_and_stratified():
    a, b, c = load_split("digits", seed=1), load_split("digits", seed=1), load_split("digits", seed=2)
    assert a.protocol == "closed"
    assert np.array_equal(a.test.labels, b.test.labels) and np.array_equal(a.test.images, b.test.images)
    assert not np.array_equal(a.test.images, c.test.images)
    assert set(a.train.labels) == set(a.test.labels) == set(range(10))
    assert len(a.train.labels) + len(a.test.labels) == 1797
    assert a.train.images.dtype == np.float32 and 0 <= a.train.images.min() and a.train.images.max() <= 1


def test_open_split_has_disjoint_classes():
    s = load_split("digits", protocol="open", seed=0)
    assert not set(s.train.labels) & set(s.test.labels)


def _write_npz(path, n_classes=12, per_class=4, shape=(16, 16)):
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(n_classes), per_class)
    images = rng.integers(0, 255, (len(labels), *shape), dtype=np.uint8)
    np.savez(path, images=images, labels=labels)
    return images, labels


def test_npz_source(tmp_path):
    images, labels = _write_npz(tmp_path / "d.npz")
    data = load_data(f"npz:{tmp_path / 'd.npz'}")
    assert data.images.shape == (48, 1, 16, 16)
    np.testing.assert_allclose(data.images[:, 0], images / 255.0, atol=1e-6)
    assert np.array_equal(data.labels, labels)


def test_imagefolder_source(tmp_path):
    from PIL import Image

    for c in ("cat", "dog"):
        (tmp_path / c).mkdir()
        for i in range(3):
            Image.fromarray(np.full((10, 12, 3), 40 * i, np.uint8)).save(tmp_path / c / f"{i}.png")
    data = load_data(f"imagefolder:{tmp_path}")
    assert data.images.shape[:2] == (6, 3) and sorted(set(data.labels)) == [0, 1]


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda p: f"npz:{p / 'missing.npz'}", "does not exist"),
        (lambda p: (p / "bad.npz").write_bytes(b"PK\x03\x04garbage") and f"npz:{p / 'bad.npz'}", "corrupt"),
        (lambda p: f"imagefolder:{p / 'nowhere'}", "does not exist"),
        (lambda p: f"omniglot:{p}", "missing"),
        (lambda p: "mnist-of-mars", "unknown data spec"),
    ],
)
def test_bad_specs_give_one_clear_error(tmp_path, make, match):
    with pytest.raises(UserError, match=match):
        load_data(make(tmp_path))


def test_imagefolder_empty_class_and_corrupt_image(tmp_path):
    from PIL import Image

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "a" / "0.png")
    with pytest.raises(UserError, match="empty"):
        load_data(f"imagefolder:{tmp_path}")
    (tmp_path / "b" / "0.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(UserError, match="corrupt"):
        load_data(f"imagefolder:{tmp_path}")


def test_npz_nan_and_shape_refused(tmp_path):
    np.savez(tmp_path / "n.npz", images=np.full((4, 8, 8), np.nan, np.float32), labels=np.arange(4))
    with pytest.raises(UserError, match="NaN"):
        load_data(f"npz:{tmp_path / 'n.npz'}")
    np.savez(tmp_path / "s.npz", images=np.zeros((4, 8), np.float32), labels=np.arange(4))
    with pytest.raises(UserError, match="must be"):
        load_data(f"npz:{tmp_path / 's.npz'}")


def test_preprocess_resizes_converts_and_normalises():
    p = Preprocess(size=12, channels=3, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    x = p(np.ones((2, 1, 8, 8), np.float32))
    assert tuple(x.shape) == (2, 3, 12, 12)
    assert float(x.min()) == pytest.approx(2.0) and float(x.max()) == pytest.approx(2.0)
    assert Preprocess.from_dict(p.to_dict()) == p


@pytest.mark.skipif(not (OMNIGLOT / "images_background.npz").exists(), reason="Omniglot not beside the checkout (../shared/data/omniglot)")
def test_omniglot_is_open_set_with_its_own_split():
    s = load_split(f"omniglot:{OMNIGLOT}")
    assert s.protocol == "open"
    assert s.train.num_classes == 964 and s.test.num_classes == 659
    assert not set(s.train.labels) & set(s.test.labels)


@pytest.mark.skipif(not FASHION.exists(), reason="Debian's dataset-fashion-mnist is not installed")
def test_fashion_mnist_loads():
    d = load_data("fashion-mnist")
    assert d.images.shape == (70000, 1, 28, 28) and d.num_classes == 10


def test_split_refuses_tiny_classes():
    from hetero.data import Dataset

    d = Dataset(np.zeros((4, 1, 4, 4), np.float32), np.array([0, 0, 1, 1]), "x")
    with pytest.raises(UserError, match="at least 3"):
        split_dataset(d, protocol="closed")
