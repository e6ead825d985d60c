"""The spine end to end through the CLI on tiny settings: cloud train -> train -> export -> bench,
then the error paths a user meets (each one line on stderr, exit code 2)."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from hetero.cli import main

FAST = ["--epochs", "1", "--quiet"]


@pytest.fixture(scope="module")
def run(tmp_path_factory, digits_models):
    """The shared cloud and edge models (copied: this module's folder is its own) exported and benchmarked."""
    root = tmp_path_factory.mktemp("spine")
    for name in ("cloud", "edge"):
        shutil.copytree(digits_models / name, root / name)
    shutil.copy(digits_models / "cloud_arch.json", root / "cloud_arch.json")
    assert main(["export", "--model", str(root / "edge"), "--device", "x86-server", "--out", str(root / "onnx"), "--cloud", str(root / "cloud"), "--quiet"]) == 0
    assert main(["bench", "--artifact", str(root / "onnx"), "--cloud", str(root / "cloud"), "--data", "digits", "--out", str(root / "bench"), "--quiet"]) == 0
    return root


@pytest.fixture(scope="module")
def resnet_edge(run, tmp_path_factory):
    """An edge model of the smallest resnet (14 layers, a third of the smallest mobilenet_v3's), 1 epoch against the run's cloud.

    For the int8 export tests, which convert and quantize it several times (per layer in the fallback):
    what they test does not depend on the architecture, and converting it takes half the time.
    """
    from hetero.search_spaces import get_space, save_arch

    root = tmp_path_factory.mktemp("resnet-edge")
    save_arch(get_space("resnet").smallest_arch(), root / "arch.json")
    assert main(["train", "--cloud", str(run / "cloud"), "--data", "digits", "--arch", str(root / "arch.json"), "--out", str(root / "edge"),
                 *FAST]) == 0
    return root / "edge"


def _independent_top1_map(q, g, labels):
    """top-1 and mAP ranked independently (scikit-learn's AP; a tie with a wrong item is no hit).

    The similarities are the metric's own (float64, one per distinct row): recomputing them with
    numpy's float32 product made this test flaky (4 of 539 top-1 decisions on a loaded machine),
    because the 1-epoch edge model is nearly collapsed and its near-tied similarities were ordered
    by each library's rounding, not by the embeddings.
    """
    import torch
    from sklearn.metrics import average_precision_score

    from hetero.metrics import l2_normalize
    from hetero.metrics._retrieval import GalleryRows

    sims = GalleryRows(l2_normalize(g)).similarities(torch.from_numpy(l2_normalize(q)).double()).numpy()
    top1, aps = [], []
    for i in range(len(q)):
        others = np.arange(len(g)) != i
        s, rel = sims[i, others], labels[others] == labels[i]
        top1.append(rel.all() or s[rel].max() > s[~rel].max())
        aps.append(average_precision_score(rel, s))
    return float(np.mean(top1)), float(np.mean(aps))


def test_report_schema_and_recomputed_metrics(run):
    report = json.loads((run / "bench" / "report.json").read_text())
    for key in ("device", "backend", "precision", "data", "cloud", "edge", "retrieval", "gap_closed", "compatible", "parity", "latency_ms", "embeddings"):
        assert key in report
    assert set(report["retrieval"]) >= {"paragon", "homogeneous_edge", "cross_torch", "cross_runtime"}
    assert report["backend"] == "onnx" and report["parity"]["cos_min"] >= 0.99999
    emb = {k: np.load(run / "bench" / v) for k, v in report["embeddings"].items()}
    for pairing, q, g in (
        ("cross_runtime", emb["queries_runtime"], emb["gallery_cloud"]),
        ("homogeneous_edge", emb["queries_torch"], emb["queries_torch"]),
        ("paragon", emb["gallery_cloud"], emb["gallery_cloud"]),
    ):
        top1, mean_ap = _independent_top1_map(q, g, emb["labels"])
        assert report["retrieval"][pairing]["top1"] == pytest.approx(top1, abs=1e-6)
        assert report["retrieval"][pairing]["map"] == pytest.approx(mean_ap, abs=1e-6)
    manifest = json.loads((run / "onnx" / "manifest.json").read_text())
    assert manifest["cloud_fingerprint"] == report["cloud"]["fingerprint"]
    assert manifest["parity_passed"] is True and manifest["embedding_dim"] == 32


def _fails_with_one_line(argv, capsys, match):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and match in err, err


def test_truncated_cloud_model(run, tmp_path, capsys):
    data = (run / "cloud" / "cloud.pt").read_bytes()
    (tmp_path / "cloud.pt").write_bytes(data[: len(data) // 2])
    _fails_with_one_line(["train", "--cloud", str(tmp_path), "--data", "digits", "--out", str(tmp_path / "e"), *FAST], capsys, "corrupt or truncated")


def test_truncated_onnx(run, tmp_path, capsys):
    shutil.copytree(run / "onnx", tmp_path / "onnx")
    model = tmp_path / "onnx" / "model.onnx"
    model.write_bytes(model.read_bytes()[:1000])
    _fails_with_one_line(["bench", "--artifact", str(tmp_path / "onnx"), "--cloud", str(run / "cloud"), "--data", "digits", "--out", str(tmp_path / "b")], capsys, "corrupt")


def test_wrong_data_path(run, tmp_path, capsys):
    _fails_with_one_line(["train", "--cloud", str(run / "cloud"), "--data", f"npz:{tmp_path / 'nope.npz'}", "--out", str(tmp_path / "e"), *FAST], capsys, "does not exist")


def test_gallery_of_another_cloud_model(run, tmp_path, capsys):
    assert main(["cloud", "train", "--data", "digits", "--out", str(tmp_path / "other"), "--arch", str(run / "cloud_arch.json"), "--embed-dim", "32", "--seed", "7", *FAST]) == 0
    _fails_with_one_line(["bench", "--artifact", str(run / "onnx"), "--cloud", str(tmp_path / "other"), "--data", "digits", "--out", str(tmp_path / "b")], capsys, "not comparable")


def test_console_script_exit_code(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "hetero", "train", "--cloud", str(tmp_path / "none"), "--data", "digits", "--out", str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "does not exist" in proc.stderr


def _profile(tmp_path, backend: str, quantization: str):
    path = tmp_path / f"{backend}-{quantization}.toml"
    path.write_text(f'name = "board"\nbackend = "{backend}"\nprecision = "int8"\nquantization = "{quantization}"\n')
    return str(path)


def test_dynamic_int8_profile_exports_a_dynamic_range_tflite(resnet_edge, tmp_path):
    pytest.importorskip("litert_torch", reason="litert-torch is not installed: pip install -e '.[tflite]'")
    out = tmp_path / "dyn"
    assert main(["export", "--model", str(resnet_edge), "--device", _profile(tmp_path, "tflite", "dynamic"), "--out", str(out),
                 "--allow-drift", "--quiet"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["quantization"] == "dynamic" and manifest["notes"]["quantization"].startswith("dynamic range")
    assert manifest["parity"]["cos_min"] > 0.9


def test_dynamic_int8_on_a_backend_without_it_is_refused(run, tmp_path, capsys):
    _fails_with_one_line(["export", "--model", str(run / "edge"), "--device", _profile(tmp_path, "onnx", "dynamic"),
                          "--out", str(tmp_path / "x")], capsys, "does not implement")


def test_parity_is_judged_on_as_many_images_as_asked(run, tmp_path, capsys):
    """``--parity-images`` sizes the parity set (whole classes); fewer than 2 is refused in one line."""
    out = tmp_path / "p60"
    assert main(["export", "--model", str(run / "edge"), "--device", "x86-server", "--parity-images", "60",
                 "--out", str(out), "--quiet"]) == 0
    parity_data = json.loads((out / "manifest.json").read_text())["parity_data"]
    assert 2 <= parity_data["images"] <= 60 and parity_data["classes"] >= 1
    _fails_with_one_line(["export", "--model", str(run / "edge"), "--device", "x86-server", "--parity-images", "1",
                          "--out", str(tmp_path / "p1")], capsys, "--parity-images 1: parity needs at least 2 images")


def test_int8_is_judged_on_the_top1_decision_not_the_image():
    """A first image swapped for another of its class passes int8 parity; another class, or drift, does not."""
    from hetero.devices import load_profile
    from hetero.exporting import parity_failures, parity_thresholds

    thresholds = parity_thresholds(load_profile("x86-server-int8"))
    assert thresholds == {"cos_min": 0.99, "top1_agreement": 0.98}
    swapped_within_class = {"cos_min": 0.995, "top1_agreement": 0.994, "top1_item_agreement": 0.81}
    assert parity_failures(swapped_within_class, thresholds) == []
    other_class = {**swapped_within_class, "top1_agreement": 0.97}
    assert parity_failures(other_class, thresholds) == ["top1_agreement 0.970000 < 0.98"]
    drifted = {**swapped_within_class, "cos_min": 0.95}
    assert parity_failures(drifted, thresholds) == ["cos_min 0.950000 < 0.99"]
    assert parity_failures({"cos_min": 0.995}, thresholds) == ["top1_agreement nan < 0.98"]  # unmeasured fails


def test_a_profile_sets_its_own_parity_thresholds(resnet_edge, tmp_path, capsys):
    """``[parity]`` in a profile adds to or replaces the precision's thresholds, and the manifest says so."""
    first = tmp_path / "defaults"
    assert main(["export", "--model", str(resnet_edge), "--device", _profile(tmp_path, "onnx", "static"), "--out", str(first),
                 "--allow-drift", "--no-fallback", "--quiet"]) == 0
    measured = json.loads((first / "manifest.json").read_text())
    assert measured["parity_thresholds"] == {"cos_min": 0.99, "top1_agreement": 0.98}
    assert measured["parity_thresholds_from"] == "int8 defaults"
    p = measured["parity"]
    assert measured["parity_passed"] == (p["cos_min"] >= 0.99 and p["top1_agreement"] >= 0.98)
    same_image = p["top1_item_agreement"]
    assert 0 < same_image < 1  # the tiny model's gallery is all near-ties: int8 changes some first images
    assert p["top1_agreement"] >= same_image  # the same image is of the same class
    lenient, strict = round(same_image / 2, 6), round(min(same_image + 0.01, 1.0), 6)
    decision = round(p["top1_agreement"] / 2, 6)
    cos_min = round(min(0.9, p["cos_min"] * 0.9), 6)

    def own(limit: float) -> str:
        path = tmp_path / f"own-{limit}.toml"
        path.write_text(f'name = "board"\nbackend = "onnx"\nprecision = "int8"\n\n[parity]\ncos_min = {cos_min}\n'
                        f'top1_agreement = {decision}\ntop1_item_agreement = {limit}\n')
        return str(path)

    passing = tmp_path / "own"
    assert main(["export", "--model", str(resnet_edge), "--device", own(lenient), "--out", str(passing), "--quiet"]) == 0
    manifest = json.loads((passing / "manifest.json").read_text())
    assert manifest["parity_passed"] and not manifest["allow_drift"]
    assert manifest["parity_thresholds"] == {"cos_min": cos_min, "top1_agreement": decision, "top1_item_agreement": lenient}
    assert manifest["parity_thresholds_from"].startswith("device profile [parity] (cos_min, top1_agreement, top1_item_agreement)")
    # A profile that needs the same first image refuses the all-int8 artifact ...
    _fails_with_one_line(["export", "--model", str(resnet_edge), "--device", own(strict), "--no-fallback",
                          "--out", str(tmp_path / "strict")], capsys, "misses its parity thresholds (top1_item_agreement")
    # ... and, by default, keeps its most sensitive layers in float until it passes, naming them.
    assert main(["export", "--model", str(resnet_edge), "--device", own(strict), "--out", str(tmp_path / "fallback"), "--quiet"]) == 0
    manifest = json.loads((tmp_path / "fallback" / "manifest.json").read_text())
    fallback, drift = manifest["int8_fallback"], manifest["int8_drift"]
    assert manifest["parity_passed"] and manifest["status"] == "ok" and manifest["parity"]["top1_item_agreement"] >= strict
    assert 1 <= len(fallback["kept_float"]) <= fallback["layers"] == len(drift["layers"])
    # (No order between the sizes: on a model this small, a float layer's weights take fewer bytes than
    # its int8 weights with their per-channel scales, zero points and Q/DQ nodes.)
    assert fallback["bytes"] > 0 and fallback["int8_bytes"] > 0 and fallback["latency_ratio_b32"] > 0
    assert len(fallback["kept_float"]) in [row["kept_float"] for row in fallback["tried"]]
    assert fallback["tried"][0]["kept_float"] == 0  # the all-int8 artifact's figures come first
    # Of the kept layers, those whose weights could stay int8 (weight-only) and those that could not.
    assert sorted(fallback["int8_weights"] + fallback["float_weights"]) == sorted(fallback["kept_float"])
    assert any("int8_weights" in row for row in fallback["tried"]) and fallback["float_bytes"] > 0
    assert fallback["tried"][0]["cos_min"] == pytest.approx(p["cos_min"], abs=2e-6)  # the same all-int8 export as above
    assert all(-1.0 <= row["cos_mean"] <= 1.0 + 1e-6 for row in drift["layers"])
