"""The gallery search (faiss and blocks), device latency files and the comparison table, on synthetic data."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from hetero.bench import _gallery, comparison_markdown, read_latency, top_k
from hetero.errors import UserError
from hetero.metrics import retrieval_metrics


def _embeddings(n: int, d: int = 16, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize("same", [True, False])
def test_faiss_and_block_search_agree_and_match_the_metrics(monkeypatch: pytest.MonkeyPatch, same: bool) -> None:
    pytest.importorskip("faiss", reason="faiss-cpu is the large-gallery search (pip install 'hetero[index]')")
    g = _embeddings(300)
    q = g if same else _embeddings(120, seed=1)
    blocks = top_k(q, g, 5, same_images=same)
    monkeypatch.setattr(_gallery, "FAISS_MIN_ITEMS", 100)
    assert _gallery.search_method(len(g)).startswith("faiss")
    found = top_k(q, g, 5, same_images=same)
    np.testing.assert_array_equal(found, blocks)
    if same:
        assert not (found == np.arange(len(q))[:, None]).any()  # a query never finds itself
    labels = np.arange(len(g)) % 7
    qlabels = labels if same else np.arange(len(q)) % 7
    ranked = retrieval_metrics(q, g, qlabels, labels, same_images=same)
    np.testing.assert_array_equal(found[:, 0], ranked.top1_index)
    # Best first: similarities along each row never increase.
    sims = np.take_along_axis(q @ g.T, found, axis=1)
    assert (np.diff(sims, axis=1) <= 1e-6).all()


def test_device_latency_file_forms(tmp_path) -> None:
    one = {"batch": 1, "repeats": 30, "p50": 2.0, "p95": 3.0, "mean": 2.2, "threads": 4}
    (tmp_path / "one.json").write_text(json.dumps(one))
    (tmp_path / "many.json").write_text(json.dumps([{**one, "batch": 8, "p50": 8.0}, one]))
    (tmp_path / "summary.json").write_text(json.dumps({"runtime": "tflite", "latency_ms": one}))
    assert read_latency(tmp_path / "one.json")[0]["measured_on"] == "device"
    assert read_latency(tmp_path / "summary.json")[0]["p50"] == 2.0
    many = read_latency(tmp_path / "many.json")
    assert [f["batch"] for f in many] == [1, 8] and many[1]["per_image_p50"] == 1.0
    (tmp_path / "bad.json").write_text(json.dumps({"p50": 1}))
    with pytest.raises(UserError, match="hetero.devices.run"):
        read_latency(tmp_path / "bad.json")


def test_comparison_table_lists_unrun_devices_with_their_reason() -> None:
    rows = [
        {"device": "x86-server", "backend": "onnx", "precision": "fp32", "cross_map_runtime": 0.5, "cos_min": 0.9999999,
         "p50_ms": 0.25, "artifact_bytes": 123456, "status": "ok"},
        {"device": "jetson", "backend": "tensorrt", "precision": "fp16", "artifact_bytes": 99,
         "status": "model.onnx written; engine not built: no CUDA | here"},
    ]
    table = comparison_markdown(rows)
    lines = table.splitlines()
    columns = [len(re.findall(r"(?<!\\)\|", line)) for line in lines[2:]]
    assert len(set(columns)) == 1  # the escaped '|' in a status keeps the columns
    assert "| 0.5000 |" in lines[4] and "0.250" in lines[4] and "123,456" in lines[4] and "0.9999999" in lines[4]
    assert "engine not built: no CUDA \\| here" in lines[5] and "n/a" in lines[5]
