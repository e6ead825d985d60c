"""The continuous training knobs a trial samples: learning rate, loss weights and a temperature."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import optuna

from hetero.training import TrainConfig

__all__ = ["KNOBS", "sample_knobs", "knobs_of"]

#: ``TrainConfig`` field -> (low, high, log scale). A weight may reach 0, which switches its term off.
KNOBS: dict[str, tuple[float, float, bool]] = {
    "lr": (1e-3, 1e-2, True),
    "influence": (0.0, 2.0, False),
    "alignment": (0.5, 8.0, True),
    "contrastive": (0.0, 2.0, False),
    "contrastive_temperature": (0.02, 0.2, True),
    "focal": (0.0, 2.0, False),
    "structure": (0.0, 2.0, False),  # the cloud's neighbourhoods (issue 14)
}


def sample_knobs(trial: optuna.trial.BaseTrial, base: TrainConfig) -> TrainConfig:
    """``base`` with every knob suggested by ``trial`` (parameters named after the fields)."""
    values: dict[str, Any] = {name: trial.suggest_float(name, low, high, log=log) for name, (low, high, log) in KNOBS.items()}
    return replace(base, **values)


def knobs_of(config: TrainConfig) -> dict[str, float]:
    """The knob values of ``config``, clipped into their ranges (to enqueue them as a trial)."""
    return {name: min(max(float(getattr(config, name)), low), high) for name, (low, high, _) in KNOBS.items()}
