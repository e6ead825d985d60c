"""Decoding Core ML MIL protobuf values: immediate tensors and weight blobs, into numpy.

Weight blobs follow coremltools' MIL storage format (``weights/weight.bin``): a 64-byte file
header, then per blob a 64-byte metadata record (sentinel ``0xDEADBEEF``, blob dtype, byte size,
absolute data offset) that ``blobFileValue.offset`` points to, then the data.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import numpy as np

from hetero.devices._errors import ArtifactError

__all__ = ["BlobFiles", "decode_value", "numpy_dtype", "tensor_shape"]

# MIL DataType names (MIL.proto) -> numpy; looked up by name so enum numbers never matter.
_DTYPES = {
    "BOOL": np.bool_, "STRING": np.object_, "FLOAT16": np.float16, "FLOAT32": np.float32,
    "FLOAT64": np.float64, "INT8": np.int8, "INT16": np.int16, "INT32": np.int32,
    "INT64": np.int64, "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32,
    "UINT64": np.uint64,
}
# Blob storage dtype codes (MIL storage's BlobDataType); sub-byte types are not used by hetero.
_BLOB_DTYPES = {1: np.float16, 2: np.float32, 3: np.uint8, 4: np.int8, 6: np.int16,
                7: np.uint16, 14: np.int32, 15: np.uint32}
_SENTINEL = 0xDEADBEEF
_METADATA = struct.Struct("<IIQQQ")


def numpy_dtype(mil: Any, data_type: int) -> np.dtype:
    """The numpy dtype of a MIL ``DataType`` enum value (``mil`` is the MIL_pb2 module)."""
    name = mil.DataType.Name(data_type)
    if name not in _DTYPES:
        raise ArtifactError(f"Core ML data type {name} is not supported by hetero's interpreter")
    return np.dtype(_DTYPES[name])


def tensor_shape(tensor_type: Any) -> list[int | None]:
    """Dimensions of a MIL ``TensorType``; ``None`` for unknown (dynamic) ones."""
    return [d.constant.size if d.WhichOneof("dimension") == "constant" else None
            for d in tensor_type.dimensions]


class BlobFiles:
    """Reads weight blobs referenced as ``@model_path/...`` relative to the model's folder."""

    def __init__(self, model_dir: Path) -> None:
        self.model_dir = model_dir
        self._files: dict[str, bytes] = {}

    def read(self, file_name: str, offset: int) -> np.ndarray:
        """The flat array stored at ``offset`` of ``file_name``."""
        data = self._file(file_name)
        if offset + _METADATA.size > len(data):
            raise ArtifactError(f"Core ML weight file {file_name} is truncated; re-export the model")
        sentinel, code, size, data_offset, _ = _METADATA.unpack_from(data, offset)
        if sentinel != _SENTINEL or code not in _BLOB_DTYPES:
            raise ArtifactError(f"Core ML weight file {file_name} is corrupt at offset {offset} "
                                f"(sentinel {sentinel:#x}, dtype code {code}); re-export the model")
        if data_offset + size > len(data):
            raise ArtifactError(f"Core ML weight file {file_name} is truncated; re-export the model")
        return np.frombuffer(data, dtype=_BLOB_DTYPES[code], count=size // np.dtype(
            _BLOB_DTYPES[code]).itemsize, offset=data_offset)

    def _file(self, file_name: str) -> bytes:
        if file_name not in self._files:
            rel = file_name.removeprefix("@model_path/")
            path = (self.model_dir / rel).resolve()
            # The name comes from the artifact: never read outside the model's folder.
            if self.model_dir.resolve() not in path.parents or not path.is_file():
                raise ArtifactError(f"Core ML weight file {file_name} is missing; re-export the model")
            self._files[file_name] = path.read_bytes()
        return self._files[file_name]


def decode_value(mil: Any, value: Any, blobs: BlobFiles) -> Any:
    """A MIL ``Value`` as numpy: a tensor (0-d tensors as numpy scalars), a str, or a list."""
    kind = value.type.WhichOneof("type")
    source = value.WhichOneof("value")
    if source == "immediateValue" and value.immediateValue.WhichOneof("value") in ("tuple", "list"):
        items = getattr(value.immediateValue, value.immediateValue.WhichOneof("value")).values
        return [decode_value(mil, item, blobs) for item in items]
    if kind != "tensorType":
        raise ArtifactError(f"Core ML value of type {kind} is not supported by hetero's interpreter")
    dtype = numpy_dtype(mil, value.type.tensorType.dataType)
    shape = tensor_shape(value.type.tensorType)
    dims = [d for d in shape if d is not None]
    if len(dims) != len(shape):
        raise ArtifactError("Core ML constant with an unknown dimension; re-export the model")
    if source == "blobFileValue":
        flat = blobs.read(value.blobFileValue.fileName, value.blobFileValue.offset)
    else:
        flat = _immediate(value.immediateValue.tensor, dtype)
    if flat.dtype != dtype:
        flat = flat.astype(dtype)
    count = int(np.prod(dims)) if dims else 1
    if flat.size != count:
        raise ArtifactError(f"Core ML constant has {flat.size} values for shape {shape}; "
                            "re-export the model")
    array = flat.reshape(dims)
    if not dims:
        return array.item() if dtype == np.object_ else array[()]
    return array


def _immediate(tensor: Any, dtype: np.dtype) -> np.ndarray:
    field = tensor.WhichOneof("value")
    if field is None:
        return np.zeros(0, dtype=dtype)
    values = getattr(tensor, field).values
    if field == "bytes":  # fp16 and 8-bit tensors are stored as one raw byte string
        return np.frombuffer(values, dtype=dtype)
    if field == "strings":
        return np.array(list(values), dtype=object)
    return np.array(list(values), dtype=dtype)
