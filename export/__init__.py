"""Export torch embedding models to device runtimes: one module per backend, one registry.

Importing this package never requires a converter: each backend imports its tools when it
converts and reports what is missing through :meth:`Backend.available`.
"""

from export._base import Backend
from export._base import get_backend
from export._base import list_backends
from export._base import register_backend
from export._errors import ExportError
from export import _onnx  # noqa: F401  (registers "onnx")
from export import _tflite  # noqa: F401  (registers "tflite")
from export import _coreml  # noqa: F401  (registers "coreml")
from export import _tensorrt  # noqa: F401  (registers "tensorrt")

__all__ = [
    "Backend",
    "ExportError",
    "get_backend",
    "list_backends",
    "register_backend",
]
