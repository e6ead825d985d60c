"""``python -m hetero.devices.run`` end to end, in a subprocess, on artifacts exported by ``export``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hetero.devices import parity
from hetero.devices.manifest import artifact_entry, write_manifest

torch = pytest.importorskip("torch", reason="artifacts are exported from torch models")
from hetero.export import get_backend  # noqa: E402
from hetero.export.testing import TinyEmbedder, smooth_images  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
X = smooth_images(12, channels=1, size=16, seed=3)
FINGERPRINT = "sha256:0123"


def _cli(*args: str | Path, code: str | None = None) -> subprocess.CompletedProcess[str]:
    argv = [str(a) for a in args]
    if code is None:
        command = [sys.executable, "-m", "hetero.devices.run", *argv]
    else:
        command = [sys.executable, "-c", code, *argv]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)


def _export(backend: str, out: Path) -> Path:
    ok, reason = get_backend(backend).available()
    if not ok:
        pytest.skip(reason=reason)
    artifact = get_backend(backend).convert(TinyEmbedder(), torch.from_numpy(X[:1]), out)
    write_manifest(out, {"format": backend, "precision": "fp32", "cloud_fingerprint": FINGERPRINT,
                         **artifact_entry(artifact)})
    np.save(out / "queries.npy", X)
    return out


@pytest.fixture(scope="module")
def onnx_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _export("onnx", tmp_path_factory.mktemp("onnx"))


def _reference() -> np.ndarray:
    with torch.no_grad():
        return TinyEmbedder()(torch.from_numpy(X)).numpy()


def test_embeds_saves_and_times(onnx_dir: Path, tmp_path: Path) -> None:
    out, latency = tmp_path / "emb.npy", tmp_path / "latency.json"
    result = _cli(onnx_dir, "--inputs", onnx_dir / "queries.npy", "--out", out, "--threads", "1",
                  "--warmup", "1", "--repeats", "4", "--latency-out", latency,
                  "--cloud-fingerprint", FINGERPRINT)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["runtime"] == "onnx" and summary["queries"] == len(X)
    assert parity(_reference(), np.load(out))["cos_min"] >= 0.99999
    figures = json.loads(latency.read_text())
    assert figures == summary["latency_ms"]
    assert figures["batch"] == 1 and figures["repeats"] == 4 and figures["threads"] == 1
    assert 0 < figures["p50"] <= figures["p95"]


def test_times_larger_batches_as_a_list(onnx_dir: Path, tmp_path: Path) -> None:
    latency = tmp_path / "latency.json"
    result = _cli(onnx_dir, "--inputs", onnx_dir / "queries.npy", "--threads", "1", "--warmup", "1",
                  "--repeats", "3", "--batch", "16", "4", "--latency-out", latency)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    figures = json.loads(latency.read_text())
    # Batch 1 first; 16 is more than the 12 inputs, which are repeated to fill it.
    assert [f["batch"] for f in figures] == [1, 4, 16]
    assert all(f["threads"] == 1 and f["repeats"] == 3 and 0 < f["p50"] <= f["p95"] for f in figures)
    assert summary["latency_ms"] == figures[0] and summary["latency_ms_batches"] == figures
    bench = pytest.importorskip("hetero.bench", reason="hetero is not installed (a device needs only devices)")
    assert [f["batch"] for f in bench.read_latency(latency)] == [1, 4, 16]


def _one_line_error(result: subprocess.CompletedProcess[str], fragment: str) -> None:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stderr.count("\n") == 1 and fragment in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_refuses_a_corrupted_artifact(onnx_dir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    data = bytearray((onnx_dir / "model.onnx").read_bytes())
    data[len(data) // 2] ^= 0x01
    (broken / "model.onnx").write_bytes(bytes(data))
    (broken / "manifest.json").write_bytes((onnx_dir / "manifest.json").read_bytes())
    _one_line_error(_cli(broken, "--inputs", onnx_dir / "queries.npy"), "sha256 mismatch")


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--cloud-fingerprint", "sha256:ffff"], "not comparable"),
        (["--threads", "0"], "--threads must be at least 1"),
        (["--batch", "8", "0"], "--batch sizes must be at least 1"),
    ],
)
def test_user_errors_exit_2(onnx_dir: Path, extra: list[str], fragment: str) -> None:
    _one_line_error(_cli(onnx_dir, "--inputs", onnx_dir / "queries.npy", *extra), fragment)


def test_bad_inputs_exit_2(onnx_dir: Path, tmp_path: Path) -> None:
    _one_line_error(_cli(onnx_dir, "--inputs", tmp_path / "none.npy"), "cannot read inputs")
    np.save(tmp_path / "flat.npy", X.reshape(len(X), -1))
    _one_line_error(_cli(onnx_dir, "--inputs", tmp_path / "flat.npy"), "must be float images")
    np.save(tmp_path / "rgb.npy", np.repeat(X, 3, axis=1))
    _one_line_error(_cli(onnx_dir, "--inputs", tmp_path / "rgb.npy"), "expects [N, 1, 16, 16]")


def test_coreml_runs_without_torch(tmp_path: Path) -> None:
    directory = _export("coreml", tmp_path / "coreml")
    out = tmp_path / "emb.npy"
    code = ("import sys; from hetero.devices.run import main\n"
            "rc = main(sys.argv[1:])\n"
            "assert 'torch' not in sys.modules and 'coremltools' not in sys.modules\n"
            "sys.exit(rc)\n")
    result = _cli(directory, "--inputs", directory / "queries.npy", "--out", out, "--repeats", "2",
                  code=code)
    assert result.returncode == 0, result.stderr
    assert parity(_reference(), np.load(out))["cos_min"] >= 0.99999


@pytest.mark.skipif(sys.platform == "darwin", reason="on macOS Core ML itself runs the program")
def test_coreml_program_with_an_unknown_op_is_refused(tmp_path: Path) -> None:
    ct = pytest.importorskip("coremltools", reason="coremltools is not installed")
    from coremltools.converters.mil import Builder as mb

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 1, 16, 16))], opset_version=ct.target.iOS16)
    def prog(x):
        return mb.erf(x=x)

    package = tmp_path / "model.mlpackage"
    ct.convert(prog, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS16).save(str(package))
    write_manifest(tmp_path, {"format": "coreml", **artifact_entry(package)})
    np.save(tmp_path / "q.npy", X[:1])
    _one_line_error(_cli(tmp_path, "--inputs", tmp_path / "q.npy"),
                    "Core ML op 'erf' is not supported by hetero's interpreter")
