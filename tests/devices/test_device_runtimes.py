"""Runtimes: registry, batching, latency, refusal of corrupt artifacts, and no torch on devices."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hetero.devices import ArtifactError, RuntimeUnavailableError, parity
from hetero.devices.runtimes import Runner, get_runtime, list_runtimes, measure_latency

ROOT = Path(__file__).resolve().parents[2]


class _Doubler(Runner):
    """Embeds an image as 2 * its pixel sum, recording the batches it was given."""

    def __init__(self, batch_size: int | None = None, max_batch: int | None = None) -> None:
        self.batch_size, self.max_batch = batch_size, max_batch
        self.input_shape = (1, 2, 2)
        self.seen: list[int] = []

    def _run_batch(self, x: np.ndarray) -> np.ndarray:
        self.seen.append(len(x))
        return 2 * x.sum(axis=(1, 2, 3))[:, None]


def _images(n: int) -> np.ndarray:
    return np.arange(n * 4, dtype=np.float32).reshape(n, 1, 2, 2)


def test_registry_has_every_backend_and_refuses_unknown_names() -> None:
    assert list_runtimes() == ["coreml", "onnx", "tensorrt", "tflite"]
    with pytest.raises(ArtifactError, match="unknown runtime 'openvino'"):
        get_runtime("openvino")


def test_dynamic_batch_runner_runs_everything_at_once() -> None:
    runner = _Doubler()
    out = runner.run(_images(5))
    assert out.dtype == np.float32 and out.shape == (5, 1) and runner.seen == [5]
    np.testing.assert_array_equal(out[:, 0], 2 * _images(5).sum(axis=(1, 2, 3)))


def test_fixed_batch_runner_pads_the_last_chunk_and_drops_the_padding() -> None:
    runner = _Doubler(batch_size=4)
    out = runner.run(_images(6))
    assert runner.seen == [4, 4] and out.shape == (6, 1)
    np.testing.assert_array_equal(out[:, 0], 2 * _images(6).sum(axis=(1, 2, 3)))


def test_max_batch_runner_chunks_without_padding() -> None:
    runner = _Doubler(max_batch=2)
    assert runner.run(_images(5)).shape == (5, 1) and runner.seen == [2, 2, 1]


@pytest.mark.parametrize(("shape", "message"), [((2, 2, 2), r"\[N, C, H, W\]"),
                                                ((2, 3, 2, 2), "expects"), ((0, 1, 2, 2), "empty")])
def test_runner_refuses_wrong_inputs(shape: tuple[int, ...], message: str) -> None:
    with pytest.raises(ArtifactError, match=message):
        _Doubler().run(np.zeros(shape, np.float32))


def test_measure_latency_times_batch_one() -> None:
    runner = _Doubler()
    latency = measure_latency(runner, _images(3), warmup=2, repeats=5)
    assert runner.seen == [1] * 7
    assert latency["batch"] == 1 and latency["repeats"] == 5
    assert 0 <= latency["p50"] <= latency["p95"]
    with pytest.raises(ArtifactError):
        measure_latency(runner, _images(3), repeats=0)


def test_measure_latency_fills_a_batch_larger_than_the_inputs() -> None:
    runner = _Doubler()
    latency = measure_latency(runner, _images(3), warmup=1, repeats=2, batch=8)
    assert runner.seen == [8] * 3 and latency["batch"] == 8
    with pytest.raises(ArtifactError):
        measure_latency(runner, _images(3), batch=0)


def test_parity_figures() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(20, 8))
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    same = parity(a, a.astype(np.float32))
    assert same["cos_min"] > 0.999999 and same["max_abs"] < 1e-6
    flipped = parity(a, -a)
    assert flipped["cos_min"] == pytest.approx(-1.0) and flipped["max_abs"] > 0.1
    b = a.copy()
    b[3] = -b[3]  # one bad row sets the minimum, barely moves the mean
    figures = parity(a, 2 * b)  # scale does not matter to cosines
    assert figures["cos_min"] == pytest.approx(-1.0) and figures["cos_mean"] == pytest.approx(0.9)
    with pytest.raises(ValueError):
        parity(a, a[:3])


def test_missing_artifact_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="does not exist"):
        get_runtime("onnx").load(tmp_path / "model.onnx")


def test_truncated_onnx_fails_to_load_with_one_line(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")
    path = tmp_path / "model.onnx"
    path.write_bytes(b"\x08\x07\x12\x07pytorch" + b"\x00" * 3)
    with pytest.raises(ArtifactError, match="cannot be loaded by onnxruntime.*re-export it") as info:
        get_runtime("onnx").load(path)
    assert "\n" not in str(info.value)


def test_corrupt_tflite_fails_to_load(tmp_path: Path) -> None:
    ok, reason = get_runtime("tflite").available()
    if not ok:
        pytest.skip(reason=reason)
    path = tmp_path / "model.tflite"
    path.write_bytes(b"TFL3" + b"\x01" * 60)
    with pytest.raises(ArtifactError, match="cannot be loaded by"):
        get_runtime("tflite").load(path)


def test_tensorrt_is_unavailable_here_with_a_reason_or_runs() -> None:
    runtime = get_runtime("tensorrt")
    ok, reason = runtime.available()
    if ok:
        pytest.skip(reason="TensorRT and CUDA are available: covered by the export tests")
    assert reason and "\n" not in reason
    with pytest.raises(RuntimeUnavailableError, match="tensorrt runtime is not available here"):
        runtime.load(Path(__file__))


def test_devices_never_imports_torch() -> None:
    # `hetero` itself is a namespace package (no __init__ code): importing hetero.devices runs none
    # of the core library.
    code = ("import sys, hetero.devices, hetero.devices.run, hetero.devices.runtimes as r\n"
            "from hetero.devices.runtimes import _mil\n"
            "for name in r.list_runtimes(): r.get_runtime(name).available()\n"
            "bad = [m for m in sys.modules if m == 'torch' or m.startswith('hetero.') and not m.startswith('hetero.devices')]\n"
            "assert getattr(sys.modules['hetero'], '__file__', None) is None and not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
