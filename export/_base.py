"""The backend interface and its registry, and what all backends share."""

from __future__ import annotations

import abc
import collections
import contextlib
import copy
import importlib.metadata
import importlib.util
import io
import logging
import shutil
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from hetero.devices import PRECISIONS
from hetero.devices._atomic import atomic_path
from hetero.devices._registry import Registry
from hetero.devices.runtimes import Runner, get_runtime
from hetero.export._errors import ExportError

__all__ = [
    "Backend",
    "atomic_output",
    "calibration_key",
    "describe_ops",
    "dynamic_batch",
    "get_backend",
    "list_backends",
    "quiet",
    "register_backend",
    "tool_versions",
]

_BACKENDS: Registry[Backend] = Registry("export backend", ExportError, instances=True)


class Backend(abc.ABC):
    """Converts a torch embedding model into one runtime's artifact.

    Attributes:
        name: Registry name; also the manifest's ``format``.
        runtime: Name of the :mod:`hetero.devices.runtimes` runtime that runs the artifact.
        precisions: Precisions :meth:`convert` accepts.
        artifact_name: File (or directory) name of the artifact in the output folder.
        requires: Modules that must be importable to convert.
        extra: The ``pip install 'hetero[EXTRA]'`` that provides them.
        tools: Distributions whose versions go into the manifest.
        int8_quantizations: The int8 schemes :meth:`convert` implements: ``static`` (with
            calibration images) and/or ``dynamic`` (called without them).
        keeps_layers_float: Whether :meth:`convert` can leave chosen layers of an int8 model in
            float (``keep_float``), which the accuracy-controlled fallback needs.
    """

    name: str = ""
    runtime: str = ""
    precisions: tuple[str, ...] = PRECISIONS
    artifact_name: str = ""
    requires: tuple[str, ...] = ()
    extra: str = ""
    tools: tuple[str, ...] = ()
    int8_quantizations: tuple[str, ...] = ("static",)
    keeps_layers_float: bool = False

    def available(self) -> tuple[bool, str]:
        """Whether this backend can convert here, and if not, why (one line)."""
        for module in self.requires:
            if importlib.util.find_spec(module) is None:
                return False, f"{module} is not installed (pip install 'hetero[{self.extra}]')"
        return True, ""

    def versions(self) -> dict[str, str]:
        """Versions of torch and the conversion tools, for the manifest."""
        return tool_versions(("torch", "numpy") + self.tools)

    def notes(self, artifact: Path) -> dict[str, object]:
        """Facts about an artifact worth recording in the manifest (e.g. what was not built)."""
        return {}

    def layer_outputs(self, artifact: Path, inputs: np.ndarray) -> dict[str, tuple[str, np.ndarray]]:
        """The outputs of the artifact's compute layers (convolutions, linear layers) on
        ``inputs`` as its runtime computes them, int8 values dequantized: ``{layer: (op,
        [N, ...])}`` in graph order, for the per-layer drift report; ``{}`` where the backend
        cannot say."""
        return {}

    def quantize_float_artifact(self, float_artifact: str | Path, out_dir: str | Path, calibration: np.ndarray,
                                keep_float: Sequence[str] = (), int8_weights: Sequence[str] = ()) -> Path:
        """Static int8 from an fp32 artifact this backend converted, without converting again.

        Quantizing is seconds where converting from torch is tens of seconds, so the
        accuracy-controlled fallback re-quantizes one float artifact many times (once per layer to
        rank them, once per candidate). The result equals :meth:`convert` at int8 with the same
        calibration and ``keep_float``.

        ``int8_weights`` names layers of ``keep_float`` whose weights are still stored in int8
        (weight-only: dequantized in front of a float op), which keeps the file near int8's size;
        the other kept layers keep float32 weights too.

        Raises:
            ExportError: The backend cannot keep layers in float (it has no float intermediate).
        """
        if not self.keeps_layers_float:
            raise ExportError(f"the {self.name} backend cannot quantize a float artifact of its own")
        target = Path(out_dir) / self.artifact_name
        target.parent.mkdir(parents=True, exist_ok=True)
        calibration = np.ascontiguousarray(calibration, dtype=np.float32)
        with atomic_output(target) as tmp, quiet():
            shutil.copyfile(float_artifact, tmp)
            self._quantize_static(tmp, calibration, tuple(keep_float), tuple(int8_weights))
        return target

    def layer_weight_counts(self, float_artifact: str | Path) -> dict[str, int]:
        """``{layer: number of weights}`` of a float artifact's layers (named as
        :meth:`layer_outputs` names them), which says what storing a layer's weights in int8
        saves; ``{}`` where the backend cannot tell."""
        return {}

    def _quantize_static(self, path: Path, calibration: np.ndarray, keep_float: tuple[str, ...],
                         int8_weights: tuple[str, ...] = ()) -> None:
        """Quantize the float artifact at ``path`` in place (backends with ``keeps_layers_float``
        override it; the others have no float intermediate of their own to quantize)."""
        raise ExportError(f"the {self.name} backend cannot quantize a float artifact of its own")

    def load(self, artifact: str | Path, threads: int | None = None) -> Runner:
        """Load an artifact with this backend's runtime (see :mod:`hetero.devices.runtimes`)."""
        return get_runtime(self.runtime or self.name).load(artifact, threads=threads)

    def convert(self, model: torch.nn.Module, example: torch.Tensor, out_dir: str | Path,
                precision: str = "fp32", calibration: np.ndarray | None = None,
                keep_float: Sequence[str] = ()) -> Path:
        """Export ``model`` to ``out_dir``; returns the artifact's path (written atomically).

        Args:
            model: Embedding model mapping float32 ``[N, C, H, W]`` to L2-normalised ``[N, D]``.
                It is copied, not modified.
            example: An input of the shape the artifact takes (its batch size is ignored where
                the format allows a dynamic batch).
            out_dir: Folder for the artifact; created if missing.
            precision: ``fp32``, ``fp16`` or ``int8``.
            calibration: Real preprocessed images ``[M, C, H, W]`` for int8 calibration.
            keep_float: int8 only: layers (names as :meth:`layer_outputs` gives them) left in
                float, the accuracy-controlled fallback; backends that cannot refuse it.

        Raises:
            ExportError: The backend cannot convert here, or the precision, example or
                calibration data are not acceptable.
        """
        ok, reason = self.available()
        if not ok:
            raise ExportError(f"the {self.name} backend cannot export here: {reason}")
        if precision not in self.precisions:
            raise ExportError(f"the {self.name} backend does not support precision {precision!r}; "
                              f"use one of {', '.join(self.precisions)}")
        if example.ndim != 4:
            raise ExportError(f"the example input must be [N, C, H, W], got {list(example.shape)}")
        if calibration is not None:
            calibration = np.ascontiguousarray(calibration, dtype=np.float32)
            if calibration.ndim != 4 or calibration.shape[1:] != tuple(example.shape[1:]):
                raise ExportError(
                    f"calibration images have shape {list(calibration.shape)}; they must be "
                    f"[M, {', '.join(map(str, example.shape[1:]))}] like the example input"
                )
        if keep_float and (precision != "int8" or not self.keeps_layers_float):
            raise ExportError(f"the {self.name} backend cannot keep chosen layers in float at {precision}")
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        # A copy on the CPU in eval mode: batch norm must use its running statistics, and the
        # caller's model (maybe on a GPU, maybe training) must be left as it was.
        model = copy.deepcopy(model).to("cpu", torch.float32).eval()
        example = example.detach().to("cpu", torch.float32)
        with torch.no_grad(), quiet():
            return self._convert(model, example, out_dir, precision, calibration, tuple(keep_float))

    def _convert(self, model: torch.nn.Module, example: torch.Tensor, out_dir: Path,
                 precision: str, calibration: np.ndarray | None, keep_float: tuple[str, ...] = ()) -> Path:
        """Write the artifact ``out_dir / artifact_name`` atomically; arguments are checked."""
        target = out_dir / self.artifact_name
        with atomic_output(target) as tmp:
            self._write(model, example, tmp, precision, calibration, keep_float)
        return target

    @abc.abstractmethod
    def _write(self, model: torch.nn.Module, example: torch.Tensor, path: Path, precision: str,
               calibration: np.ndarray | None, keep_float: tuple[str, ...] = ()) -> None:
        """Convert ``model`` and write the artifact at ``path`` (a temporary name)."""


def register_backend(name: str, runtime: str | None = None) -> Callable[[type], type]:
    """Class decorator: register a :class:`Backend` under ``name``, run by ``runtime``."""
    return _BACKENDS.register(name, runtime=runtime or name)


def get_backend(name: str) -> Backend:
    """The backend registered as ``name``.

    Raises:
        ExportError: No backend has that name.
    """
    return _BACKENDS.get(name)


def list_backends() -> list[str]:
    """Registered backend names, sorted."""
    return _BACKENDS.names()


def tool_versions(distributions: tuple[str, ...]) -> dict[str, str]:
    """Installed versions of ``distributions``; absent ones are left out."""
    versions = {}
    for dist in distributions:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[dist] = importlib.metadata.version(dist)
    return versions


@contextlib.contextmanager
def atomic_output(target: Path) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; on success move it onto ``target``.

    Works for files and for directory artifacts (an ``.mlpackage``): devices' atomic writer with
    ``tree=True``. A converter that wrote nothing is an :class:`ExportError`.
    """
    with atomic_path(target, tree=True) as tmp:
        yield tmp
        if not tmp.exists():
            raise ExportError(f"the converter wrote no {target.name}")


def dynamic_batch(example: torch.Tensor) -> tuple[torch.Tensor, tuple[dict[int, object]]]:
    """An example input and ``dynamic_shapes`` for ``torch.export`` with a symbolic batch.

    ``torch.export`` specialises sizes 0 and 1, so the example is widened to a batch of two to
    keep the batch dimension symbolic.
    """
    wide = example[:1].expand(2, *example.shape[1:]).contiguous()
    return wide, ({0: torch.export.Dim("batch", min=1, max=1 << 16)},)


def calibration_key(model: bytes, images: np.ndarray) -> str:
    """A key for the calibrated ranges of ``model`` (a float artifact's bytes) on ``images``: the
    int8 fallback quantizes one float model tens of times, and its ranges depend on nothing else."""
    import hashlib

    images = np.ascontiguousarray(images)
    return (hashlib.sha256(model).hexdigest()[:32]
            + hashlib.sha256(repr((images.shape, images.dtype.str)).encode() + images.tobytes()).hexdigest()[:32])


def describe_ops(counts: collections.Counter[str]) -> str:
    """``"Conv x44, Gemm"``: op types by count, for the manifest notes (``"none"`` if empty)."""
    return ", ".join(f"{op} x{n}" if n > 1 else op for op, n in counts.most_common()) or "none"


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence converters' warnings, logs and progress bars, which would drown the CLI's output."""
    loggers = [logging.getLogger(n) for n in ("torch", "torch.onnx", "torch.export", "root",
                                              "coremltools", "absl")]
    levels = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        # Converters draw progress bars and print banners on Python's stdout/stderr; errors reach
        # the caller as exceptions, so nothing needed is lost.
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
                contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)
