"""Runtimes that run exported artifacts with numpy in and numpy out.

Nothing here imports torch: a device needs numpy and one runtime. Each runtime module imports its
runtime lazily, so importing this package never fails for a missing runtime; ask
:meth:`Runtime.available` instead.
"""

from hetero.devices.runtimes import (
    _coreml,  # noqa: F401  (registers "coreml")
    _onnx,  # noqa: F401  (registers "onnx")
    _tensorrt,  # noqa: F401  (registers "tensorrt")
    _tflite,  # noqa: F401  (registers "tflite")
)
from hetero.devices.runtimes._base import (
    Runner,
    Runtime,
    get_runtime,
    list_runtimes,
    load_error,
    measure_latency,
    register_runtime,
)

__all__ = [
    "Runner",
    "Runtime",
    "get_runtime",
    "list_runtimes",
    "load_error",
    "measure_latency",
    "register_runtime",
]
