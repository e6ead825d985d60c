"""Export torch embedding models to device runtimes: one module per backend, one registry.

Importing this package never requires a converter: each backend imports its tools when it
converts and reports what is missing through :meth:`Backend.available`.
"""

from hetero.export import (
    _coreml,  # noqa: F401  (registers "coreml")
    _onnx,  # noqa: F401  (registers "onnx")
    _tensorrt,  # noqa: F401  (registers "tensorrt")
    _tflite,  # noqa: F401  (registers "tflite")
)
from hetero.export._base import Backend, get_backend, list_backends, register_backend
from hetero.export._errors import ExportError

__all__ = [
    "Backend",
    "ExportError",
    "get_backend",
    "list_backends",
    "register_backend",
]
