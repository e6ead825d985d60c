"""`hetero bench` end to end on a tiny digits model: report, runner path, gallery cache, devices.

The models are trained once per module (1 epoch, smallest architectures) and exported to ONNX.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from hetero.cli import main

pytest.importorskip("onnxruntime", reason="the bench runs the ONNX artifact on onnxruntime")

ROOT = Path(__file__).resolve().parents[2]
DESIGN_KEYS = {"device", "backend", "precision", "data", "cloud", "edge", "retrieval", "gap_closed", "compatible",
               "parity", "latency_ms", "embeddings"}
FAST = ["--threads", "1", "--warmup", "1", "--repeats", "3", "--quiet"]


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny cloud and edge model on digits, and the edge model exported for x86-server (ONNX fp32)."""
    from search_spaces import get_space

    from hetero.cli._export import export_for_device
    from hetero.data import load_split
    from hetero.models import save_cloud, save_edge
    from hetero.pipeline import train_cloud, train_edge
    from hetero.training import CLOUD_DEFAULTS, EDGE_DEFAULTS

    root = tmp_path_factory.mktemp("bench")
    split = load_split("digits", seed=0)
    cpu = torch.device("cpu")
    cloud = train_cloud(split.train, get_space("resnet").smallest_arch(), 32, dataclasses.replace(CLOUD_DEFAULTS, epochs=1), cpu, 0)
    save_cloud(cloud, root / "cloud")
    # Small batches without augmentation: one epoch then gives varied (not collapsed) embeddings.
    config = dataclasses.replace(EDGE_DEFAULTS, epochs=1, batch_size=16, augment=False, alignment=4.0, contrastive=1.0)
    edge = train_edge(cloud, split.train, get_space("mobilenet_v3").smallest_arch(), config, cpu, 0)
    save_edge(edge, root / "edge")
    export_for_device(root / "edge", "x86-server", root / "artifact", "digits", None, 0, cloud)
    return root


@pytest.fixture(scope="module")
def direct(work: Path) -> dict:
    """The report of the direct path: the artifact run here, gallery cached in work/gallery."""
    out = work / "direct"
    code = main(["bench", "--artifact", str(work / "artifact"), "--cloud", str(work / "cloud"), "--data", "digits",
                 "--out", str(out), "--gallery", str(work / "gallery"), "--batch-sizes", "8", *FAST])
    assert code == 0
    return json.loads((out / "report.json").read_text())


def _numpy_metrics(q: np.ndarray, g: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """top-1 and mAP written independently: float64, one query at a time, own image removed."""
    q = q.astype(np.float64) / np.linalg.norm(q, axis=1, keepdims=True)
    g = g.astype(np.float64) / np.linalg.norm(g, axis=1, keepdims=True)
    top1, aps = [], []
    for i in range(len(q)):
        others = np.delete(np.arange(len(g)), i)
        order = others[np.argsort(-(g[others] @ q[i]), kind="stable")]
        relevant = labels[order] == labels[i]
        if not relevant.any():
            continue
        top1.append(relevant[0])
        ranks = np.flatnonzero(relevant) + 1  # 1-based ranks of the positives
        aps.append(np.mean(np.arange(1, len(ranks) + 1) / ranks))
    return float(np.mean(top1)), float(np.mean(aps))


def test_report_keeps_design_keys_and_adds_batch_latency(work: Path, direct: dict) -> None:
    assert DESIGN_KEYS <= set(direct)
    assert set(direct["retrieval"]) == {"paragon", "homogeneous_edge", "cross_torch", "cross_runtime"}
    assert {"cos_min", "cos_mean", "max_abs", "top1_agreement", "top1_item_agreement", "nfr"} <= set(direct["parity"])
    assert direct["backend"] == "onnx" and direct["runtime"]["label"] == "onnx"
    lat = direct["latency_ms"]
    assert lat["batch"] == 1 and lat["threads"] == 1 and 0 < lat["p50"] <= lat["p95"]
    assert [f["batch"] for f in direct["latency_ms_batches"]] == [1, 8]
    assert all(f["threads"] == 1 and f["repeats"] == 3 for f in direct["latency_ms_batches"])
    assert direct["edge"]["artifact_bytes"] == (work / "artifact" / "model.onnx").stat().st_size
    assert direct["data"]["queries"] == direct["data"]["gallery"] == 539
    assert direct["data"]["protocol"] == "closed" and direct["gallery"]["search"] == "exact, blocks"
    assert "runtime_vs_torch" in direct["flips"]  # hetero.bench._flips, merged in when the cloud model is given


def test_report_metrics_match_an_independent_numpy_recomputation(work: Path, direct: dict) -> None:
    out = work / "direct"
    files = {k: np.load(out / v) for k, v in direct["embeddings"].items()}
    labels, gallery = files["labels"], files["gallery_cloud"]
    for key, queries in (("cross_runtime", files["queries_runtime"]), ("cross_torch", files["queries_torch"]),
                         ("paragon", gallery)):
        top1, m = _numpy_metrics(queries, gallery, labels)
        assert direct["retrieval"][key]["top1"] == pytest.approx(top1, abs=1e-9), key
        # float64 here, float32 there: items tied at float32 resolution (the 1-epoch cloud model
        # embeds duplicate digits alike) may swap places, which moves mAP in the 6th decimal.
        assert direct["retrieval"][key]["map"] == pytest.approx(m, abs=1e-5), key
    top1, m = _numpy_metrics(files["queries_torch"], files["queries_torch"], labels)
    assert direct["retrieval"]["homogeneous_edge"]["map"] == pytest.approx(m, abs=1e-5)
    # The saved neighbours are the runtime's ranking: the first is its top-1 decision.
    neighbours = np.load(out / direct["neighbours"]["runtime"])
    assert neighbours.shape == (len(labels), 5)
    hit = labels[neighbours[:, 0]] == labels
    assert hit.mean() == pytest.approx(direct["retrieval"]["cross_runtime"]["top1"], abs=1e-9)


def test_runner_path_gives_the_direct_report(work: Path, direct: dict) -> None:
    inputs_dir = work / "inputs"
    assert main(["bench", "--artifact", str(work / "artifact"), "--data", "digits", "--export-inputs", str(inputs_dir), *FAST]) == 0
    record = json.loads((inputs_dir / "inputs.json").read_text())
    assert record["shape"][0] == 539 and "devices.run" in record["run_on_device"]
    assert "devices.run" in (inputs_dir / "README.md").read_text()
    emb, lat = work / "emb.npy", work / "latency.json"
    # The runner as on a device: a separate process that needs numpy and the runtime only.
    run = subprocess.run([sys.executable, "-m", "devices.run", str(work / "artifact"), "--inputs", str(inputs_dir / "queries.npy"),
                          "--out", str(emb), "--latency-out", str(lat), "--threads", "1", "--warmup", "1", "--repeats", "3",
                          "--cloud-fingerprint", record["cloud_fingerprint"]],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    out = work / "device"
    assert main(["bench", "--artifact", str(work / "artifact"), "--cloud", str(work / "cloud"), "--data", "digits",
                 "--embeddings", str(emb), "--latency", str(lat), "--out", str(out), "--gallery", str(work / "gallery"), *FAST]) == 0
    report = json.loads((out / "report.json").read_text())
    for key in ("cross_runtime", "cross_torch", "paragon", "homogeneous_edge"):
        for metric in ("top1", "top5", "map", "map_at_r"):
            assert report["retrieval"][key][metric] == pytest.approx(direct["retrieval"][key][metric], abs=1e-6)
    assert report["parity"]["cos_min"] == pytest.approx(direct["parity"]["cos_min"], abs=1e-6)
    measured = json.loads(lat.read_text())
    assert report["latency_ms"]["p50"] == measured["p50"] and report["latency_ms"]["measured_on"] == "device"
    assert report["runtime"]["label"] == "onnx (on device)"


def _one_line_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str], *fragments: str) -> str:
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, err
    return err


def test_gallery_of_another_cloud_is_refused(work: Path, direct: dict, capsys: pytest.CaptureFixture[str]) -> None:
    from hetero.cli._export import export_for_device
    from hetero.models import load_cloud, load_edge, save_cloud, save_edge

    # Cloud model B: A with one weight changed (another fingerprint); the edge model retargeted to it.
    other = load_cloud(work / "cloud")
    with torch.no_grad():
        next(other.net.parameters()).view(-1)[0] += 0.5
    save_cloud(other, work / "cloud_b")
    edge = load_edge(work / "edge")
    edge.cloud_fingerprint = other.fingerprint
    save_edge(edge, work / "edge_b")
    export_for_device(work / "edge_b", "x86-server", work / "artifact_b", "digits", None, 0, other)
    index = json.loads((work / "gallery" / "index.json").read_text())
    assert index["cloud"]["fingerprint"] == direct["cloud"]["fingerprint"] != other.fingerprint
    err = _one_line_exit_2(["bench", "--artifact", str(work / "artifact_b"), "--cloud", str(work / "cloud_b"), "--data", "digits",
                            "--gallery", str(work / "gallery"), "--out", str(work / "refused"), *FAST], capsys,
                           "gallery index", "built with cloud model", other.fingerprint[:19])
    assert not (work / "refused" / "report.json").exists(), err
    # The same refusal without --cloud: the cached index alone says which cloud model it serves.
    _one_line_exit_2(["bench", "--artifact", str(work / "artifact_b"), "--data", "digits", "--gallery", str(work / "gallery"),
                      "--out", str(work / "refused"), *FAST], capsys, "gallery index")


def test_cached_gallery_is_reused_and_checked_against_the_data(work: Path, direct: dict, capsys: pytest.CaptureFixture[str]) -> None:
    cached = np.load(work / "gallery" / "gallery.npy")
    assert np.array_equal(cached, np.load(work / "direct" / "gallery_cloud.npy"))
    index = json.loads((work / "gallery" / "index.json").read_text())
    assert index["data"] == {"spec": "digits", "protocol": "closed", "seed": 0, "items": 539}
    assert index["search"] == "exact, blocks"
    _one_line_exit_2(["bench", "--artifact", str(work / "artifact"), "--data", "digits", "--seed", "1",
                      "--gallery", str(work / "gallery"), "--out", str(work / "seed1"), *FAST], capsys, "--seed")


def test_bad_flags_and_embeddings_are_one_line_errors(work: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    art, cloud = str(work / "artifact"), str(work / "cloud")
    _one_line_exit_2(["bench", "--artifact", art, "--cloud", cloud, "--data", "digits", "--out", str(tmp_path),
                      "--latency", "x.json"], capsys, "--latency goes with --embeddings")
    np.save(tmp_path / "short.npy", np.ones((10, 32), np.float32))
    _one_line_exit_2(["bench", "--artifact", art, "--cloud", cloud, "--data", "digits", "--out", str(tmp_path),
                      "--embeddings", str(tmp_path / "short.npy")], capsys, "539 queries")
    _one_line_exit_2(["bench", "--device", "all", "--cloud", cloud, "--data", "digits", "--out", str(tmp_path)], capsys, "--model")
    _one_line_exit_2(["bench", "--device", "no-such-phone", "--model", str(work / "edge"), "--cloud", cloud, "--data", "digits",
                      "--out", str(tmp_path)], capsys, "no-such-phone")


@pytest.mark.slow
def test_device_list_compares_runtimes_in_a_table_and_a_page(work: Path, direct: dict) -> None:
    from devices.runtimes import get_runtime

    out = work / "devices"
    devices = "x86-server,jetson-orin-nano,iphone-15"
    assert main(["bench", "--device", devices, "--model", str(work / "edge"), "--cloud", str(work / "cloud"), "--data", "digits",
                 "--out", str(out), "--gallery", str(work / "gallery"), "--warmup", "0", "--repeats", "2", "--quiet"]) == 0
    rows = {r["device"]: r for r in json.loads((out / "comparison.json").read_text())}
    assert list(rows) == devices.split(",")
    onnx = rows["x86-server"]
    # The artifact exported here equals the module's: the same cross mAP as the direct bench.
    assert onnx["status"] == "ok" and onnx["cross_map_runtime"] == pytest.approx(direct["retrieval"]["cross_runtime"]["map"], abs=1e-6)
    assert (out / "x86-server" / "report.json").is_file() and (out / "x86-server" / "artifact" / "manifest.json").is_file()
    trt_ok, trt_reason = get_runtime("tensorrt").available()
    if not trt_ok:
        assert rows["jetson-orin-nano"]["status"] == f"model.onnx written; engine not built: {trt_reason}"
        assert rows["jetson-orin-nano"].get("cross_map_runtime") is None and rows["jetson-orin-nano"]["artifact_bytes"] > 0
    coreml = rows["iphone-15"]
    if sys.platform != "darwin":
        assert coreml["backend"] == "coreml (interpreted)"
    assert coreml["cos_min"] > 0.99 and coreml["precision"] == "fp16"
    table = (out / "comparison.md").read_text()
    assert "coreml (interpreted)" in table or sys.platform == "darwin"
    assert "engine not built" in table or trt_ok
    page = (out / "index.html").read_text()
    pngs = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(pngs) == 2 and all(base64.b64decode(p).startswith(b"\x89PNG") for p in pngs)
    assert "x86-server" in page and "<table>" in page
