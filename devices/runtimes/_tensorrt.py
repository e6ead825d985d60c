"""TensorRT: serialized engines run with the TensorRT Python API; CUDA memory via polygraphy.

An artifact is either an engine (``.engine``/``.plan``, built where it runs: engines are specific
to a GPU and TensorRT version) or a TensorRT-ready ONNX file, from which :meth:`load` builds the
engine in memory at the precision named by the ``manifest.json`` beside it. Nothing here imports
TensorRT or CUDA until an artifact is loaded.
"""

from __future__ import annotations

import ctypes
import importlib.util
import json
from pathlib import Path
from typing import Any

import numpy as np

from hetero.devices._errors import ArtifactError, one_line
from hetero.devices.runtimes._base import Runner, Runtime, load_error, nchw, register_runtime

__all__ = ["TensorrtRunner", "TensorrtRuntime", "build_engine"]

# Dynamic-batch optimisation profile: TensorRT tunes kernels for OPT and accepts MIN..MAX.
PROFILE_BATCH = (1, 8, 64)
_WORKSPACE_BYTES = 1 << 30


def _cuda() -> Any:
    from polygraphy import cuda

    return cuda


def _device_count() -> int:
    count = ctypes.c_int(0)
    status = _cuda().wrapper().handle.cudaGetDeviceCount(ctypes.byref(count))
    return count.value if status == 0 else 0


def _logger(trt: Any) -> Any:
    return trt.Logger(trt.Logger.ERROR)


def build_engine(onnx_path: str | Path, precision: str,
                 profile_batch: tuple[int, int, int] = PROFILE_BATCH) -> bytes:
    """Build a serialized TensorRT engine from an ONNX file.

    Args:
        onnx_path: TensorRT-ready ONNX (dynamic batch; int8 as explicit QDQ, symmetric).
        precision: ``fp32``, ``fp16`` or ``int8`` (int8 also enables fp16 for unquantized layers).
        profile_batch: (min, opt, max) batch of the optimisation profile, for a dynamic batch.

    Raises:
        ArtifactError: TensorRT cannot parse or build the network.
    """
    import tensorrt as trt

    logger = _logger(trt)
    builder = trt.Builder(logger)
    # TensorRT 10 networks are always explicit-batch; TensorRT 8 needs the flag.
    major = int(trt.__version__.split(".")[0])
    flags = 0 if major >= 10 else 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(Path(onnx_path).read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ArtifactError(f"TensorRT cannot parse {onnx_path} ({errors[:300]}); re-export it")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, _WORKSPACE_BYTES)
    if precision in ("fp16", "int8"):
        config.set_flag(trt.BuilderFlag.FP16)
    if precision == "int8":
        config.set_flag(trt.BuilderFlag.INT8)  # scales come from the ONNX's QDQ nodes
    inp = network.get_input(0)
    shape = tuple(inp.shape)
    if shape[0] == -1:
        profile = builder.create_optimization_profile()
        profile.set_shape(inp.name, *[(b, *shape[1:]) for b in profile_batch])
        config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ArtifactError(f"TensorRT could not build an engine from {onnx_path}; see the "
                            "TensorRT log above")
    return bytes(serialized)


class TensorrtRunner(Runner):
    """A TensorRT execution context with device buffers reused across calls."""

    def __init__(self, engine: Any, trt: Any) -> None:
        self.engine = engine
        self.context = engine.create_execution_context()
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        modes = {n: engine.get_tensor_mode(n) for n in names}
        self._input = next(n for n in names if modes[n] == trt.TensorIOMode.INPUT)
        self._output = next(n for n in names if modes[n] == trt.TensorIOMode.OUTPUT)
        self._in_dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(self._input)))
        self._out_dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(self._output)))
        shape = tuple(engine.get_tensor_shape(self._input))
        _, self.input_shape = nchw([int(d) if d >= 0 else None for d in shape])
        if shape[0] >= 0:
            self.batch_size = shape[0]
        else:
            self.max_batch = int(engine.get_tensor_profile_shape(self._input, 0)[2][0])
        cuda = _cuda()
        self._cuda = cuda.wrapper()
        self._kind = cuda.MemcpyKind
        self._stream = self._cuda.create_stream()
        self._buffers: dict[str, tuple[int, int]] = {}

    def _buffer(self, name: str, nbytes: int) -> int:
        ptr, size = self._buffers.get(name, (0, 0))
        if nbytes > size:
            if ptr:
                self._cuda.free(ptr)
            ptr, size = self._cuda.malloc(nbytes), nbytes
            self._buffers[name] = (ptr, size)
            self.context.set_tensor_address(name, ptr)
        return ptr

    def _run_batch(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=self._in_dtype)
        self.context.set_input_shape(self._input, x.shape)
        y = np.empty(tuple(self.context.get_tensor_shape(self._output)), dtype=self._out_dtype)
        d_in = self._buffer(self._input, x.nbytes)
        d_out = self._buffer(self._output, y.nbytes)
        self._cuda.memcpy(d_in, x.ctypes.data, x.nbytes, self._kind.HostToDevice, self._stream)
        if not self.context.execute_async_v3(self._stream):
            raise ArtifactError("TensorRT failed to execute the engine")
        self._cuda.memcpy(y.ctypes.data, d_out, y.nbytes, self._kind.DeviceToHost, self._stream)
        self._cuda.stream_synchronize(self._stream)
        return y.astype(np.float32)

    def __del__(self) -> None:
        for ptr, _ in getattr(self, "_buffers", {}).values():
            self._cuda.free(ptr)
        if getattr(self, "_stream", None):
            self._cuda.destroy_stream(self._stream)


@register_runtime("tensorrt")
class TensorrtRuntime(Runtime):
    """Runs TensorRT engines on an NVIDIA GPU (a Jetson, a server)."""

    def available(self) -> tuple[bool, str]:
        if importlib.util.find_spec("tensorrt") is None:
            return False, ("TensorRT is not installed (it comes with JetPack on a Jetson; "
                           "elsewhere pip install tensorrt on a machine with CUDA)")
        if importlib.util.find_spec("polygraphy") is None:
            return False, "polygraphy is not installed (pip install polygraphy)"
        try:
            count = _device_count()
        except Exception as exc:  # no libcudart, or a driver error
            return False, f"CUDA is not usable ({one_line(exc)})"
        if count == 0:
            return False, "no CUDA device is visible"
        return True, ""

    def _load(self, path: Path, threads: int | None) -> TensorrtRunner:
        import tensorrt as trt

        if path.suffix == ".onnx":
            data = build_engine(path, _manifest_precision(path))
        else:
            data = path.read_bytes()
        try:
            engine = trt.Runtime(_logger(trt)).deserialize_cuda_engine(data)
        except Exception as exc:
            raise load_error(path, "TensorRT", exc) from None
        if engine is None:
            raise ArtifactError(f"artifact {path} is not a TensorRT engine for this GPU and "
                                f"TensorRT {trt.__version__}; rebuild it here")
        return TensorrtRunner(engine, trt)


def _manifest_precision(onnx_path: Path) -> str:
    manifest = onnx_path.parent / "manifest.json"
    if manifest.is_file():
        precision = json.loads(manifest.read_text(encoding="utf-8")).get("precision")
        if precision in ("fp32", "fp16", "int8"):
            return precision
    return "fp32"
