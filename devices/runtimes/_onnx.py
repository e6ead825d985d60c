"""ONNX Runtime: CPU everywhere, CUDA where the installed onnxruntime has it."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np

from hetero.devices.runtimes._base import Runner, Runtime, load_error, nchw, register_runtime

__all__ = ["OnnxRunner", "OnnxRuntime"]


def _dim(value: object) -> int | None:
    # Symbolic dims come back as strings ("batch"), unknown ones as None.
    return value if isinstance(value, int) else None


class OnnxRunner(Runner):
    """An ``onnxruntime.InferenceSession`` over one image input and one embedding output."""

    def __init__(self, session: Any) -> None:
        self.session = session
        (inp,) = session.get_inputs()[:1]
        self._input = inp.name
        self.batch_size, self.input_shape = nchw([_dim(d) for d in inp.shape])
        self.providers = session.get_providers()

    def _run_batch(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self._input: x})[0]


@register_runtime("onnx")
class OnnxRuntime(Runtime):
    """Runs ``.onnx`` files with onnxruntime."""

    def available(self) -> tuple[bool, str]:
        if importlib.util.find_spec("onnxruntime") is None:
            return False, "onnxruntime is not installed (pip install onnxruntime)"
        return True, ""

    def _load(self, path: Path, threads: int | None) -> OnnxRunner:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        providers = ["CPUExecutionProvider"]
        if "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        try:
            session = ort.InferenceSession(str(path), options, providers=providers)
        except Exception as exc:  # onnxruntime raises several unrelated pybind types here
            raise load_error(path, "onnxruntime", exc) from None
        return OnnxRunner(session)
