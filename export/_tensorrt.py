"""TensorRT: a TensorRT-ready ONNX, checked with polygraphy, and an engine where TensorRT runs.

The ONNX has a dynamic batch (the engine gets an optimisation profile, ``PROFILE_BATCH``); int8
is explicit quantization (QDQ nodes with symmetric int8 activations, calibrated on real images),
which TensorRT 10 prefers over its deprecated calibrators. fp16 is left to TensorRT's builder.

Engines are specific to a GPU and TensorRT version, so the engine is built only where TensorRT
and CUDA are usable; elsewhere the artifact is the ONNX, the manifest notes say
"engine not built: <reason>", and ``hetero.devices.run`` builds the engine on the device itself.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from hetero.devices import parity
from hetero.devices._errors import one_line
from hetero.devices.manifest import atomic_write_bytes
from hetero.devices.runtimes import get_runtime
from hetero.export._base import Backend, register_backend
from hetero.export._errors import ExportError
from hetero.export._onnx import INPUT_NAME, OUTPUT_NAME, export_onnx
from hetero.export._onnx_precision import quantization_notes, quantize_int8

__all__ = ["TensorrtBackend"]

_CHECK_KEY = "hetero.onnx_check"  # metadata_props entry: the check travels with the ONNX
# The ONNX is compared with the torch model on onnxruntime before any engine is built; int8 QDQ
# is judged loosely, the runtime parity check downstream has the final word.
_CHECK_COS_MIN = {"fp32": 0.9999, "fp16": 0.9999, "int8": 0.98}


def _polygraphy_check(path: Path, example: torch.Tensor, reference: np.ndarray,
                      precision: str) -> dict[str, object]:
    """Run the ONNX with polygraphy's onnxruntime backend and compare it with the torch model."""
    from polygraphy.backend.onnxrt import OnnxrtRunner, SessionFromOnnx

    try:
        with OnnxrtRunner(SessionFromOnnx(str(path), providers=["CPUExecutionProvider"])) as runner:
            output = runner.infer({INPUT_NAME: example.numpy()})[OUTPUT_NAME]
    except Exception as exc:  # polygraphy wraps onnxruntime errors in its own types
        raise ExportError(f"polygraphy could not run the TensorRT-ready ONNX ({one_line(exc)})") from None
    figures = parity(reference, output)
    if figures["cos_min"] < _CHECK_COS_MIN[precision]:
        raise ExportError(f"the TensorRT-ready ONNX disagrees with the torch model (cos_min "
                          f"{figures['cos_min']:.5f}); report this model as a bug")
    return {"tool": "polygraphy+onnxruntime", **figures}


def _record_check(path: Path, check: dict[str, object]) -> None:
    import onnx

    model = onnx.load(str(path))
    entry = model.metadata_props.add()
    entry.key, entry.value = _CHECK_KEY, json.dumps(check)
    onnx.save(model, str(path))


@register_backend("tensorrt")
class TensorrtBackend(Backend):
    """TensorRT-ready ONNX plus, where possible, a serialized engine (``model.engine``)."""

    artifact_name = "model.onnx"
    requires = ("onnx", "onnxscript", "onnxruntime", "polygraphy")
    extra = "tensorrt"
    tools = ("onnx", "onnxruntime", "polygraphy", "tensorrt")

    def _write(self, model: torch.nn.Module, example: torch.Tensor, path: Path, precision: str,
               calibration: np.ndarray | None, keep_float: tuple[str, ...] = ()) -> None:
        export_onnx(model, example, path)
        if precision == "int8":
            quantize_int8(path, calibration, symmetric=True)
        # Judge on real images where we have them (RESEARCH.md: not on noise, not on one image).
        probe = example if calibration is None else torch.from_numpy(calibration[:32])
        _record_check(path, _polygraphy_check(path, probe, model(probe).numpy(), precision))

    def notes(self, artifact: Path) -> dict[str, object]:
        if Path(artifact).suffix != ".onnx":
            return {"engine": "built"}
        import onnx

        props = {p.key: p.value for p in onnx.load(str(artifact)).metadata_props}
        notes: dict[str, object] = {
            "engine": f"not built: {get_runtime('tensorrt').available()[1] or 'not asked'}"}
        if _CHECK_KEY in props:
            notes["onnx_check"] = json.loads(props[_CHECK_KEY])
        return {**notes, **quantization_notes(Path(artifact))}

    def _convert(self, model: torch.nn.Module, example: torch.Tensor, out_dir: Path,
                 precision: str, calibration: np.ndarray | None, keep_float: tuple[str, ...] = ()) -> Path:
        onnx_target = super()._convert(model, example, out_dir, precision, calibration, keep_float)
        ok, _ = get_runtime("tensorrt").available()
        if not ok:
            return onnx_target
        from hetero.devices.runtimes._tensorrt import build_engine

        engine_target = out_dir / "model.engine"
        atomic_write_bytes(engine_target, build_engine(onnx_target, precision))
        return engine_target
