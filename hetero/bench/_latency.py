"""Latency: p50/p95 with warm-up at batch 1 and the device's larger batches, threads stated.

Measured here with :func:`hetero.devices.runtimes.measure_latency` on the runtime's runner, or read from
the JSON that ``python -m hetero.devices.run --latency-out`` wrote on the device itself.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch

from hetero._io import read_json
from hetero.errors import UserError

__all__ = ["TorchRunner", "measure_batches", "read_latency", "latency_sections"]


class TorchRunner:
    """PyTorch eager with the same ``run`` interface as a runtime's runner (for comparisons).

    Its threads are torch's (``torch.set_num_threads``), set by the caller.
    """

    engine = "pytorch-eager"

    def __init__(self, net: torch.nn.Module) -> None:
        self.net = net.eval()

    @torch.no_grad()
    def run(self, x: np.ndarray) -> np.ndarray:
        return self.net(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))).numpy()


def _tile(inputs: np.ndarray, n: int) -> np.ndarray:
    # A batch larger than the query set repeats the queries: the timing needs n real images.
    reps = -(-n // len(inputs))
    return np.concatenate([inputs] * reps)[:n] if reps > 1 else inputs[:n]


def measure_batches(
    runner,
    inputs: np.ndarray,
    batch_sizes: Sequence[int],
    threads: int | None,
    warmup: int = 5,
    repeats: int = 30,
) -> list[dict]:
    """Latency of ``runner`` at each batch size (batch 1 always first), on real inputs.

    Returns:
        One ``{"batch", "threads", "p50", "p95", "mean", "repeats", "warmup", "per_image_p50"}``
        per batch size, milliseconds.
    """
    from hetero.devices.runtimes import measure_latency

    if repeats < 1 or warmup < 0:
        raise UserError(f"--repeats must be >= 1 and --warmup >= 0, got {repeats} and {warmup}")
    figures = []
    for batch in sorted({1, *batch_sizes}):
        lat = measure_latency(runner, _tile(inputs, batch), warmup=warmup, repeats=repeats, batch=batch)
        figures.append({**lat, "threads": threads, "warmup": warmup, "per_image_p50": lat["p50"] / batch})
    return figures


def read_latency(path: str | os.PathLike[str]) -> list[dict]:
    """Latency figures measured on a device: ``hetero.devices.run``'s ``--latency-out`` JSON.

    Accepts one figure set (``{"batch": 1, "p50": ..., "p95": ...}``), a list of them (one per
    batch size), or the runner's whole printed summary (with a ``latency_ms`` key).
    """
    data = read_json(path)
    if isinstance(data, dict) and "latency_ms" in data:
        data = data["latency_ms"]
    items = data if isinstance(data, list) else [data]
    figures = []
    for item in items:
        if not (isinstance(item, dict) and all(isinstance(item.get(k), (int, float)) for k in ("batch", "p50", "p95"))):
            raise UserError(
                f"--latency {path} must hold the JSON written by `python -m hetero.devices.run --latency-out` "
                '({"batch": 1, "p50": ..., "p95": ...} or a list of them)'
            )
        figures.append({**item, "per_image_p50": item["p50"] / item["batch"], "measured_on": "device"})
    return sorted(figures, key=lambda f: f["batch"])


def latency_sections(figures: list[dict], threads: int | None, measured_on: str) -> dict:
    """The report's latency keys: ``latency_ms`` (batch 1, DESIGN.md) and ``latency_ms_batches``."""
    figures = [{"measured_on": measured_on, **f} for f in figures]
    first = next((f for f in figures if f["batch"] == 1), None)
    batch1 = {"batch": 1, "threads": threads, "p50": None, "p95": None, "measured_on": measured_on}
    if first is not None:
        batch1.update(first)
        batch1["threads"] = first.get("threads", threads)
    return {"latency_ms": batch1, "latency_ms_batches": figures}
