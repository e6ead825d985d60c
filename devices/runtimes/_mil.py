"""A numpy interpreter of Core ML ML Programs, for checking Core ML artifacts off macOS.

Core ML's own ``predict`` exists only on macOS. Elsewhere hetero executes the saved MIL program
itself: it reads the program from the ``.mlpackage``'s protobuf spec, decodes constants and weight
blobs, and runs each op in numpy. An op outside :data:`OPS` is refused when the model loads
(never skipped), so an artifact is either checked completely or not at all.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from hetero.devices._errors import ArtifactError, RuntimeUnavailableError, one_line
from hetero.devices.runtimes._mil_ops import CONSTEXPR_OPS, OPS
from hetero.devices.runtimes._mil_values import BlobFiles, decode_value, numpy_dtype, tensor_shape

__all__ = ["MilProgram", "load_spec", "main_block", "proto_modules"]

_PROTO_PACKAGE = "_hetero_coremltools_proto"
_VARIADIC_INPUTS = {"values"}  # inputs that are tuples of variables (concat)


def proto_modules() -> tuple[ModuleType, ModuleType]:
    """coremltools' generated ``Model_pb2`` and ``MIL_pb2`` modules.

    Loaded from coremltools' ``proto`` folder without running ``coremltools/__init__``, which
    imports torch when it is installed and takes seconds: a device needs only the protobufs.
    """
    if "coremltools" in sys.modules:
        from coremltools.proto import MIL_pb2, Model_pb2

        return Model_pb2, MIL_pb2
    spec = importlib.util.find_spec("coremltools")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeUnavailableError("reading Core ML models needs coremltools (pip install coremltools)")
    if _PROTO_PACKAGE not in sys.modules:
        package = importlib.util.module_from_spec(
            importlib.machinery.ModuleSpec(_PROTO_PACKAGE, None, is_package=True))
        package.__path__ = [str(Path(next(iter(spec.submodule_search_locations))) / "proto")]
        sys.modules[_PROTO_PACKAGE] = package
    return (importlib.import_module(f"{_PROTO_PACKAGE}.Model_pb2"),
            importlib.import_module(f"{_PROTO_PACKAGE}.MIL_pb2"))


def load_spec(package: Path) -> tuple[Any, Path]:
    """The ``Model`` protobuf of an ``.mlpackage`` and the folder its weights are relative to.

    Raises:
        ArtifactError: The package is malformed or its spec does not parse.
    """
    model_pb2, _ = proto_modules()
    try:
        manifest = json.loads((package / "Manifest.json").read_text(encoding="utf-8"))
        entry = manifest["itemInfoEntries"][manifest["rootModelIdentifier"]]
        model_file = package / "Data" / entry["path"]
        spec = model_pb2.Model()
        spec.ParseFromString(model_file.read_bytes())
    except Exception as exc:  # json, key, OS and protobuf decode errors all mean "corrupt"
        raise ArtifactError(f"Core ML package {package} is corrupt ({one_line(exc)}); "
                            "re-export it") from None
    return spec, model_file.parent


def main_block(spec: Any) -> tuple[Any, Any, str]:
    """The ``main`` function's block, its single input and the name of its first output.

    Raises:
        ArtifactError: The model is not an ML Program with one input.
    """
    if spec.WhichOneof("Type") != "mlProgram":
        raise ArtifactError("Core ML model is not an ML Program (mlprogram); re-export it")
    functions = spec.mlProgram.functions
    function = functions["main"] if "main" in functions else next(iter(functions.values()))
    if len(function.inputs) != 1:
        raise ArtifactError(f"Core ML program has {len(function.inputs)} inputs; hetero's "
                            "artifacts take one (the images)")
    block = function.block_specializations[function.opset]
    return block, function.inputs[0], block.outputs[0]


class MilProgram:
    """The ``main`` function of an ML Program, ready to run on numpy arrays.

    Args:
        spec: The ``Model`` protobuf (``spec.mlProgram`` must be set).
        model_dir: Folder that ``@model_path`` in weight file names refers to.

    Raises:
        ArtifactError: The program uses an op or a type this interpreter does not implement, or
            its constants or weights are corrupt.
    """

    def __init__(self, spec: Any, model_dir: Path) -> None:
        _, self._mil = proto_modules()
        block, inp, self.output_name = main_block(spec)
        for op in block.operations:
            if op.type != "const" and op.type not in OPS and op.type not in CONSTEXPR_OPS:
                raise ArtifactError(
                    f"Core ML op {op.type!r} is not supported by hetero's interpreter (it runs the ops "
                    "of search_spaces' layers); verify this model with Core ML's own predict on macOS")
            if len(op.blocks):
                raise ArtifactError(f"Core ML op {op.type!r} with nested blocks (control flow) is "
                                    "not supported by hetero's interpreter")
        self.input_name = inp.name
        self.input_dtype = numpy_dtype(self._mil, inp.type.tensorType.dataType)
        self.input_shape = tensor_shape(inp.type.tensorType)
        self.op_types = [op.type for op in block.operations]
        blobs = BlobFiles(model_dir)
        self._env: dict[str, Any] = {}
        self._steps: list[tuple[str, dict[str, Any], list[tuple[str, np.dtype | None]]]] = []
        for op in block.operations:
            self._compile(op, blobs)

    def _compile(self, op: Any, blobs: BlobFiles) -> None:
        args: dict[str, Any] = {key: ("const", decode_value(self._mil, value, blobs))
                                for key, value in op.attributes.items() if key != "name"}
        for key, argument in op.inputs.items():
            bindings = [("var", b.name) if b.WhichOneof("binding") == "name"
                        else ("const", decode_value(self._mil, b.value, blobs))
                        for b in argument.arguments]
            args[key] = ("list", bindings) if key in _VARIADIC_INPUTS else bindings[0]
        outputs = [(o.name, numpy_dtype(self._mil, o.type.tensorType.dataType)
                    if o.type.WhichOneof("type") == "tensorType" else None) for o in op.outputs]
        if op.type == "const":
            self._store(outputs, args["val"][1])
        elif op.type in CONSTEXPR_OPS:  # all inputs are constants: fold them now
            self._store(outputs, self._call(op.type, CONSTEXPR_OPS[op.type], args, self._env))
        else:
            self._steps.append((op.type, args, outputs))

    def _store(self, outputs: list[tuple[str, np.dtype | None]], result: Any,
               env: dict[str, Any] | None = None) -> None:
        env = self._env if env is None else env
        results = result if isinstance(result, tuple) else (result,)
        for (name, dtype), value in zip(outputs, results):
            env[name] = np.asarray(value).astype(dtype, copy=False) if dtype is not None else value

    @staticmethod
    def _resolve(arg: tuple[str, Any], env: dict[str, Any]) -> Any:
        kind, value = arg
        if kind == "list":
            return [MilProgram._resolve(a, env) for a in value]
        if kind == "var":
            value = env[value]
        if isinstance(value, np.ndarray | np.generic) and value.dtype == np.float16:
            return value.astype(np.float32)
        return value

    def _call(self, op_type: str, fn: Any, args: dict[str, Any], env: dict[str, Any]) -> Any:
        kwargs = {key: self._resolve(arg, env) for key, arg in args.items()}
        try:
            return fn(**kwargs)
        except (ValueError, TypeError, IndexError) as exc:
            raise ArtifactError(f"Core ML op {op_type!r} failed in hetero's interpreter "
                                f"({one_line(exc)})") from None

    def run(self, x: np.ndarray) -> np.ndarray:
        """Run the program on its single input ``x``; returns its first output as float32."""
        env = dict(self._env)
        env[self.input_name] = np.asarray(x).astype(self.input_dtype, copy=False)
        for op_type, args, outputs in self._steps:
            self._store(outputs, self._call(op_type, OPS[op_type], args, env), env)
        return np.asarray(env[self.output_name], dtype=np.float32)
