"""Core ML: ``predict`` on macOS, hetero's numpy interpreter of the ML Program elsewhere."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import numpy as np

from hetero.devices._errors import ArtifactError
from hetero.devices.runtimes._base import Runner, Runtime, load_error, nchw, register_runtime
from hetero.devices.runtimes._mil import MilProgram, load_spec, main_block
from hetero.devices.runtimes._mil_values import tensor_shape

__all__ = ["CoremlRuntime", "InterpreterRunner", "PredictRunner"]


def _predict_available() -> bool:
    if sys.platform != "darwin":
        return False
    try:
        import coremltools.libcoremlpython  # noqa: F401
    except ImportError:
        return False
    return True


class InterpreterRunner(Runner):
    """Runs an ML Program with :class:`MilProgram` (numpy)."""

    engine = "hetero-mil-interpreter"

    def __init__(self, program: MilProgram) -> None:
        self.program = program
        self.batch_size, self.input_shape = nchw(program.input_shape)

    def _run_batch(self, x: np.ndarray) -> np.ndarray:
        return self.program.run(x)


class PredictRunner(Runner):
    """Runs an ``.mlpackage`` with Core ML itself (macOS)."""

    engine = "coreml-predict"

    def __init__(self, model: Any, spec: Any) -> None:
        self.model = model
        _, inp, self._output = main_block(spec)
        self._input = inp.name
        self.batch_size, self.input_shape = nchw(tensor_shape(inp.type.tensorType))

    def _run_batch(self, x: np.ndarray) -> np.ndarray:
        return self.model.predict({self._input: x})[self._output]


@register_runtime("coreml")
class CoremlRuntime(Runtime):
    """Runs Core ML ``.mlpackage`` ML Programs.

    Args of :meth:`load`: ``threads`` is ignored (Core ML schedules its own compute units).
    Set ``interpreter=True`` on an instance to force the numpy interpreter on macOS too.
    """

    interpreter = False

    def available(self) -> tuple[bool, str]:
        if importlib.util.find_spec("coremltools") is None:
            return False, "coremltools is not installed (pip install coremltools)"
        return True, ""

    def _load(self, path: Path, threads: int | None) -> Runner:
        if not path.is_dir():
            raise ArtifactError(f"artifact {path} is not an .mlpackage folder; re-export it")
        spec, model_dir = load_spec(path)
        if self.interpreter or not _predict_available():
            return InterpreterRunner(MilProgram(spec, model_dir))
        import coremltools as ct

        try:
            model = ct.models.MLModel(str(path))
        except Exception as exc:  # Core ML compile errors surface as several types
            raise load_error(path, "Core ML", exc) from None
        return PredictRunner(model, spec)
