"""Per-epoch checkpoints of a training loop, so that a killed run resumes at its last finished epoch."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hetero._io import atomic_path

__all__ = ["EpochCheckpoint", "TRAINING_CHECKPOINT"]

_FORMAT = "hetero.epoch-checkpoint/2"
#: The checkpoint's name in a model's output folder (``hetero cloud train``, ``hetero train``, the demo).
TRAINING_CHECKPOINT = "train.partial.pt"
_log = logging.getLogger(__name__)


@dataclasses.dataclass
class EpochCheckpoint:
    """Where :func:`hetero.training.run_epochs` keeps its state between epochs.

    The file holds everything the next epoch depends on (weights, buffers, optimiser and schedule,
    the shuffling generator, ``rngs``, the loss history), so a resumed run continues exactly where
    the killed one stopped: its result equals an uninterrupted run's. A file written for other
    training (another ``key``) is ignored and overwritten; so is one that cannot be read, since it
    only ever saves time.

    Attributes:
        path: The checkpoint file; removed by :meth:`discard` once the caller saved its result.
        key: What is being trained (data, settings, seed): JSON-able, compared on load.
        rngs: numpy generators that the training step draws from, saved and restored with the rest
            (the trainer that creates them sets them before the loop starts).
    """

    path: Path
    key: dict[str, Any]
    rngs: tuple[np.random.Generator, ...] = ()
    seconds_before: float = dataclasses.field(default=0.0, init=False)

    def load(self) -> dict[str, Any] | None:
        """The saved state if it exists and belongs to this training, else ``None``."""
        if not self.path.exists():
            return None
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as exc:  # a torn or foreign file: start over rather than fail the run
            _log.warning("ignoring unreadable checkpoint %s (%s)", self.path, type(exc).__name__)
            return None
        if not isinstance(state, dict) or state.get("format") != _FORMAT or state.get("key") != _canonical(self.key):
            return None
        for rng, saved in zip(self.rngs, json.loads(state["rngs"])):
            rng.bit_generator.state = saved
        self.seconds_before = float(state["seconds"])
        return state

    def save(self, state: dict[str, Any], seconds: float) -> None:
        """Write ``state`` atomically, with the generators' states and the training time so far."""
        payload = {
            **state,
            "format": _FORMAT,
            "key": _canonical(self.key),
            "rngs": json.dumps([rng.bit_generator.state for rng in self.rngs]),
            "seconds": self.seconds_before + seconds,
        }
        with atomic_path(self.path) as tmp:
            torch.save(payload, tmp)

    @classmethod
    def in_folder(cls, folder: str | Path, key: dict[str, Any]) -> EpochCheckpoint:
        """The checkpoint of the model trained into ``folder``."""
        return cls(Path(folder) / TRAINING_CHECKPOINT, key)

    @classmethod
    def named_by_key(cls, folder: str | Path, key: dict[str, Any]) -> EpochCheckpoint:
        """A checkpoint in ``folder`` whose file name is a digest of ``key``.

        For training that several callers may take up (a search trial retried under another
        number, in whichever process): whoever trains the same thing finds the same file.
        """
        digest = hashlib.sha256(_canonical(key).encode()).hexdigest()[:16]
        return cls(Path(folder) / f"{digest}.pt", key)

    def seconds_since(self, start: float) -> float:
        """Training seconds from ``start`` (a ``time.perf_counter()``), plus those of the killed runs resumed."""
        return self.seconds_before + time.perf_counter() - start

    def discard(self) -> None:
        """Remove the file (the training finished and its result is saved)."""
        self.path.unlink(missing_ok=True)


def _canonical(key: dict[str, Any]) -> str:
    return json.dumps(key, sort_keys=True, default=str)
