"""Runtimes that run exported artifacts with numpy in and numpy out.

Nothing here imports torch: a device needs numpy and one runtime. Each runtime module imports its
runtime lazily, so importing this package never fails for a missing runtime; ask
:meth:`Runtime.available` instead.
"""

from devices.runtimes._base import Runner
from devices.runtimes._base import Runtime
from devices.runtimes._base import get_runtime
from devices.runtimes._base import list_runtimes
from devices.runtimes._base import load_error
from devices.runtimes._base import measure_latency
from devices.runtimes._base import register_runtime
from devices.runtimes import _onnx  # noqa: F401  (registers "onnx")
from devices.runtimes import _tflite  # noqa: F401  (registers "tflite")
from devices.runtimes import _coreml  # noqa: F401  (registers "coreml")
from devices.runtimes import _tensorrt  # noqa: F401  (registers "tensorrt")

__all__ = [
    "Runner",
    "Runtime",
    "get_runtime",
    "list_runtimes",
    "load_error",
    "measure_latency",
    "register_runtime",
]
