"""TFLite/LiteRT: the ai-edge-litert interpreter, or tflite-runtime where only that is installed."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np

from hetero.devices.runtimes._base import Runner, Runtime, load_error, nchw, register_runtime

__all__ = ["TfliteRunner", "TfliteRuntime"]

# Preferred first: ai-edge-litert is the maintained package; tflite-runtime is what older Raspberry
# Pi images ship.
_INTERPRETERS = (("ai_edge_litert.interpreter", "ai-edge-litert"),
                 ("tflite_runtime.interpreter", "tflite-runtime"))


def _interpreter_module() -> tuple[str, str] | None:
    for module, dist in _INTERPRETERS:
        if importlib.util.find_spec(module.split(".")[0]) is not None:
            return module, dist
    return None


def _quantize(x: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    dtype = detail["dtype"]
    if dtype == np.float32:
        return x
    scale, zero_point = detail["quantization"]
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale + zero_point), info.min, info.max).astype(dtype)


def _dequantize(y: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    if y.dtype == np.float32:
        return y.copy()  # the interpreter reuses its buffer on the next invoke
    scale, zero_point = detail["quantization"]
    return (y.astype(np.float32) - zero_point) * np.float32(scale)


class TfliteRunner(Runner):
    """A TFLite interpreter over one image input and one embedding output.

    Full-integer models may take and return int8/int16 tensors: inputs are quantized and outputs
    dequantized with the tensors' own scales and zero points, so callers always see float32.
    """

    def __init__(self, interpreter: Any, tool: str) -> None:
        self.interpreter = interpreter
        self.tool = tool
        self._input = interpreter.get_input_details()[0]
        self._output_index = interpreter.get_output_details()[0]["index"]
        signature = list(self._input.get("shape_signature", self._input["shape"]))
        self.batch_size, self.input_shape = nchw([None if d == -1 else int(d) for d in signature])
        self._allocated = int(self._input["shape"][0])

    def _run_batch(self, x: np.ndarray) -> np.ndarray:
        it = self.interpreter
        index = self._input["index"]
        if self.batch_size is None and len(x) != self._allocated:
            it.resize_tensor_input(index, list(x.shape))
            it.allocate_tensors()
            self._allocated = len(x)
        it.set_tensor(index, _quantize(x, self._input))
        it.invoke()
        # Output quantization parameters are only final after allocation, so read them here.
        detail = next(d for d in it.get_output_details() if d["index"] == self._output_index)
        return _dequantize(it.get_tensor(self._output_index), detail)


@register_runtime("tflite")
class TfliteRuntime(Runtime):
    """Runs ``.tflite`` files with the LiteRT (TensorFlow Lite) interpreter."""

    def available(self) -> tuple[bool, str]:
        if _interpreter_module() is None:
            return False, "neither ai-edge-litert nor tflite-runtime is installed (pip install ai-edge-litert)"
        return True, ""

    def _load(self, path: Path, threads: int | None) -> TfliteRunner:
        module, dist = _interpreter_module()  # type: ignore[misc]
        interpreter_cls = importlib.import_module(module).Interpreter
        try:
            interpreter = interpreter_cls(model_path=str(path), num_threads=threads)
            interpreter.allocate_tensors()
        except Exception as exc:  # ValueError or RuntimeError depending on what is wrong
            raise load_error(path, dist, exc) from None
        return TfliteRunner(interpreter, dist)
