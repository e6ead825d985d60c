"""Every space's default, smallest and largest architecture exports to ONNX with a dynamic batch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import hetero.search_spaces as ss

onnx = pytest.importorskip("onnx", reason="onnx is not installed: pip install -e '.[onnx]'")
ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed: pip install -e '.[onnx]'")

# The ONNX ops the layers may lower to (the Core ML interpreter and TensorRT support these).
ALLOWED_ONNX_OPS = {
    "Conv", "BatchNormalization", "Relu", "Add", "Mul", "Clip", "Div", "ReduceMean", "Gemm",
    "MatMul", "Pow", "ReduceSum", "Sqrt", "Max", "Reshape", "Flatten",
}


@pytest.mark.parametrize("which", ["default_arch", "smallest_arch", "largest_arch"])
@pytest.mark.parametrize("name", ["mobilenet_v3", "resnet"])
def test_onnx_export_matches_torch(name: str, which: str, tmp_path) -> None:
    space = ss.get_space(name)
    arch = getattr(space, which)()
    torch.manual_seed(0)
    model = space.build(arch, embed_dim=32, in_channels=3).eval()
    r = space.resolution(arch)
    path = tmp_path / "model.onnx"
    torch.onnx.export(
        model,
        (torch.randn(2, 3, r, r),),
        path,
        dynamo=True,
        external_data=False,
        dynamic_shapes={"x": {0: torch.export.Dim("batch", min=1, max=1024)}},
        verbose=False,
    )
    graph = onnx.load(path).graph
    ops = {node.op_type for node in graph.node}
    assert ops <= ALLOWED_ONNX_OPS, ops - ALLOWED_ONNX_OPS
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for batch in (1, 5):
        x = torch.randn(batch, 3, r, r)
        (got,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
        with torch.no_grad():
            want = model(x).numpy()
        assert got.shape == (batch, 32)
        cos = (got * want).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(want, axis=1)
        assert cos.min() > 0.99999
