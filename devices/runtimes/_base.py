"""The runtime interface, its registry, and what every runner shares (batching, checks, timing)."""

from __future__ import annotations

import abc
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from hetero.devices._errors import ArtifactError, RuntimeUnavailableError, one_line
from hetero.devices._registry import Registry

__all__ = [
    "Runner",
    "Runtime",
    "get_runtime",
    "list_runtimes",
    "load_error",
    "measure_latency",
    "nchw",
    "register_runtime",
]

Dim = int | None


def nchw(dims: list[Dim] | tuple[Dim, ...]) -> tuple[Dim, tuple[Dim, Dim, Dim]]:
    """Split an input shape into its batch and ``(C, H, W)``, ``None`` where missing or unknown."""
    n, c, h, w = (list(dims) + [None] * 4)[:4]
    return n, (c, h, w)

_RUNTIMES: Registry[Runtime] = Registry("runtime", ArtifactError, instances=True)


class Runner(abc.ABC):
    """A loaded artifact that maps preprocessed images to embeddings.

    Subclasses implement :meth:`_run_batch` and set ``batch_size`` (``None`` when the artifact
    takes any batch), ``max_batch`` (a dynamic batch's upper bound, if any) and ``input_shape``
    (``(C, H, W)``, entries ``None`` where unknown).
    """

    batch_size: int | None = None
    max_batch: int | None = None
    input_shape: tuple[int | None, int | None, int | None] = (None, None, None)

    def run(self, x: np.ndarray) -> np.ndarray:
        """Embed ``x``, float32 ``[N, C, H, W]``; returns float32 ``[N, D]``.

        A fixed-batch artifact is fed in chunks of its batch size, the last one zero-padded; a
        dynamic one in chunks of at most ``max_batch``.

        Raises:
            ArtifactError: ``x`` does not have the shape the artifact expects.
        """
        x = np.ascontiguousarray(x, dtype=np.float32)
        if x.ndim != 4:
            raise ArtifactError(f"inputs must be [N, C, H, W] images, got shape {list(x.shape)}")
        for got, want in zip(x.shape[1:], self.input_shape):
            if want is not None and got != want:
                raise ArtifactError(
                    f"inputs have shape {list(x.shape)} but the artifact expects "
                    f"[N, {', '.join(str(d) for d in self.input_shape)}]; preprocess them as the "
                    "manifest says"
                )
        n = x.shape[0]
        if n == 0:
            raise ArtifactError("inputs are empty (0 images)")
        step = self.batch_size or min(n, self.max_batch or n)
        outputs = []
        for start in range(0, n, step):
            chunk = x[start:start + step]
            real = len(chunk)
            if self.batch_size and real < step:
                pad = np.zeros((step - real,) + chunk.shape[1:], dtype=np.float32)
                chunk = np.concatenate([chunk, pad])
            out = np.asarray(self._run_batch(chunk), dtype=np.float32)
            outputs.append(out.reshape(out.shape[0], -1)[:real])
        return np.concatenate(outputs)

    @abc.abstractmethod
    def _run_batch(self, x: np.ndarray) -> np.ndarray:
        """Run one batch of exactly the size the artifact accepts."""


class Runtime(abc.ABC):
    """A way to run one artifact format on this machine."""

    name: str = ""

    @abc.abstractmethod
    def available(self) -> tuple[bool, str]:
        """Whether this runtime can run here, and if not, why (one line)."""

    def load(self, artifact_path: str | Path, threads: int | None = None) -> Runner:
        """Load an artifact.

        Raises:
            RuntimeUnavailableError: The runtime cannot run on this machine.
            ArtifactError: The artifact is missing, truncated or corrupt.
        """
        ok, reason = self.available()
        if not ok:
            raise RuntimeUnavailableError(f"the {self.name} runtime is not available here: {reason}")
        path = Path(artifact_path)
        if not path.exists():
            raise ArtifactError(f"artifact {path} does not exist; export the model first")
        return self._load(path, threads)

    @abc.abstractmethod
    def _load(self, path: Path, threads: int | None) -> Runner:
        """Load an existing artifact; the runtime is known to be available."""


def register_runtime(name: str) -> Callable[[type], type]:
    """Class decorator: register a :class:`Runtime` subclass under ``name``."""
    return _RUNTIMES.register(name)


def get_runtime(backend: str) -> Runtime:
    """The runtime registered for ``backend``.

    Raises:
        ArtifactError: No runtime has that name.
    """
    return _RUNTIMES.get(backend)


def list_runtimes() -> list[str]:
    """Registered runtime names, sorted."""
    return _RUNTIMES.names()


def load_error(path: Path, tool: str, exc: BaseException) -> ArtifactError:
    """A one-line :class:`ArtifactError` for an artifact a runtime failed to load."""
    return ArtifactError(f"artifact {path} cannot be loaded by {tool} ({one_line(exc)}); it is corrupt "
                         "or truncated: re-export it")


def measure_latency(runner: Runner, x: np.ndarray, warmup: int = 5, repeats: int = 30,
                    batch: int = 1) -> dict[str, float]:
    """Wall-clock latency of ``runner`` on the first ``batch`` images of ``x``, in milliseconds.

    A batch larger than ``x`` repeats its images: the timing needs ``batch`` real images.

    Returns:
        ``{"batch", "repeats", "p50", "p95", "mean"}``.
    """
    if repeats < 1 or warmup < 0 or batch < 1:
        raise ArtifactError(f"need repeats >= 1, warmup >= 0 and batch >= 1, got {repeats}, {warmup} and {batch}")
    reps = -(-batch // len(x))
    sample = np.ascontiguousarray(np.concatenate([x] * reps)[:batch] if reps > 1 else x[:batch], dtype=np.float32)
    for _ in range(warmup):
        runner.run(sample)
    times = np.empty(repeats)
    for i in range(repeats):
        start = time.perf_counter()
        runner.run(sample)
        times[i] = (time.perf_counter() - start) * 1e3
    return {"batch": int(len(sample)), "repeats": repeats, "p50": float(np.percentile(times, 50)),
            "p95": float(np.percentile(times, 95)), "mean": float(times.mean())}
