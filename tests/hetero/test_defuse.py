"""Defuse (hetero.defuse, `hetero flips --generate`): the VAE, the keep rule, the groups, the mix, the CLI."""

import json

import numpy as np
import pytest
import torch

from hetero.cli import main
from hetero.data import Dataset
from hetero.defuse import (
    ConvVAE,
    Generated,
    VAEConfig,
    best_lambda,
    cached_vae,
    group_codes,
    judge,
    keep_failures,
    mix,
    perturb_decode,
    top1_correct,
)
from hetero.errors import UserError


@pytest.mark.parametrize(("channels", "size"), [(1, 8), (1, 28), (3, 36)])
def test_vae_round_trip_shapes(channels, size):
    vae = ConvVAE(channels, size, latent_dim=5, width=8).eval()
    x = torch.rand(3, channels, size, size)
    mean, log_var = vae.encode(x)
    assert mean.shape == log_var.shape == (3, 5)
    out = vae.decode(mean)
    assert out.shape == x.shape and float(out.min()) >= 0.0 and float(out.max()) <= 1.0


def test_vae_is_cached_by_data_and_reloaded(tmp_path):
    images = np.random.default_rng(0).random((20, 1, 8, 8)).astype(np.float32)
    config = VAEConfig(latent_dim=4, width=8, steps=3, batch_size=8)
    vae, path, trained = cached_vae(images, tmp_path, config)
    again, path2, trained2 = cached_vae(images, tmp_path, config)
    assert trained and not trained2 and path == path2
    z = torch.zeros(2, 4)
    torch.testing.assert_close(vae.decode(z), again.decode(z))
    other = cached_vae(images[:10], tmp_path, config)
    assert other[2] and other[1] != path  # other data: another VAE
    made = perturb_decode(vae, images[:5], np.arange(5), samples=3, noise=0.2)
    assert made.images.shape == (15, 1, 8, 8) and made.codes.shape == (15, 4)
    assert made.sources.tolist() == np.repeat(np.arange(5), 3).tolist() and made.labels.tolist() == made.sources.tolist()
    with pytest.raises(UserError, match="do not fit"):
        perturb_decode(vae, np.zeros((2, 3, 8, 8), np.float32), np.zeros(2))


class _Fixed:
    """An embedder that returns given embeddings, row for row."""

    def __init__(self, rows):
        self.rows = np.asarray(rows, dtype=np.float32)

    def embed(self, images, batch_size=512):
        return self.rows[: len(images)]


def test_keep_rule_on_a_constructed_case():
    # Gallery: class 0 along x, class 1 along y; item 0 is the source of every query.
    gallery = np.array([[1, 0], [1, 0.1], [0, 1], [0.1, 1]], dtype=np.float32)
    gallery_labels = np.array([0, 0, 1, 1])
    labels = np.array([0, 0, 1, 1])
    sources = np.array([0, 0, 2, 2])
    # Reference: right, right, right, wrong. Candidate: wrong, right, wrong, wrong.
    ref = _Fixed([[1, 0.05], [1, 0], [0.05, 1], [1, 0]])
    cand = _Fixed([[0, 1], [1, 0], [1, 0], [1, 0]])
    images = np.zeros((4, 1, 2, 2), np.float32)
    j = judge(ref, cand, images, labels, sources, gallery, gallery_labels)
    assert j.reference_correct.tolist() == [True, True, True, False]
    assert j.candidate_correct.tolist() == [False, True, False, False]
    assert j.kept.tolist() == [True, False, True, False]  # reference right and candidate wrong only
    assert j.summary["flips"] == 2 and j.summary["nfr"] == pytest.approx(0.5)
    assert keep_failures(np.array([1, 0]), np.array([0, 0])).tolist() == [True, False]
    # The source is left out: a query equal to its own source must find another item of its class.
    lone = np.array([[1, 0], [0, 1], [0.1, 1]], dtype=np.float32)
    assert not top1_correct(lone[:1], lone, np.array([0, 1, 1]), np.array([0]), exclude=np.array([0]))[0]
    assert top1_correct(lone[:1], lone, np.array([0, 1, 1]), np.array([0]))[0]


def test_groups_cover_every_kept_code():
    rng = np.random.default_rng(0)
    centres = np.eye(4)[:3] * 8
    codes = np.concatenate([c + rng.normal(scale=0.3, size=(n, 4)) for c, n in zip(centres, (30, 20, 10))])
    groups = group_codes(codes, max_groups=6, seed=0)
    assert groups.k >= 1 and sum(groups.counts()) == len(codes)
    assert groups.counts() == sorted(groups.counts(), reverse=True)
    assert groups.k == 3  # three separated blobs
    assert group_codes(np.zeros((0, 4))).k == 0 and group_codes(codes[:2]).k == 1


def test_mix_puts_lambda_of_failures_in_the_training_set():
    train = Dataset(np.zeros((30, 1, 4, 4), np.float32), np.arange(30) % 3, "t")
    marks = np.arange(1, 5, dtype=np.float32)[:, None, None, None] * np.ones((4, 1, 4, 4), np.float32)
    failures = Generated(marks, np.zeros((4, 2), np.float32), np.arange(4), np.array([0, 1, 2, 0]))
    images, labels = mix(train, failures, 0.25)
    assert len(labels) == 40 and images[30:].min() >= 1.0  # 10 failure samples = 25% of 40
    which = images[30:, 0, 0, 0].astype(int) - 1
    assert sorted(np.bincount(which, minlength=4).tolist()) == [2, 2, 3, 3]  # repeated evenly
    assert labels[30:].tolist() == failures.labels[which].tolist()  # each labelled by its source
    assert mix(train, failures, 0.0)[0] is train.images


def test_best_lambda_needs_the_test_within_a_point_and_the_gain_over_the_control():
    rows = [
        {"lambda": 0.0, "failure_accuracy": 0.3, "failure_gain_points": 30.0, "failure_gain_over_control_points": 0.0,
         "test_top1_change_points": 0.2},
        {"lambda": 0.3, "failure_accuracy": 0.6, "failure_gain_points": 60.0, "failure_gain_over_control_points": 30.0,
         "test_top1_change_points": -0.8},
        {"lambda": 0.5, "failure_accuracy": 0.9, "failure_gain_points": 90.0, "failure_gain_over_control_points": 60.0,
         "test_top1_change_points": -2.5},
    ]
    best = best_lambda(rows)
    assert best["lambda"] == 0.3 and best["meets_target"] and best["note"] is None
    rows[1]["failure_gain_over_control_points"] = 10.0
    assert not best_lambda(rows)["meets_target"]


def test_best_lambda_says_when_the_control_alone_moves_the_test():
    rows = [
        {"lambda": 0.0, "failure_accuracy": 0.4, "failure_gain_points": 40.0, "failure_gain_over_control_points": 0.0,
         "test_top1_change_points": 4.7},
        {"lambda": 0.5, "failure_accuracy": 0.6, "failure_gain_points": 60.0, "failure_gain_over_control_points": 20.0,
         "test_top1_change_points": 3.5},
    ]
    best = best_lambda(rows)
    assert best["lambda"] is None and "+4.70 pts" in best["note"] and "train it longer" in best["note"]


def _models(tmp_path, channels=1):
    """An untrained cloud and an edge model said to be trained against it (what the CLI loads)."""
    from hetero.models import CloudModel, build_edge, build_net, save_cloud, save_edge
    from hetero.pipeline import default_preprocess
    from hetero.search_spaces import get_space

    torch.manual_seed(0)
    cloud_arch = {**get_space("resnet").smallest_arch(), "resolution": 24}
    preprocess = default_preprocess(24, channels)
    source = {"type": "space", "arch": cloud_arch, "in_channels": channels}
    cloud = CloudModel(build_net(source, 16).eval().requires_grad_(False), preprocess, 16, source=source)
    cloud.refresh_fingerprint()
    save_cloud(cloud, tmp_path / "cloud")
    edge_arch = {**get_space("mobilenet_v3").smallest_arch(), "resolution": 24}
    save_edge(build_edge(edge_arch, 16, preprocess, cloud.fingerprint), tmp_path / "edge")
    return str(tmp_path / "cloud"), str(tmp_path / "edge")


def _digits(tmp_path, n=150, channels=1, classes=10):
    from hetero.data import load_data

    d = load_data("digits")
    images = np.repeat(d.images[:n], channels, axis=1)
    labels = d.labels[:n] % classes
    np.savez(tmp_path / f"d{channels}{classes}.npz", images=images, labels=labels)
    return f"npz:{tmp_path / f'd{channels}{classes}.npz'}"


def test_flips_generate_end_to_end_on_a_few_digits(tmp_path, capsys):
    cloud, edge = _models(tmp_path)
    data = _digits(tmp_path)
    out = tmp_path / "run"
    argv = ["flips", "--generate", "--model", edge, "--cloud", cloud, "--data", data, "--out", str(out), "--quiet",
            "--sources", "40", "--samples", "4", "--vae-steps", "30", "--max-groups", "4", "--json"]
    assert main(argv) == 0
    figures = json.loads(capsys.readouterr().out)
    record = json.loads((out / "defuse.json").read_text())
    assert record["generation"]["generated"] == 160 == figures["generation"]["generated"]
    assert sum(g["size"] for g in record["groups"]) == record["kept"] > 0
    assert record["vae"]["trained_now"] and (out / record["vae"]["file"]).is_file()
    page = (out / "flips.html").read_text()
    assert page.count("data:image/png;base64,") == record["clustering"]["k"] + 1  # one grid per group, the map
    assert (out / "defuse_map.png").read_bytes()[:4] == b"\x89PNG"


def test_flips_generate_refuses_bad_input_in_one_line(tmp_path, capsys):
    cloud, edge = _models(tmp_path)
    out = str(tmp_path / "run")
    base = ["flips", "--generate", "--model", edge, "--cloud", cloud, "--out", out, "--quiet"]
    for data, expected in ((_digits(tmp_path, 40, channels=3), "has 3 channel(s) but the --cloud model takes 1"),
                           (_digits(tmp_path, 40, classes=1), "one class only")):
        assert main([*base, "--data", data]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and expected in err[0], err
    assert main(["flips", "--generate", "--model", edge, "--out", out]) == 2
    assert "--generate needs --cloud, --data" in capsys.readouterr().err
    assert main(["flips", "--generate", "--model", edge, "--cloud", cloud, "--data", "digits", "--out", out,
                 "--correct", "--lambdas", "0.5,1.2"]) == 2
    assert "each lambda must lie in [0, 1)" in capsys.readouterr().err
    assert main(["flips", "--generate", "--report", out, "--model", edge]) == 2
    assert "reads no --report" in capsys.readouterr().err
    assert not (tmp_path / "run" / "defuse.json").exists()
