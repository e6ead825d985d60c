"""Collapse detection and gap closed's null case: a degenerate model is never called healthy."""

import numpy as np
import pytest

from hetero.errors import UserError
from hetero.metrics import embedding_collapse, gap_closed_entry


def _clusters(classes: int, per_class: int, dim: int, noise: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, dim))
    return (np.repeat(centres, per_class, axis=0) + noise * rng.normal(size=(classes * per_class, dim))).astype(np.float32)


def test_the_same_vector_everywhere_is_collapsed():
    x = np.tile(np.random.default_rng(0).normal(size=(1, 32)), (50, 1)).astype(np.float32)
    check = embedding_collapse(x, name="test embeddings")
    assert check.collapsed
    assert check.effective_rank == pytest.approx(1.0, abs=1e-3)
    assert "test embeddings are collapsed" in check.reason and "effective rank" in check.reason


def test_nearly_the_same_vector_is_collapsed():
    # Issue 14's face model: every pairwise cosine >= 0.999998.
    rng = np.random.default_rng(1)
    x = (rng.normal(size=(1, 64)) + 1e-3 * rng.normal(size=(120, 64))).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    assert (x @ x.T).min() > 0.99999
    check = embedding_collapse(x)
    assert check.collapsed and check.cosine_spread < 1e-4


@pytest.mark.parametrize("classes", [2, 10, 40])
def test_class_clusters_are_healthy(classes):
    check = embedding_collapse(_clusters(classes, 12, 64, noise=0.3))
    assert not check.collapsed, check
    assert check.reason == "" and check.effective_rank >= min(classes, 64) * 0.5


def test_two_close_clusters_are_still_healthy():
    # Two classes whose centres have cosine 0.9: low rank, but the cosines still spread.
    a = np.zeros(16)
    a[0] = 1.0
    b = np.zeros(16)
    b[0], b[1] = 0.9, np.sqrt(1 - 0.81)
    x = np.vstack([np.tile(a, (20, 1)), np.tile(b, (20, 1))]).astype(np.float32)
    assert not embedding_collapse(x).collapsed


def test_large_sets_are_sampled_reproducibly():
    x = _clusters(10, 300, 32, noise=0.5)
    first, second = embedding_collapse(x, seed=3), embedding_collapse(x, seed=3)
    assert first == second and not first.collapsed


def test_bad_input_is_a_user_error():
    with pytest.raises(UserError, match="at least 2"):
        embedding_collapse(np.ones((1, 4), np.float32))
    with pytest.raises(UserError, match="NaN"):
        embedding_collapse(np.full((3, 4), np.nan, np.float32))


def test_gap_closed_is_null_with_a_note_when_the_paragon_is_no_better():
    assert gap_closed_entry(0.8, 0.5, 0.9) == {"gap_closed": pytest.approx(0.75)}
    for paragon in (0.5, 0.4):
        entry = gap_closed_entry(0.3, 0.5, paragon)
        assert entry["gap_closed"] is None
        assert "paragon" in entry["gap_closed_note"] and "homogeneous" in entry["gap_closed_note"]


class _Fixed:
    """A stand-in model whose embeddings of the test images are given."""

    def __init__(self, embeddings):
        self.embeddings = embeddings

    def embed(self, images):
        return self.embeddings


def test_a_collapsed_edge_model_is_never_ok():
    from hetero.data import Dataset
    from hetero.pipeline import evaluate_compat

    labels = np.repeat(np.arange(4), 6)
    test = Dataset(np.zeros((24, 1, 2, 2), np.float32), labels, "x")
    cloud = _Fixed(_clusters(4, 6, 16, noise=0.1))
    same = np.tile(np.random.default_rng(3).normal(size=(1, 16)), (24, 1)).astype(np.float32)
    summary = evaluate_compat(cloud, _Fixed(same), test).summary()
    assert summary["collapsed"] and summary["status"] != "ok" and "collapsed embeddings" in summary["status"]
    assert summary["collapse"]["reason"].startswith("the edge model's test embeddings are collapsed")
    healthy = evaluate_compat(cloud, _Fixed(_clusters(4, 6, 16, noise=0.1, seed=1)), test).summary()
    assert not healthy["collapsed"] and "collapsed" not in healthy["status"]
    # A healthy model in its own space (homogeneous ~ paragon, cross at chance) is not compatible.
    assert not healthy["compatible"] and "not compatible" in healthy["status"]


def test_status_names_what_failed():
    from hetero.metrics import result_status

    assert result_status(True, False) == "ok" and result_status(True, False, []) == "ok"
    assert result_status(False, True, ["cos_min 0.5 < 0.99"]) == (
        "collapsed embeddings; not compatible (cross mAP <= homogeneous edge mAP); parity below thresholds (cos_min 0.5 < 0.99)")
