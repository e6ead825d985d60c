"""The backend registry, argument checks, and TensorRT's ONNX."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from hetero.devices import ArtifactError
from hetero.devices.runtimes import get_runtime
from hetero.export import Backend, ExportError, get_backend, list_backends
from hetero.export.testing import TinyEmbedder, smooth_images

X = smooth_images(8, channels=1, size=16)
EXAMPLE = torch.from_numpy(X[:1])


def _skip_unless_available(name: str) -> Backend:
    backend = get_backend(name)
    ok, reason = backend.available()
    if not ok:
        pytest.skip(reason=reason)
    return backend


def test_registry() -> None:
    assert list_backends() == ["coreml", "onnx", "tensorrt", "tflite"]
    for name in list_backends():
        backend = get_backend(name)
        assert isinstance(backend, Backend) and backend.name == name
        ok, reason = backend.available()
        assert isinstance(ok, bool) and (ok or reason)
        assert "torch" in backend.versions()
    with pytest.raises(ExportError, match="unknown export backend 'openvino'"):
        get_backend("openvino")


@pytest.mark.parametrize(
    ("precision", "example", "calibration", "message"),
    [
        ("int4", EXAMPLE, None, "does not support precision 'int4'"),
        ("fp32", EXAMPLE[0], None, r"must be \[N, C, H, W\]"),
        ("int8", EXAMPLE, smooth_images(4, channels=3, size=16), "calibration images have shape"),
        ("int8", EXAMPLE, None, "needs calibration images"),
    ],
)
def test_bad_requests_raise_export_error(tmp_path: Path, precision, example, calibration,
                                         message: str) -> None:
    backend = _skip_unless_available("onnx")
    with pytest.raises(ExportError, match=message):
        backend.convert(TinyEmbedder(), example, tmp_path, precision, calibration)
    assert not list(tmp_path.glob("model.onnx"))


def test_unexportable_model_raises_export_error(tmp_path: Path) -> None:
    class DataDependent(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.flatten(1)[:, : int(x.sum().item() > 0) + 1]  # shape depends on values

    with pytest.raises(ExportError, match="could not export"):
        _skip_unless_available("onnx").convert(DataDependent(), EXAMPLE, tmp_path)


def test_convert_leaves_the_callers_model_alone(tmp_path: Path) -> None:
    model = TinyEmbedder().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    _skip_unless_available("onnx").convert(model, EXAMPLE, tmp_path)
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_tensorrt_produces_checked_onnx_and_says_why_no_engine(tmp_path: Path) -> None:
    backend = _skip_unless_available("tensorrt")
    calibration = smooth_images(32, channels=1, size=16, seed=1)
    artifact = backend.convert(TinyEmbedder(), EXAMPLE, tmp_path, "int8", calibration)
    notes = backend.notes(artifact)
    assert notes["onnx_check"]["tool"] == "polygraphy+onnxruntime"
    assert notes["onnx_check"]["cos_min"] >= 0.98
    runtime_ok, reason = get_runtime("tensorrt").available()
    if runtime_ok:
        assert artifact.name == "model.engine" and notes["engine"] == "built"
        out = backend.load(artifact).run(X)
        assert out.shape == (len(X), 16)
        return
    assert artifact.name == "model.onnx" and notes["engine"] == f"not built: {reason}"
    onnx = pytest.importorskip("onnx", reason="onnx is not installed")
    model = onnx.load(str(artifact))
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # dynamic batch
    ops = {n.op_type for n in model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    zero_points = [t for t in model.graph.initializer if t.name.endswith("zero_point")]
    assert zero_points and all(not np.any(onnx.numpy_helper.to_array(t)) for t in zero_points)
    with pytest.raises(ArtifactError, match="not available here"):
        backend.load(artifact)
