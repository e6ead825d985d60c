"""What an architecture costs on the device, and how far it is from the device's budgets.

MACs and parameters are counted on the built network (``hetero.cost.count_cost``); the artifact
size is estimated from the parameters and the device's precision; latency is measured by exporting
the candidate with the device's backend and timing it on the device's runtime (here, on this
machine). Budgets become Optuna constraints (``Trial.set_constraint``, which replaces the
samplers' ``constraints_func`` deprecated in Optuna 5): ``value / limit - 1``, feasible when ``<= 0``;
NSGA-II and TPE rank infeasible trials behind feasible ones.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import optuna
import torch

from hetero.cost import count_cost, count_macs
from hetero.errors import UserError

__all__ = ["CostModel", "BYTES_PER_PARAM"]

#: Bytes a weight takes in an artifact of each precision (the estimate of ``artifact_bytes``).
BYTES_PER_PARAM = {"fp32": 4, "fp16": 2, "int8": 1}
_LATENCY_REPEATS = 20


class CostModel:
    """Costs of architectures of one space on one device, and their budget constraints.

    Args:
        space: The search space.
        profile: The device profile (``hetero.devices.load_profile``).
        objective: ``macs`` or ``latency``: the cost the search minimises.
        max_macs: Overrides the profile's MACs budget.
        embed_dim: Output size of the networks.
        channels: Input channels.
        calibration: Real preprocessed images at a resolution, for int8 export before timing.
        build: Builds an architecture's network where the space's own build on the meta device
            does not (``cloud_pruned`` prunes the real cloud network; see ``hetero.search._nets``).
    """

    def __init__(self, space, profile, objective: str, max_macs: int | None, embed_dim: int, channels: int,
                 calibration: Callable[[int], np.ndarray] | None = None,
                 build: Callable[[Mapping[str, Any]], torch.nn.Module] | None = None) -> None:
        self.space, self.profile, self.objective, self._build = space, profile, objective, build
        self.embed_dim, self.channels, self.calibration = embed_dim, channels, calibration
        b = profile.budgets
        limits = {"macs": max_macs or b.macs, "params": b.params, "artifact_bytes": b.artifact_bytes}
        # A latency budget can only be checked where latency is measured.
        if objective == "latency":
            limits["latency_ms"] = b.latency_ms
        self.budgets: dict[str, float] = {k: v for k, v in limits.items() if v is not None}
        self._cache: dict[str, dict[str, Any]] = {}
        if objective == "latency":
            self._check_latency_available()

    def _check_latency_available(self) -> None:
        from hetero.devices.runtimes import get_runtime
        from hetero.export import get_backend

        backend = get_backend(self.profile.backend)
        runtime = backend.runtime or backend.name
        for what, (ok, reason) in (("backend", backend.available()), ("runtime", get_runtime(runtime).available())):
            if not ok:
                raise UserError(
                    f"--objective latency times candidates on device {self.profile.name}'s {self.profile.backend} {what}, "
                    f"which is not available here ({reason}); use --objective macs, or a device whose runtime is installed"
                )

    @property
    def unit(self) -> str:
        return "latency_ms" if self.objective == "latency" else "macs"

    def measure(self, arch: Mapping[str, Any], supernet: Any = None) -> dict[str, Any]:
        """MACs, parameters, estimated artifact bytes and (for ``latency``) p50 latency of ``arch``.

        Args:
            arch: The architecture.
            supernet: A :class:`search_spaces.Supernet` with ``arch`` active (a oneshot trial):
                its MACs are then counted on the active subnet, the same count for a third of the
                time of counting on meta tensors.
        """
        key = json.dumps(dict(arch), sort_keys=True)
        if key not in self._cache:
            resolution = int(arch["resolution"])
            shape_in = (self.channels, resolution, resolution)
            cost: dict[str, Any]
            if supernet is not None and supernet.active_arch == dict(arch):
                cost = {"macs": count_macs(supernet, shape_in), "params": int(supernet.active_params)}
            elif self._build is not None:
                cost = count_cost(self._build(arch), shape_in)
            else:
                # MACs and parameters depend on shapes only: on the meta device the network is
                # built without allocating or initialising weights. Latency needs the real network.
                with torch.device("meta"):
                    cost = count_cost(self.space.build(arch, self.embed_dim, self.channels), shape_in)
            cost["artifact_bytes"] = cost["params"] * BYTES_PER_PARAM[self.profile.precision]
            if self.objective == "latency":
                net = self._build(arch) if self._build is not None else self.space.build(arch, self.embed_dim, self.channels)
                cost.update(self._latency(net, resolution))
            self._cache[key] = cost
        return dict(self._cache[key])

    def _latency(self, net: torch.nn.Module, resolution: int) -> dict[str, Any]:
        from hetero.devices.runtimes import measure_latency
        from hetero.export import get_backend

        backend = get_backend(self.profile.backend)
        example = torch.zeros(1, self.channels, resolution, resolution)
        calib = self.calibration(resolution) if self.calibration and self.profile.precision == "int8" else None
        with tempfile.TemporaryDirectory(prefix="hetero-latency-") as tmp:
            artifact = backend.convert(net, example, tmp, precision=self.profile.precision, calibration=calib)
            runner = backend.load(artifact, threads=self.profile.threads)
            x = np.zeros((1, self.channels, resolution, resolution), dtype=np.float32)
            timing = measure_latency(runner, x, repeats=_LATENCY_REPEATS)
        return {"latency_ms": timing["p50"], "latency_runner": type(runner).__name__}

    def constraints(self, cost: Mapping[str, Any]) -> dict[str, float]:
        """``value / limit - 1`` per budget."""
        return {name: float(cost[name]) / float(limit) - 1.0 for name, limit in self.budgets.items()}

    def record(self, trial: optuna.Trial, arch: Mapping[str, Any], supernet: Any = None) -> dict[str, Any]:
        """Measure ``arch`` (see :meth:`measure`), store its cost and constraints on ``trial``; returns the cost."""
        cost = self.measure(arch, supernet)
        constraints = self.constraints(cost)
        recorded = trial.constraints  # a retried trial carries its predecessor's
        for name, value in constraints.items():
            if name not in recorded:
                trial.set_constraint(name, value)
        feasible = all(c <= 0 for c in constraints.values())
        for key, value in {**cost, "constraints": constraints, "feasible": feasible}.items():
            trial.set_user_attr(key, value)
        return cost

    def value(self, cost: Mapping[str, Any]) -> float:
        """The cost objective of ``cost`` (MACs or p50 milliseconds)."""
        return float(cost[self.unit])

    def describe(self) -> dict:
        return {"device": self.profile.name, "backend": self.profile.backend, "precision": self.profile.precision,
                "objective": self.objective, "budgets": dict(self.budgets)}
