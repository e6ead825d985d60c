"""The per-layer drift between an int8 artifact and its float artifact, and keeping layers float."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from hetero.devices import parity
from hetero.export import get_backend
from hetero.export._drift import first_divergence, layer_drift, most_sensitive
from hetero.export.testing import TinyEmbedder, smooth_images


def test_layer_drift_ranks_the_layer_that_adds_the_error() -> None:
    rng = np.random.default_rng(0)
    a, b, c = (rng.standard_normal((16, 8)) for _ in range(3))
    reference = {"a": ("Conv", a), "b": ("Conv", b), "c": ("Gemm", c)}
    quantized = {"a": ("Conv", a * 1.01), "b": ("Conv", b + 0.5 * rng.standard_normal(b.shape)),
                 "c": ("Gemm", c + 0.5 * rng.standard_normal(c.shape))}
    rows = layer_drift(reference, quantized)
    assert [r["layer"] for r in rows] == ["a", "b", "c"]
    assert rows[0]["cos_mean"] == pytest.approx(1.0) and rows[1]["cos_mean"] < 0.95
    assert first_divergence(rows)["layer"] == "b"
    assert most_sensitive(rows)[0] == "b"


def test_dead_maps_agree() -> None:
    zeros = np.zeros((4, 3))
    assert layer_drift({"a": ("Conv", zeros)}, {"a": ("Conv", zeros)})[0]["cos_min"] == 1.0


@pytest.fixture(scope="module")
def tiny():
    model = TinyEmbedder(in_channels=3, dim=32, width=16)
    calibration = smooth_images(48, channels=3, size=16, seed=1)
    queries = smooth_images(16, channels=3, size=16, seed=2)
    return model, calibration, queries


def _available(backend: str):
    b = get_backend(backend)
    if not b.available()[0]:
        pytest.skip(reason=b.available()[1])
    return b


@pytest.mark.parametrize("backend", ["onnx", "tflite"])
def test_int8_and_float_artifacts_name_their_layers_alike(tmp_path: Path, tiny, backend: str) -> None:
    b = _available(backend)
    model, calibration, queries = tiny
    example = torch.from_numpy(queries[:1])
    ref = b.layer_outputs(b.convert(model, example, tmp_path / "f", "fp32"), queries)
    got = b.layer_outputs(b.convert(model, example, tmp_path / "q", "int8", calibration), queries)
    assert len(ref) >= 3 and list(ref) == list(got)
    rows = layer_drift(ref, got)
    assert len(rows) == len(ref) and all(0.9 < r["cos_mean"] <= 1.0 + 1e-6 for r in rows)
    assert {op for op, _ in ref.values()} & {"Conv", "CONV_2D"}


@pytest.mark.parametrize("backend", ["onnx", "tflite"])
def test_layers_kept_float_leave_int8(tmp_path: Path, tiny, backend: str) -> None:
    """Every layer kept float: no integer convolution is left and the artifact matches torch; with
    ``int8_weights`` their weights are still stored in int8 (weight-only), so the file shrinks."""
    b = _available(backend)
    model, calibration, queries = tiny
    example = torch.from_numpy(queries[:1])
    float_artifact = b.convert(model, example, tmp_path / "f", "fp32")
    layers = list(b.layer_outputs(float_artifact, queries[:2]))
    with torch.no_grad():
        reference = model.eval()(torch.from_numpy(queries)).numpy()
    artifact = b.convert(model, example, tmp_path / "k", "int8", calibration, keep_float=layers)
    weight_only = b.quantize_float_artifact(float_artifact, tmp_path / "w", calibration, keep_float=layers,
                                            int8_weights=layers)
    for kept in (artifact, weight_only):
        notes = b.notes(kept)
        assert "Conv" not in notes.get("int8_ops", "") and "CONV" not in notes.get("int8_ops", "")
        assert parity(reference, b.load(kept, threads=1).run(queries))["cos_min"] >= 0.999
    # This tiny model's file is mostly graph structure, so the saving shows as a fraction of it.
    assert weight_only.stat().st_size < 0.85 * float_artifact.stat().st_size <= artifact.stat().st_size
    counts = b.layer_weight_counts(float_artifact)
    assert set(counts) == set(layers) and all(n > 0 for n in counts.values())
    if backend == "onnx":
        import onnx

        graph = onnx.load(str(weight_only)).graph
        inits = {t.name: t.data_type for t in graph.initializer}
        producer = {out: n for n in graph.node for out in n.output}
        weights = [producer.get(n.input[1]) for n in graph.node if n.op_type == "Conv"]
        assert weights and all(w is not None and w.op_type == "DequantizeLinear" for w in weights)
        assert all(inits[w.input[0]] == onnx.TensorProto.INT8 for w in weights)


def test_keep_float_is_refused_where_it_cannot_apply(tmp_path: Path, tiny) -> None:
    from hetero.export import ExportError

    model, _, queries = tiny
    with pytest.raises(ExportError, match="cannot keep chosen layers in float"):
        get_backend("onnx").convert(model, torch.from_numpy(queries[:1]), tmp_path, "fp32", keep_float=["x"])


@pytest.mark.parametrize("backend", ["onnx", "tflite"])
def test_quantizing_the_float_artifact_equals_converting_to_int8(tmp_path: Path, tiny, backend: str) -> None:
    b = _available(backend)
    model, calibration, queries = tiny
    example = torch.from_numpy(queries[:1])
    float_artifact = b.convert(model, example, tmp_path / "f", "fp32")
    layers = list(b.layer_outputs(float_artifact, queries[:2]))
    for keep in ((), tuple(layers[:1])):
        converted = b.convert(model, example, tmp_path / "c", "int8", calibration, keep_float=keep)
        requantized = b.quantize_float_artifact(float_artifact, tmp_path / "r", calibration, keep_float=keep)
        assert np.array_equal(b.load(converted, threads=1).run(queries), b.load(requantized, threads=1).run(queries))
    assert b.layer_outputs(float_artifact, queries[:2]).keys() == set(layers)  # the float artifact is untouched


def test_onnx_requantization_calibrates_each_float_model_once(tmp_path: Path, tiny, monkeypatch) -> None:
    """The fallback re-quantizes one float model many times: onnxruntime calibrates it once (the
    ranges are cached per model and images), and a cached quantization equals a fresh one."""
    import importlib
    import inspect

    from onnxruntime import quantization

    from hetero.export import _onnx_precision

    # The package's `quantize` attribute is a function that shadows its module of that name.
    ort_quantize = importlib.import_module("onnxruntime.quantization.quantize")

    if "calibration_cache_path" not in inspect.signature(quantization.quantize_static).parameters:
        pytest.skip(reason="this onnxruntime has no calibration_cache_path (it calibrates every time)")
    b = _available("onnx")
    model, calibration, queries = tiny
    float_artifact = b.convert(model, torch.from_numpy(queries[:1]), tmp_path / "f", "fp32")
    layers = list(b.layer_outputs(float_artifact, queries[:2]))
    monkeypatch.setattr(_onnx_precision, "_RANGES_DIR", None)  # nothing cached by earlier tests
    calibrators = []
    real = ort_quantize.create_calibrator
    monkeypatch.setattr(ort_quantize, "create_calibrator", lambda *a, **k: calibrators.append(1) or real(*a, **k))
    cached = [b.quantize_float_artifact(float_artifact, tmp_path / f"c{i}", calibration, keep_float=keep)
              for i, keep in enumerate(((), tuple(layers[:1]), ()))]
    assert len(calibrators) == 1
    b.quantize_float_artifact(float_artifact, tmp_path / "other", calibration[:24])  # other images: calibrated
    assert len(calibrators) == 2
    monkeypatch.setattr(_onnx_precision, "_ranges_cache", lambda *a: {})
    fresh = b.quantize_float_artifact(float_artifact, tmp_path / "fresh", calibration, keep_float=tuple(layers[:1]))
    assert len(calibrators) == 3
    run = lambda path: b.load(path, threads=1).run(queries)  # noqa: E731
    assert np.array_equal(run(cached[1]), run(fresh)) and np.array_equal(run(cached[0]), run(cached[2]))


def test_each_layer_quantized_alone_ranks_the_one_that_costs_most(tmp_path: Path, tiny) -> None:
    """One row per layer, in graph order; the ranking starts with the layer whose worst image lost most."""
    from hetero.export._sensitivity import layer_sensitivity, most_sensitive_alone

    b = _available("onnx")
    model, calibration, queries = tiny
    model = model.eval()
    example = torch.from_numpy(queries[:1])
    float_artifact = b.convert(model, example, tmp_path / "f", "fp32")
    layers = list(b.layer_outputs(float_artifact, queries[:2]))
    with torch.no_grad():
        reference = model(torch.from_numpy(queries)).numpy()
    rows = layer_sensitivity(b, float_artifact, layers, calibration, queries, reference, tmp_path / "s")
    assert [r["layer"] for r in rows] == layers and all(-1 <= r["cos_min"] <= r["cos_mean"] <= 1 + 1e-6 for r in rows)
    order = most_sensitive_alone(rows)
    assert sorted(order) == sorted(layers)
    assert rows[layers.index(order[0])]["cos_min"] == min(r["cos_min"] for r in rows)
