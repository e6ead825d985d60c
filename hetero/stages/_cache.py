"""Reuse-if-unchanged stages: a stage's folder records the key of the inputs that made it."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hetero._io import read_json, write_json
from hetero.training import EpochCheckpoint

__all__ = ["file_sha", "run_stage", "stage_checkpoint"]


def run_stage(folder: Path, key: dict[str, Any], done_file: str, fresh: bool, work: Callable[[], object], label: str) -> bool:
    """Run ``work`` unless ``folder`` already holds its output for the same ``key``.

    Args:
        folder: the stage's output folder; ``stage.json`` there records ``key`` once ``work`` finished.
        key: everything the output depends on (JSON-serialisable).
        done_file: the file whose presence says the stage finished (e.g. ``cloud.pt``).
        fresh: redo the stage even if its output is current.
        work: writes the stage's output into ``folder``.
        label: the stage's name in the one line printed.

    Returns:
        True if ``work`` ran, False if the stage was reused.
    """
    stamp = folder / "stage.json"
    if not fresh and (folder / done_file).exists() and stamp.exists() and read_json(stamp) == key:
        print(f"[{label}] reusing {folder}")
        return False
    start = time.perf_counter()
    work()
    write_json(stamp, key)
    print(f"[{label}] done in {time.perf_counter() - start:.1f} s")
    return True


def stage_checkpoint(folder: str | Path, key: dict[str, Any], fresh: bool = False) -> EpochCheckpoint:
    """A stage's training checkpoint: a run killed while training resumes the epochs it finished.

    ``fresh`` discards a checkpoint left by an earlier run, so training starts from its first epoch.
    """
    checkpoint = EpochCheckpoint.in_folder(folder, key)
    if fresh:
        checkpoint.discard()
    return checkpoint


def file_sha(path: Path) -> str:
    """The sha256 of a file: a stage key that changes when an upstream stage rewrote its output."""
    from hetero.devices import sha256_file

    return sha256_file(path)
