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


def _documented_report() -> dict:
    """The report.json example of docs/design.md (the contract users read)."""
    text = (ROOT / "docs" / "design.md").read_text()
    block = text.split("## report.json", 1)[1].split("```json", 1)[1].split("```", 1)[0]
    return json.loads(block)


def _missing_keys(documented: dict, actual: dict, prefix: str = "") -> list[str]:
    """Keys of ``documented`` (at every depth) that ``actual`` lacks."""
    missing = []
    for key, value in documented.items():
        if key not in actual:
            missing.append(prefix + key)
        elif isinstance(value, dict) and isinstance(actual[key], dict):
            missing += _missing_keys(value, actual[key], f"{prefix}{key}.")
    return missing
FAST = ["--threads", "1", "--warmup", "1", "--repeats", "3", "--quiet"]


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny cloud and edge model on digits, and the edge model exported for x86-server (ONNX fp32)."""
    from hetero.data import load_split
    from hetero.models import save_cloud, save_edge
    from hetero.pipeline import train_cloud, train_edge
    from hetero.search_spaces import get_space
    from hetero.stages import export_for_device
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
    """top-1 and mAP ranked independently, one query at a time, own image removed.

    The similarities are the metric's own (float64, one per distinct row: see GalleryRows), so the
    comparison is exact: it once compared numpy's float32 products with torch's, whose rounding
    ordered the near-ties of a weak model differently (a flaky 4 of 539 top-1 decisions). A tie
    with a non-matching item is no hit; AP is scikit-learn's, which groups tied scores.
    """
    from sklearn.metrics import average_precision_score

    from hetero.metrics import l2_normalize
    from hetero.metrics._retrieval import GalleryRows

    sims = GalleryRows(l2_normalize(g)).similarities(torch.from_numpy(l2_normalize(q)).double()).numpy()
    top1, aps = [], []
    for i in range(len(q)):
        others = np.delete(np.arange(len(g)), i)
        s, relevant = sims[i, others], labels[others] == labels[i]
        if not relevant.any():
            continue
        top1.append(relevant.all() or s[relevant].max() > s[~relevant].max())
        aps.append(average_precision_score(relevant, s))
    return float(np.mean(top1)), float(np.mean(aps))


def test_report_keeps_design_keys_and_adds_batch_latency(work: Path, direct: dict) -> None:
    assert _missing_keys(_documented_report(), direct) == []
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


def test_the_report_schema_is_documented_and_checked(direct: dict) -> None:
    """Every key of the Report TypedDict is named in docs/design.md; a real report passes; strays are refused."""
    from hetero.bench import Report, check_report

    section = (ROOT / "docs" / "design.md").read_text().split("## report.json", 1)[1].split("## manifest.json", 1)[0]
    keys = Report.__required_keys__ | Report.__optional_keys__
    assert sorted(k for k in keys if f'"{k}"' not in section and f"`{k}`" not in section) == []
    assert set(_documented_report()) <= keys
    assert check_report(direct) is direct
    with pytest.raises(ValueError, match=r"missing \['status'\], unknown \['stray'\]"):
        check_report({**{k: v for k, v in direct.items() if k != "status"}, "stray": 1})


def test_report_metrics_match_an_independent_numpy_recomputation(work: Path, direct: dict) -> None:
    out = work / "direct"
    files = {k: np.load(out / v) for k, v in direct["embeddings"].items()}
    labels, gallery = files["labels"], files["gallery_cloud"]
    for key, queries in (("cross_runtime", files["queries_runtime"]), ("cross_torch", files["queries_torch"]),
                         ("paragon", gallery)):
        top1, m = _numpy_metrics(queries, gallery, labels)
        assert direct["retrieval"][key]["top1"] == pytest.approx(top1, abs=1e-12), key
        assert direct["retrieval"][key]["map"] == pytest.approx(m, abs=1e-12), key
    top1, m = _numpy_metrics(files["queries_torch"], files["queries_torch"], labels)
    assert direct["retrieval"]["homogeneous_edge"]["map"] == pytest.approx(m, abs=1e-12)
    # The saved neighbours are the runtime's ranking: the first is its top-1 decision.
    neighbours = np.load(out / direct["neighbours"]["runtime"])
    assert neighbours.shape == (len(labels), 5)
    hit = labels[neighbours[:, 0]] == labels
    assert hit.mean() == pytest.approx(direct["retrieval"]["cross_runtime"]["top1"], abs=1e-9)


def test_runner_path_gives_the_direct_report(work: Path, direct: dict) -> None:
    inputs_dir = work / "inputs"
    assert main(["bench", "--artifact", str(work / "artifact"), "--data", "digits", "--export-inputs", str(inputs_dir), *FAST]) == 0
    record = json.loads((inputs_dir / "inputs.json").read_text())
    assert record["shape"][0] == 539 and "hetero.devices.run" in record["run_on_device"]
    assert "hetero.devices.run" in (inputs_dir / "README.md").read_text()
    emb, lat = work / "emb.npy", work / "latency.json"
    # The runner as on a device: a separate process that needs numpy and the runtime only.
    run = subprocess.run([sys.executable, "-m", "hetero.devices.run", str(work / "artifact"), "--inputs", str(inputs_dir / "queries.npy"),
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
    from hetero.models import load_cloud, load_edge, save_cloud, save_edge
    from hetero.stages import export_for_device

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
    from hetero.devices.runtimes import get_runtime

    out = work / "devices"
    devices = "x86-server,jetson-orin-nano,iphone-15"
    argv = ["bench", "--device", devices, "--model", str(work / "edge"), "--cloud", str(work / "cloud"), "--data", "digits",
            "--out", str(out), "--gallery", str(work / "gallery"), "--warmup", "0", "--repeats", "2", "--quiet"]
    assert main(argv) == 0
    rows = {r["device"]: r for r in json.loads((out / "comparison.json").read_text())}
    assert list(rows) == devices.split(",")
    onnx = rows["x86-server"]
    # The artifact exported here equals the module's: the same cross mAP as the direct bench, and
    # its row is ok exactly when that report passes its gate (the 1-epoch model may not be compatible).
    assert onnx["cross_map_runtime"] == pytest.approx(direct["retrieval"]["cross_runtime"]["map"], abs=1e-6)
    passes = direct["compatible"] and direct["parity_passed"] and direct.get("status", "ok") == "ok"
    assert (onnx["status"] == "ok") == passes
    # --strict: one row not ok (a model not compatible, or an engine not built here) fails the gate.
    if any(r["status"] != "ok" for r in rows.values()):
        assert main([*argv, "--strict"]) == 3
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


def test_device_embeddings_get_a_parity_verdict(work: Path, direct: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Embeddings brought back from a device with one zero row: the report must say parity MISSED
    # (cos min 0 against the export's threshold), not only print cos min 0.000000 beside "compatible".
    queries = np.load(work / "direct" / "queries_runtime.npy").copy()
    queries[7] = 0.0
    np.save(tmp_path / "zero.npy", queries)
    argv = ["bench", "--artifact", str(work / "artifact"), "--data", "digits", "--gallery", str(work / "gallery"),
            "--embeddings", str(tmp_path / "zero.npy"), "--out", str(tmp_path / "zero"), *FAST]
    assert main(argv) == 0
    report = json.loads((tmp_path / "zero" / "report.json").read_text())
    assert report["parity"]["cos_min"] == 0.0 and report["parity_passed"] is False
    assert report["parity_thresholds"] == {"cos_min": 0.99999} and "cos_min 0.000000 < 0.99999" in report["parity_failures"][0]
    assert "parity MISSED" in capsys.readouterr().out
    assert main([*argv, "--strict"]) == 3
    assert "parity below thresholds (cos_min 0.000000 < 0.99999)" in capsys.readouterr().err
    assert direct["parity_passed"] is True and direct["parity_failures"] == []  # the runtime's own embeddings pass
    queries[7] = np.nan
    np.save(tmp_path / "nan.npy", queries)
    _one_line_exit_2(["bench", "--artifact", str(work / "artifact"), "--data", "digits", "--gallery", str(work / "gallery"),
                      "--embeddings", str(tmp_path / "nan.npy"), "--out", str(tmp_path / "nan"), *FAST], capsys, "NaN or infinite")


def test_a_changed_edge_pt_in_the_artifact_is_refused(work: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import shutil

    manifest = json.loads((work / "artifact" / "manifest.json").read_text())
    assert manifest["source_model"]["sha256"] == __import__("hetero.devices", fromlist=["sha256_file"]).sha256_file(work / "artifact" / "edge.pt")
    shutil.copytree(work / "artifact", tmp_path / "art")
    edge = tmp_path / "art" / "edge.pt"
    data = bytearray(edge.read_bytes())
    data[len(data) // 2] ^= 1  # one bit: torch may still load it, the sha256 does not match
    edge.write_bytes(bytes(data))
    _one_line_exit_2(["bench", "--artifact", str(tmp_path / "art"), "--data", "digits", "--gallery", str(work / "gallery"),
                      "--out", str(tmp_path / "b"), *FAST], capsys, "edge.pt is corrupt: sha256 mismatch")
    assert not (tmp_path / "b").exists()


def test_json_prints_one_object_with_the_report_figures(work: Path, direct: dict, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["bench", "--artifact", str(work / "artifact"), "--data", "digits", "--gallery", str(work / "gallery"),
                 "--out", str(tmp_path / "j"), "--json", *FAST]) == 0
    captured = capsys.readouterr()
    figures = json.loads(captured.out)  # stdout is the JSON object alone
    assert captured.out.count("\n") == 1 and "cross, runtime" in captured.err  # the table went to stderr
    assert figures["retrieval"] == direct["retrieval"] and figures["compatible"] == direct["compatible"]
    assert figures["report"] == str(tmp_path / "j" / "report.json")


def test_faiss_search_ranks_ties_as_the_blocks_do(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("faiss", reason="faiss is optional (hetero[index])")
    from hetero.bench import _gallery
    from hetero.metrics import retrieval_metrics

    rng = np.random.default_rng(1)
    items = rng.normal(size=(30, 8)).astype(np.float32)[rng.integers(0, 30, 1500)]  # many exact duplicates
    items[:400] = rng.normal(size=(400, 8))
    labels = rng.integers(0, 7, 1500)
    blocks = [_gallery.top_k(items, items, 5, True, labels, labels), _gallery.top_k(items, items, 5, True)]
    monkeypatch.setattr(_gallery, "FAISS_MIN_ITEMS", 100)
    assert _gallery.search_method(1500).startswith("faiss")
    assert np.array_equal(_gallery.top_k(items, items, 5, True, labels, labels), blocks[0])
    assert np.array_equal(_gallery.top_k(items, items, 5, True), blocks[1])
    # With labels the first neighbour is the metric's top-1 decision, ties resolved against the query.
    assert np.array_equal(blocks[0][:, 0], retrieval_metrics(items, items, labels, labels, same_images=True).top1_index)


def test_json_and_strict_on_train_and_update_check(work: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from hetero.data import load_data
    from hetero.search_spaces import get_space, save_arch

    digits = load_data("digits")
    np.savez(tmp_path / "small.npz", images=digits.images[:200], labels=digits.labels[:200])
    save_arch(get_space("mobilenet_v3").smallest_arch(), tmp_path / "arch.json")
    capsys.readouterr()
    code = main(["train", "--cloud", str(work / "cloud"), "--data", f"npz:{tmp_path / 'small.npz'}", "--arch", str(tmp_path / "arch.json"),
                 "--epochs", "1", "--out", str(tmp_path / "edge"), "--json", "--strict", "--quiet"])
    captured = capsys.readouterr()
    figures = json.loads(captured.out)  # one object, nothing else on stdout
    assert {"paragon", "homogeneous_edge", "cross_torch", "compatible", "gap_closed"} <= set(figures)
    assert figures["model"] == str(tmp_path / "edge" / "edge.pt") and "search" in captured.err  # the table went to stderr
    failed = figures["compatible"] is False or figures.get("collapsed") is True or figures.get("status", "ok") != "ok"
    assert code == (3 if failed else 0) and ("quality gate failed (--strict)" in captured.err) == failed
    code = main(["update-check", "--old", str(work / "cloud"), "--new", str(work / "edge"), "--data", "digits",
                 "--out", str(tmp_path / "update"), "--json", "--strict", "--quiet"])
    report = json.loads(capsys.readouterr().out)
    assert report == {**json.loads((tmp_path / "update" / "report.json").read_text()), "report": f"{tmp_path / 'update'}/report.json"}
    assert code == (0 if report["compatible"] else 3)


def test_a_manifest_device_name_is_never_read_as_a_path(tmp_path: Path) -> None:
    from hetero.bench import device_settings

    planted = tmp_path / "planted.toml"
    planted.write_text('name = "planted"\nbackend = "onnx"\nprecision = "fp32"\nthreads = 7\n')
    assert device_settings({"device": str(planted)}) == (None, (1,))  # a manifest is a file: its name is no path
    assert device_settings({"device": "x86-server"})[0] is not None
