"""Negative flips: the counts, their grouping, the page, and the flips in `hetero bench` reports."""

import json

import numpy as np
import pytest

from hetero._io import save_npy, write_json
from hetero.bench import EMBEDDING_FILES
from hetero.bench._flips import bench_flips
from hetero.errors import UserError
from hetero.flips import (
    analyse_flips,
    classification_flips,
    classify,
    flip_summary,
    group_flips,
    load_flip_source,
    retrieval_flips,
    write_flips,
)
from hetero.metrics import retrieval_metrics


def test_flip_summary_counts():
    ref = np.array([1, 1, 1, 0, 0, 1, 0, 1], bool)
    cand = np.array([1, 0, 0, 1, 0, 1, 0, 0], bool)
    s = flip_summary(ref, cand)
    # flips at 1, 2, 7; positive flip at 3; candidate wrong at 1, 2, 4, 6, 7.
    assert (s["flips"], s["positive_flips"], s["queries"]) == (3, 1, 8)
    assert s["nfr"] == pytest.approx(3 / 8)
    assert s["nfi"] == pytest.approx(3 / 5)
    assert (s["reference_errors"], s["candidate_errors"]) == (3, 5)
    assert s["reference_accuracy"] == pytest.approx(5 / 8)


def test_retrieval_flips_count_only_queries_both_evaluate():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 6)).astype(np.float32)
    y = np.repeat(np.arange(10), 4)
    y[0] = 99  # alone in its class: no positive, skipped by both searches
    ref = retrieval_metrics(x, x, y, y, same_images=True)
    cand = retrieval_metrics(x + rng.normal(scale=2.0, size=x.shape).astype(np.float32), x, y, y, same_images=True)
    s = retrieval_flips(ref, cand)
    assert s["queries"] == 39
    expected = sum(ref.top1_correct[i] and not cand.top1_correct[i] for i in range(1, 40))
    assert s["flips"] == expected > 0


def test_classification_flips_need_a_head_for_every_class():
    w = np.eye(3, dtype=np.float32)
    classes = np.array([5, 6, 7])
    emb_ref = np.eye(3, dtype=np.float32)[[0, 1, 2, 0]]
    emb_cand = np.eye(3, dtype=np.float32)[[0, 2, 2, 1]]
    labels = np.array([5, 6, 7, 5])
    np.testing.assert_array_equal(classify(emb_cand, w, classes), [5, 7, 7, 6])
    s = classification_flips(emb_ref, emb_cand, labels, (w, classes), (w, classes))
    assert s["flips"] == 2 and s["nfr"] == pytest.approx(0.5)
    assert classification_flips(emb_ref, emb_cand, labels, (w, classes), None) is None
    # Open-set: a test class the classifier never saw.
    assert classification_flips(emb_ref, emb_cand, np.array([5, 6, 7, 8]), (w, classes), (w, classes)) is None


def test_group_flips_finds_separated_groups_and_orders_by_size():
    rng = np.random.default_rng(1)
    centres = np.eye(8)[:3] * 10
    sizes = (9, 25, 15)
    x = np.concatenate([c + rng.normal(scale=0.3, size=(n, 8)) for c, n in zip(centres, sizes)])
    truth = np.repeat(np.arange(3), sizes)
    g = group_flips(x, seed=0)
    assert g.k == 3 and set(g.scores) == set(range(2, 9))
    assert [int((g.labels == i).sum()) for i in range(3)] == [25, 15, 9]
    for i in range(3):  # each found group is one true group
        assert np.unique(truth[g.labels == i]).size == 1
    assert group_flips(x[:2]).k == 1
    assert group_flips(np.zeros((0, 8))).k == 0


def _bench_folder(tmp_path, rng):
    """A folder laid out as `hetero bench` writes it, from embeddings of a known structure."""
    y = np.repeat(np.arange(12), 5)
    centres = rng.normal(size=(12, 16))
    gallery = centres[y] + rng.normal(scale=0.3, size=(60, 16))
    torch_q = gallery + rng.normal(scale=1.5, size=gallery.shape)
    runtime_q = torch_q + rng.normal(scale=0.5, size=gallery.shape)
    arrays = {"gallery_cloud": gallery, "queries_torch": torch_q, "queries_runtime": runtime_q}
    for key, array in arrays.items():
        save_npy(tmp_path / EMBEDDING_FILES[key], array.astype(np.float32))
    save_npy(tmp_path / EMBEDDING_FILES["labels"], y)
    write_json(tmp_path / "report.json", {"data": {"spec": "npz:unused"}, "embeddings": dict(EMBEDDING_FILES)})
    return arrays, y


def test_flips_of_a_bench_folder_are_flips(tmp_path):
    arrays, y = _bench_folder(tmp_path, np.random.default_rng(2))
    source = load_flip_source(tmp_path)
    assert source.kind == "bench" and source.default_pair == ("paragon", "cross_runtime")
    analysis = analyse_flips(source, seed=0)
    ref = retrieval_metrics(arrays["gallery_cloud"], arrays["gallery_cloud"], y, y, same_images=True)
    cand = retrieval_metrics(arrays["queries_runtime"], arrays["gallery_cloud"], y, y, same_images=True)
    expected = np.flatnonzero(ref.top1_correct & ~cand.top1_correct)
    assert len(expected) > 3
    np.testing.assert_array_equal(analysis.flipped, expected)
    images = np.random.default_rng(3).random((60, 1, 8, 8)).astype(np.float32)
    json_path, html_path = write_flips(analysis, source, tmp_path, images, examples=3)
    record = json.loads(json_path.read_text())
    members = sorted(m for g in record["groups"] for m in g["members"])
    assert members == expected.tolist()
    html = html_path.read_text()
    assert html.count("data:image/png;base64,") == record["clustering"]["k"]
    with pytest.raises(UserError, match="not a search"):
        analyse_flips(source, reference="old_old")
    with pytest.raises(UserError, match="both"):
        analyse_flips(source, reference="cross_torch", candidate="cross_torch")


def test_flip_source_refuses_a_folder_without_embeddings(tmp_path):
    write_json(tmp_path / "report.json", {"data": {"spec": "digits"}})
    with pytest.raises(UserError, match="names no embeddings"):
        load_flip_source(tmp_path)
    with pytest.raises(UserError, match="not a folder"):
        load_flip_source(tmp_path / "missing")


class _Cloud:
    """What bench_flips reads of a cloud model: its classifier."""

    def __init__(self, classifier, classes):
        import torch

        self.classifier = None if classifier is None else torch.from_numpy(classifier)
        self.classes = classes


def test_bench_flips_keys_match_the_definitions(tmp_path):
    arrays, y = _bench_folder(tmp_path, np.random.default_rng(4))
    g, tq, rq = arrays["gallery_cloud"], arrays["queries_torch"], arrays["queries_runtime"]
    paragon = retrieval_metrics(g, g, y, y, same_images=True)
    cross_torch = retrieval_metrics(tq, g, y, y, same_images=True)
    cross_runtime = retrieval_metrics(rq, g, y, y, same_images=True)
    head = np.stack([g[y == c].mean(0) for c in range(12)]).astype(np.float32)
    out = bench_flips(_Cloud(head, list(range(12))), y, g, tq, rq, paragon, cross_torch, cross_runtime)["flips"]
    assert out["edge_vs_cloud"]["retrieval"] == retrieval_flips(paragon, cross_runtime)
    assert out["runtime_vs_torch"]["retrieval"] == retrieval_flips(cross_torch, cross_runtime)
    cls = out["edge_vs_cloud"]["classification"]
    ref_right = classify(g, head, np.arange(12)) == y
    cand_right = classify(rq, head, np.arange(12)) == y
    assert cls["flips"] == int((ref_right & ~cand_right).sum())
    json.dumps(out)  # report.json material
    none = bench_flips(_Cloud(None, None), y, g, tq, rq, paragon, cross_torch, cross_runtime)["flips"]
    assert none["edge_vs_cloud"]["classification"] is None
