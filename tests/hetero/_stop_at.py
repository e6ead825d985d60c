"""``python tests/hetero/_stop_at.py ARGS``: the hetero CLI, frozen (SIGSTOP) at a chosen point for a test to SIGKILL.

A kill timed from outside (poll a checkpoint, then kill) needs a training long enough that the
poll sees the wanted epoch before the run ends: tens of epochs on a loaded machine, most of
them trained only to leave room for the race. Here the process freezes itself at the point the
test names; the test then kills it with SIGKILL, so it loses whatever it held in memory just as
a process killed there at random does, and the training can be a few epochs long.

Environment (one of):
    HETERO_STOP_CHECKPOINT: ``PATTERN:EPOCHS``: stop right after an epoch checkpoint whose path
        matches the glob ``PATTERN`` (fnmatch) is saved holding ``EPOCHS`` epochs.
    HETERO_STOP_TRIAL: ``N``: stop as the N-th standalone search trial of this process (0-based)
        starts training, after it has sampled its parameters.
"""

from __future__ import annotations

import fnmatch
import os
import signal
import sys


def _freeze() -> None:
    os.kill(os.getpid(), signal.SIGSTOP)


def _stop_at_checkpoint(pattern: str, epochs: int) -> None:
    from hetero.training import _checkpoint

    save = _checkpoint.EpochCheckpoint.save

    def save_then_stop(self, state, seconds):
        save(self, state, seconds)
        if fnmatch.fnmatch(str(self.path), pattern) and len(state["history"]) == epochs:
            _freeze()

    _checkpoint.EpochCheckpoint.save = save_then_stop


def _stop_at_trial(number: int) -> None:
    from hetero.search import _standalone

    trained = _standalone.train_scored
    calls = [0]

    def stop_then_train(*args, **kwargs):
        calls[0] += 1
        if calls[0] == number + 1:
            _freeze()
        return trained(*args, **kwargs)

    _standalone.train_scored = stop_then_train


if __name__ == "__main__":
    if "HETERO_STOP_CHECKPOINT" in os.environ:
        where, _, count = os.environ["HETERO_STOP_CHECKPOINT"].rpartition(":")
        _stop_at_checkpoint(where, int(count))
    else:
        _stop_at_trial(int(os.environ["HETERO_STOP_TRIAL"]))
    from hetero.cli import main

    sys.exit(main(sys.argv[1:]))
