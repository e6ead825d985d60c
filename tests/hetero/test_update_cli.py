"""`hetero train --as-cloud`, `hetero update-check` and `hetero flips` end to end on digits.

Tiny models and 1-2 epochs: the figures are poor, the mechanics are what is checked (files,
report keys, formulas, and that every grouped flip is a flip).
"""

import json

import numpy as np
import pytest

from hetero.cli import main
from hetero.data import load_split
from hetero.metrics import gap_closed, retrieval_metrics
from hetero.models import load_cloud, load_edge
from hetero.search_spaces import get_space, save_arch
from hetero.updates import UPDATE_GAP_FORMULA

FAST = ["--epochs", "2", "--batch-size", "64", "--quiet"]


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    d = tmp_path_factory.mktemp("update")
    save_arch(get_space("mobilenet_v3").smallest_arch(), d / "mnv3.json")
    save_arch(get_space("resnet").smallest_arch(), d / "resnet.json")
    assert main(["cloud", "train", "--data", "digits", "--arch", str(d / "mnv3.json"), "--out", str(d / "old"), *FAST]) == 0
    return d


@pytest.fixture(scope="module")
def new_cloud(work):
    """A resnet-space model trained against the old one: `hetero train` writes cloud.pt too."""
    args = ["train", "--cloud", str(work / "old"), "--data", "digits", "--arch", str(work / "resnet.json")]
    assert main([*args, "--out", str(work / "new"), "--alignment", "0", "--contrastive", "0", *FAST]) == 0
    return work / "new"


@pytest.fixture(scope="module")
def edge_args(work):
    """`hetero train` of a smallest-mobilenet_v3 edge model against the old cloud (1 epoch)."""
    return ["train", "--cloud", str(work / "old"), "--data", "digits", "--arch", str(work / "mnv3.json"), "--epochs", "1", "--quiet"]


@pytest.fixture(scope="module")
def plain_edge(work, edge_args):
    """What ``edge_args`` writes without --as-cloud; read-only for the tests that share it."""
    assert main([*edge_args, "--out", str(work / "plain-edge")]) == 0
    return work / "plain-edge"


def test_train_writes_an_update_as_a_cloud_model(work, new_cloud):
    old = load_cloud(work / "old")
    new = load_cloud(new_cloud)
    edge = load_edge(new_cloud)
    assert new.meta["compatible_with"] == old.fingerprint == edge.cloud_fingerprint
    assert new.embed_dim == old.embed_dim
    # Its classifier is its own trained head over the training classes, not the old model's.
    assert new.classes == list(range(10)) and new.classifier.shape == (10, new.embed_dim)
    assert not np.allclose(new.classifier.numpy(), old.classifier.numpy())
    np.testing.assert_allclose(np.linalg.norm(new.classifier.numpy(), axis=1), 1.0, atol=1e-5)
    images = load_split("digits").test.images[:16]
    np.testing.assert_allclose(new.embed(images), edge.embed(images), atol=1e-6)


def test_train_with_an_edge_arch_writes_no_cloud_model_unless_asked(plain_edge, edge_args, tmp_path):
    assert (plain_edge / "edge.pt").is_file() and not (plain_edge / "cloud.pt").exists()
    assert main([*edge_args, "--out", str(tmp_path / "b"), "--as-cloud"]) == 0
    assert load_cloud(tmp_path / "b").classifier is not None


def test_update_check_report(work, new_cloud, capsys):
    out = work / "check"
    assert main(["update-check", "--old", str(work / "old"), "--new", str(new_cloud), "--data", "digits", "--out", str(out), "--quiet"]) == 0
    assert "backward compatible" in capsys.readouterr().out
    report = json.loads((out / "report.json").read_text())
    assert report["kind"] == "update-check"
    assert report["data"] == {**report["data"], "spec": "digits", "protocol": "closed", "seed": 0}
    assert report["new"]["kind"] == "cloud" and report["trained_against_old"] is True

    # The saved embeddings are the two models' embeddings of the test split, in order.
    test = load_split("digits").test
    q, g, y = (np.load(out / f) for f in ("queries_new.npy", "gallery_old.npy", "labels.npy"))
    np.testing.assert_array_equal(y, test.labels)
    np.testing.assert_allclose(g, load_cloud(work / "old").embed(test.images), atol=1e-5)
    np.testing.assert_allclose(q, load_cloud(new_cloud).embed(test.images), atol=1e-5)

    # Every figure recomputed from the embeddings.
    searches = {"old_old": (g, g), "new_new": (q, q), "new_old": (q, g)}
    res = {k: retrieval_metrics(a, b, y, y, same_images=True) for k, (a, b) in searches.items()}
    for k, r in res.items():
        assert report["retrieval"][k]["map"] == pytest.approx(r.map)
    assert report["compatible"] == (res["new_old"].map > res["old_old"].map)
    expected_gap = (res["new_old"].map - res["old_old"].map) / (res["new_new"].map - res["old_old"].map)
    assert report["update_gap_closed"] == pytest.approx(expected_gap)
    assert report["update_gap_closed"] == pytest.approx(gap_closed(res["new_old"].map, res["old_old"].map, res["new_new"].map))
    assert report["update_gap_closed_formula"] == UPDATE_GAP_FORMULA
    flips = report["flips"]["retrieval"]["new_old_vs_old_old"]
    expected_flips = int((res["old_old"].top1_correct & ~res["new_old"].top1_correct).sum())
    assert flips["flips"] == expected_flips and flips["nfr"] == pytest.approx(expected_flips / len(y))
    # Closed-set digits: both models classify every test class with their own heads.
    assert report["flips"]["classification"]["queries"] == len(y)
    assert report["flips"]["classification_old_head"]["queries"] == len(y)
    assert "update gap closed" in (out / "report.md").read_text()


def test_flips_on_an_update_check_report_are_flips_with_images(work, new_cloud):
    out = work / "check"
    if not (out / "report.json").exists():
        assert main(["update-check", "--old", str(work / "old"), "--new", str(new_cloud), "--data", "digits", "--out", str(out), "--quiet"]) == 0
    assert main(["flips", "--report", str(out), "--examples", "4", "--quiet"]) == 0
    record = json.loads((out / "flips.json").read_text())
    assert (record["reference"], record["candidate"]) == ("old_old", "new_old")
    q, g, y = (np.load(out / f) for f in ("queries_new.npy", "gallery_old.npy", "labels.npy"))
    ref = retrieval_metrics(g, g, y, y, same_images=True)
    cand = retrieval_metrics(q, g, y, y, same_images=True)
    members = [m for group in record["groups"] for m in group["members"]]
    assert len(members) == record["flips"]["flips"] > 0
    for m in members:  # every member of every group: reference right, candidate wrong
        assert ref.top1_correct[m] and not cand.top1_correct[m]
    assert sorted(members) == np.flatnonzero(ref.top1_correct & ~cand.top1_correct).tolist()
    for group in record["groups"]:
        assert group["size"] == len(group["members"]) == sum(group["classes"].values())
        for m, r, c in zip(group["members"], group["reference_top1"], group["candidate_top1"]):
            assert y[r] == y[m] != y[c]
    html = (out / "flips.html").read_text()
    assert html.count("data:image/png;base64,") == len(record["groups"]) >= 1


def test_update_check_takes_an_edge_folder(work, plain_edge, tmp_path):
    assert main(["update-check", "--old", str(work / "old"), "--new", str(plain_edge), "--data", "digits", "--out", str(tmp_path / "c"), "--quiet"]) == 0
    report = json.loads((tmp_path / "c" / "report.json").read_text())
    assert report["new"]["kind"] == "edge" and report["new"]["has_classifier"] is False
    assert report["flips"]["classification"] is None  # the edge model has no classifier of its own
    assert report["flips"]["classification_old_head"] is not None


def test_update_check_refuses_other_dims_and_edge_olds(work, tmp_path, capsys):
    small = ["cloud", "train", "--data", "digits", "--arch", str(work / "mnv3.json"), "--epochs", "1", "--embed-dim", "32", "--quiet"]
    assert main([*small, "--out", str(tmp_path / "dim32")]) == 0
    capsys.readouterr()
    rc = main(["update-check", "--old", str(work / "old"), "--new", str(tmp_path / "dim32"), "--data", "digits", "--out", str(tmp_path / "c")])
    err = capsys.readouterr().err
    assert rc == 2 and "32 dims" in err and "128" in err and len(err.strip().splitlines()) == 1
    rc = main(["update-check", "--old", str(tmp_path), "--new", str(tmp_path / "dim32"), "--data", "digits", "--out", str(tmp_path / "c")])
    assert rc == 2 and "neither cloud.pt nor edge.pt" in capsys.readouterr().err
