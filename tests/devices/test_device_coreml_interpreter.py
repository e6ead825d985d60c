"""hetero's numpy interpreter of Core ML ML Programs, on programs built op by op.

Each program is built with coremltools' MIL builder and saved without optimisation passes, so the
saved program holds exactly the op under test; the expected values come from torch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hetero.devices import ArtifactError
from hetero.devices.runtimes import get_runtime

ct = pytest.importorskip("coremltools", reason="coremltools is not installed")
torch = pytest.importorskip("torch", reason="the expected values are computed with torch")
F = torch.nn.functional
from coremltools.converters.mil import Builder as mb  # noqa: E402

RNG = np.random.default_rng(0)
X = RNG.normal(size=(2, 4, 9, 9)).astype(np.float32)


def _run(prog, tmp_path: Path, x: np.ndarray = X) -> np.ndarray:
    model = ct.convert(prog, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS16,
                       compute_precision=ct.precision.FLOAT32,
                       pass_pipeline=ct.PassPipeline.EMPTY)
    path = tmp_path / "p.mlpackage"
    model.save(str(path))
    runtime = get_runtime("coreml")
    runtime.interpreter = True  # the interpreter even on macOS: it is what is under test
    try:
        return runtime.load(path).run(x)
    finally:
        runtime.interpreter = False


def _program(body, shape=X.shape):
    return mb.program(input_specs=[mb.TensorSpec(shape=shape)], opset_version=ct.target.iOS16)(body)


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.asarray(a, dtype=np.float32))


CONVS = {
    "strided-same-bias": (dict(pad_type="same", strides=[2, 2]), (6, 4, 3, 3), 1),
    "depthwise-dilated-custom": (dict(pad_type="custom", pad=[1, 2, 0, 1], dilations=[2, 2]), (4, 1, 3, 3), 4),
    "grouped-valid": (dict(pad_type="valid"), (6, 2, 1, 1), 2),
    "same-lower-even-kernel": (dict(pad_type="same_lower"), (3, 4, 2, 2), 1),
}


@pytest.mark.parametrize("case", sorted(CONVS))
def test_conv_matches_torch(case: str, tmp_path: Path) -> None:
    kwargs, w_shape, groups = CONVS[case]
    w = RNG.normal(size=w_shape).astype(np.float32)
    b = RNG.normal(size=w_shape[0]).astype(np.float32)
    out = _run(_program(lambda x: mb.conv(x=x, weight=w, bias=b, groups=groups, **kwargs)), tmp_path)
    x = _t(X)
    if kwargs["pad_type"] == "custom":
        top, bottom, left, right = kwargs["pad"]
        x = F.pad(x, (left, right, top, bottom))
    elif kwargs["pad_type"] == "same":  # 9 -> 5 with stride 2, kernel 3: 1 each side
        x = F.pad(x, (1, 1, 1, 1))
    elif kwargs["pad_type"] == "same_lower":  # kernel 2: the extra row/column goes first
        x = F.pad(x, (1, 0, 1, 0))
    expected = F.conv2d(x, _t(w), _t(b), stride=kwargs.get("strides", 1),
                        dilation=kwargs.get("dilations", 1), groups=groups)
    np.testing.assert_allclose(out, expected.flatten(1).numpy(), rtol=1e-4, atol=1e-4)


def test_batch_norm_pool_and_layout_ops_match_torch(tmp_path: Path) -> None:
    mean, var, gamma, beta = (RNG.uniform(0.5, 1.5, size=4).astype(np.float32) for _ in range(4))
    w = RNG.normal(size=(3, 16)).astype(np.float32)

    def body(x):
        y = mb.batch_norm(x=x, mean=mean, variance=var, gamma=gamma, beta=beta, epsilon=1e-3)
        y = mb.avg_pool(x=y, kernel_sizes=[3, 3], strides=[2, 2], pad_type="custom", pad=[1, 1, 1, 1],
                        exclude_padding_from_average=True)  # 9x9 -> 5x5
        y = mb.slice_by_index(x=y, begin=[0, 0, 1, 1], end=[2, 4, 5, 5])  # -> 4x4
        y = mb.transpose(x=y, perm=[0, 2, 3, 1])
        y = mb.reshape(x=y, shape=[2, 0, -1, 1])  # [2, 4, 16, 1]; 0 copies the dimension
        y = mb.squeeze(x=y, axes=[3])
        y = mb.matmul(x=y, y=w, transpose_y=True)  # [2, 4, 3]
        y = mb.sigmoid_hard(x=y, alpha=0.3, beta=0.4)
        y = mb.expand_dims(x=y, axes=[1])
        y = mb.concat(values=[y, y], axis=1)  # [2, 2, 4, 3]
        y = mb.l2_norm(x=y, epsilon=1e-6)
        return mb.squeeze(x=mb.reduce_sum(x=y, axes=[1], keep_dims=True), axes=[1])

    out = _run(_program(body), tmp_path)
    x = F.batch_norm(_t(X), _t(mean), _t(var), _t(gamma), _t(beta), eps=1e-3)
    x = F.avg_pool2d(x, 3, 2, padding=1, count_include_pad=False)[:, :, 1:5, 1:5]
    x = x.permute(0, 2, 3, 1).reshape(2, 4, 16) @ _t(w).T
    x = torch.clamp(0.3 * x + 0.4, 0, 1).unsqueeze(1).repeat(1, 2, 1, 1)
    x = x / torch.sqrt((x * x).sum(dim=(1, 2, 3), keepdim=True) + 1e-6)
    np.testing.assert_allclose(out, x.sum(1).flatten(1).numpy(), rtol=1e-5, atol=1e-6)


def test_fp16_program_rounds_like_fp16(tmp_path: Path) -> None:
    x = np.full((1, 1, 2, 2), 1.0, np.float32) + np.float32(1e-4)  # not representable in fp16

    def body(x):
        half = mb.mul(x=mb.cast(x=x, dtype="fp16"), y=np.float16(3.0))
        return mb.cast(x=half, dtype="fp32")

    out = _run(_program(body, shape=x.shape), tmp_path, x)
    expected = (x.astype(np.float16) * np.float16(3.0)).astype(np.float32)
    np.testing.assert_array_equal(out, expected.reshape(1, -1))
    assert not np.allclose(out, (x * 3).reshape(1, -1), rtol=0, atol=1e-5)


def test_unknown_op_is_refused_not_skipped(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="Core ML op 'sin' is not supported by hetero's interpreter"):
        _run(_program(lambda x: mb.sin(x=mb.relu(x=x))), tmp_path)


def test_truncated_weights_are_refused(tmp_path: Path) -> None:
    w = RNG.normal(size=(8, 4, 3, 3)).astype(np.float32)  # large enough to live in weight.bin
    model = ct.convert(_program(lambda x: mb.conv(x=x, weight=w)), convert_to="mlprogram",
                       minimum_deployment_target=ct.target.iOS16,
                       compute_precision=ct.precision.FLOAT32, pass_pipeline=ct.PassPipeline.EMPTY)
    path = tmp_path / "p.mlpackage"
    model.save(str(path))
    (blob,) = path.rglob("weight.bin")
    blob.write_bytes(blob.read_bytes()[:200])
    with pytest.raises(ArtifactError, match="weight file .* is truncated"):
        get_runtime("coreml").load(path)


def test_malformed_package_is_refused(tmp_path: Path) -> None:
    package = tmp_path / "model.mlpackage"
    package.mkdir()
    (package / "Manifest.json").write_text("{}")
    with pytest.raises(ArtifactError, match="is corrupt"):
        get_runtime("coreml").load(package)
