"""A final phase killed during a fine-tuning trial, resumed: every requested trial runs.

The kill is simulated in-process: a hook raises an exception that Optuna does not catch (as
SIGKILL, it leaves the trial ``RUNNING``) from the second epoch of the first trained final trial,
after the first epoch's checkpoint is saved; the trial's worker is then made a dead process, as a
killed one is. Fewer final trials than first tries is what lost the killed trial before: its retry
waited behind the other first tries and was never reached.
"""

from __future__ import annotations

import json
import os

import optuna
import pytest

from hetero.cli import main
from hetero.search import _final, knobs_of, open_storage
from hetero.search._first_tries import pending_first_tries
from hetero.training import EDGE_DEFAULTS

TINY = ["--resolutions", "24", "--batch-size", "64", "--bn-images", "64", "--quiet"]
FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
DEAD_WORKER = f"{os.uname().nodename}:{2**22 + 1}:12345"  # above Linux's pid_max: no such process


class Killed(BaseException):
    """Not an ``Exception``: Optuna lets it through and leaves the trial RUNNING, as a kill does."""


def _final_study(out) -> optuna.Study:
    return optuna.load_study(study_name="hetero-search.final", storage=open_storage(None, out)[0])


def test_a_killed_fine_tuning_trial_is_retried_first_and_every_requested_trial_runs(search_setup, monkeypatch):
    root, data = search_setup
    out = root / "final-killed"
    args = ["search", "--cloud", str(root / "cloud"), "--data", data, "--device", "x86-server", "--out", str(out), *TINY,
            "--strategy", "oneshot", "--trials", "10", "--supernet-epochs", "1", "--finalists", "3", "--final-trials", "2",
            "--final-epochs", "2"]
    trained = _final.train_scored
    calls: list[dict] = []

    def killed_in_epoch_2(arch, config, data_, device, seed, net=None, on_score=None, checkpoint=None):
        if on_score is None:  # the reference's training (no trial to report to) is not the one killed
            return trained(arch, config, data_, device, seed, net=net, checkpoint=checkpoint)

        def on_score_then_kill(epoch: int, scores: dict) -> None:
            if epoch == 1:  # the first epoch is checkpointed; the kill comes in the second
                raise Killed()
            on_score(epoch, scores)

        return trained(arch, config, data_, device, seed, net=net, on_score=on_score_then_kill, checkpoint=checkpoint)

    monkeypatch.setattr(_final, "train_scored", killed_in_epoch_2)
    with pytest.raises(Killed):
        main(args)
    study = _final_study(out)
    running = [t for t in study.get_trials() if t.state == optuna.trial.TrialState.RUNNING]
    assert len(running) == 1 and running[0].user_attrs.get("reused") is None
    killed = running[0]
    study._storage.set_trial_user_attr(killed._trial_id, "worker", DEAD_WORKER)
    partial = list((out / "final" / "partial").glob("*.pt"))
    assert len(partial) == 1  # the first epoch of the killed trial

    def recorded(arch, config, data_, device, seed, net=None, on_score=None, checkpoint=None):
        calls.append({"arch": arch, "resumes": checkpoint is not None and checkpoint.path.exists()})
        return trained(arch, config, data_, device, seed, net=net, on_score=on_score, checkpoint=checkpoint)

    monkeypatch.setattr(_final, "train_scored", recorded)
    assert main(args) == 0

    trials = _final_study(out).get_trials()
    finished = [t for t in trials if t.state in FINISHED]
    assert len(finished) == 2
    # The killed trial failed and its retry, the next trial run, finished with its parameters,
    # resuming from the killed trial's checkpoint (which is then removed).
    assert trials[killed.number].state == optuna.trial.TrialState.FAIL
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == killed.number]
    assert len(retries) == 1 and retries[0].params == killed.params and retries[0].state in FINISHED
    assert calls[0]["resumes"] and not list((out / "final" / "partial").glob("*.pt"))
    # Every requested trial ran: the reference's and the killed finalist's, the first tries in order.
    search = optuna.load_study(study_name="hetero-search", storage=open_storage(None, out)[0])
    finalists = _final_study(out).user_attrs["finalists"]
    first = sorted(({"finalist": n, **knobs_of(EDGE_DEFAULTS)} for n in finalists),
                   key=lambda p: search.trials[p["finalist"]].user_attrs.get("reference") != "default")
    assert len(first) >= 3, "fewer first tries than this test needs to show the retry's place in the queue"
    assert pending_first_tries(finished, first[:2]) == []
    summary = json.loads((out / "search.json").read_text())
    complete = [t["number"] for t in summary["pick"]["final_trials"] if t["state"] == "COMPLETE"]
    assert all((out / "final" / f"trial-{n}" / "edge.pt").exists() for n in complete)
