"""Per-epoch checkpoints: a killed training resumes after its last finished epoch, with the same result."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from hetero.training import EDGE_DEFAULTS, EpochCheckpoint, run_epochs

ENV = {**os.environ, "HETERO_THREADS": "1", "PYTHONWARNINGS": "ignore"}


class _Stop(Exception):
    pass


def _train(checkpoint: EpochCheckpoint | None, stop_after: int | None = None) -> tuple[nn.Module, list[dict]]:
    """Three epochs of a small regression whose steps also draw from a numpy generator (as the
    supernet's random subnets do), stopped with an exception after ``stop_after`` epochs."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))
    extra = nn.Parameter(torch.zeros(2))  # a trained tensor outside the module, like a training head
    x, y = torch.randn(64, 4, generator=torch.Generator().manual_seed(1)), torch.randn(64, 2, generator=torch.Generator().manual_seed(2))
    rng = np.random.default_rng(5)
    if checkpoint is not None:
        checkpoint.rngs = (rng,)
    generator = torch.Generator().manual_seed(3)

    def step(idx: torch.Tensor) -> dict[str, float]:
        noise = float(rng.normal()) * 0.01 + float(torch.rand(1, generator=generator)) * 0.01
        loss = ((net(x[idx]) + extra - y[idx]) ** 2).mean() + noise
        loss.backward()
        return {"loss": float(loss)}

    def on_epoch(epoch: int, record: dict) -> None:
        record["checked"] = float(net[0].weight.sum())  # what on_epoch adds is saved with the epoch
        if stop_after is not None and epoch + 1 == stop_after:
            raise _Stop  # before the epoch's save: like a kill during the evaluation

    config = dataclasses.replace(EDGE_DEFAULTS, epochs=3, batch_size=16)
    history = run_epochs(net, [*net.parameters(), extra], len(x), config, generator, step, "test", on_epoch, checkpoint)
    net.extra = extra
    return net, history


def _same(a: nn.Module, b: nn.Module) -> bool:
    return all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items()) and torch.equal(a.extra, b.extra)


def test_a_resumed_training_equals_an_uninterrupted_one(tmp_path, capsys):
    whole, whole_history = _train(None)
    path = tmp_path / "partial.pt"
    key = {"what": "test"}
    with pytest.raises(_Stop):
        _train(EpochCheckpoint(path, key), stop_after=3)
    assert path.exists()
    resumed_checkpoint = EpochCheckpoint(path, key)
    resumed, history = _train(resumed_checkpoint)
    assert "resuming after epoch 2 of 3" in capsys.readouterr().out
    assert history == whole_history and _same(resumed, whole)
    assert all("checked" in record for record in history)
    assert resumed_checkpoint.seconds_before > 0
    resumed_checkpoint.discard()
    assert not path.exists()


def test_a_checkpoint_of_other_training_or_a_torn_file_is_ignored(tmp_path, capsys):
    whole, _ = _train(None)
    path = tmp_path / "partial.pt"
    with pytest.raises(_Stop):
        _train(EpochCheckpoint(path, {"what": "other"}), stop_after=1)
    fresh, _ = _train(EpochCheckpoint(path, {"what": "test"}))
    assert _same(fresh, whole) and "resuming" not in capsys.readouterr().out
    path.write_bytes(b"not a checkpoint")
    fresh, _ = _train(EpochCheckpoint(path, {"what": "test"}))
    assert _same(fresh, whole)


def _hetero(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hetero", *args], env=ENV, capture_output=True, text=True, timeout=300)


def _epochs(partial) -> int:
    """The epochs an epoch checkpoint holds (``partial``'s name may be a glob pattern: one named by a digest)."""
    found = list(partial.parent.glob(partial.name))
    assert len(found) == 1, found
    return len(torch.load(found[0], weights_only=True)["history"])


def _supernet_command(root, data, out) -> list[str]:
    return ["search", "--cloud", str(root / "cloud"), "--data", data, "--device", "x86-server",
            "--out", str(out), "--strategy", "oneshot", "--trials", "2", "--supernet-epochs", "4", "--final-trials", "0",
            "--sandwich-random", "1", "--resolutions", "24", "--batch-size", "32", "--bn-images", "64", "--quiet"]


def test_kill_9_while_the_supernet_trains_then_resume_loses_no_epoch(search_setup, kill_9_at):
    root, data = search_setup
    killed, whole = root / "supernet-killed", root / "supernet-whole"
    partial = killed / "supernet.partial.pt"
    # The first of the 4 epochs trains the largest subnet alone (supernet.warmup.pt); the 3 sandwich
    # epochs follow, each step on the largest, the smallest and one random subnet (whose draws the
    # checkpoint must restore). The kill comes after the second sandwich epoch's checkpoint.
    kill_9_at(_supernet_command(root, data, killed), HETERO_STOP_CHECKPOINT=f"{partial}:2")
    assert _epochs(partial) == 2 and (killed / "supernet.warmup.pt").exists() and not (killed / "supernet.pt").exists()

    resumed = _hetero(_supernet_command(root, data, killed))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "supernet: resuming after epoch 2 of 3" in resumed.stdout
    assert not partial.exists() and not (killed / "supernet.warmup.pt").exists()  # the finished supernet replaced them
    uninterrupted = _hetero(_supernet_command(root, data, whole))
    assert uninterrupted.returncode == 0, uninterrupted.stderr[-2000:]
    a = torch.load(killed / "supernet.pt", weights_only=True)
    b = torch.load(whole / "supernet.pt", weights_only=True)
    assert len(a["info"]["history"]) == 4 and a["info"]["history"] == b["info"]["history"]
    assert all(torch.equal(v, b["state_dict"][k]) for k, v in a["state_dict"].items())


def test_kill_9_during_the_search_fine_tuning_then_resume_loses_no_epoch(search_setup, kill_9_at):
    """The reference training and a final trial each resume after their last finished epoch."""
    import optuna

    from hetero.models import load_edge

    root, data = search_setup

    def command(out) -> list[str]:
        return ["search", "--cloud", str(root / "cloud"), "--data", data, "--device", "x86-server",
                "--out", str(out), "--strategy", "oneshot", "--trials", "2", "--supernet-epochs", "1", "--final-trials", "2",
                "--finalists", "1", "--final-epochs", "3", "--resolutions", "24", "--batch-size", "32", "--bn-images", "64",
                "--quiet"]

    killed, whole = root / "fine-tune-killed", root / "fine-tune-whole"
    # Killed after the reference's second epoch, then (the same command again) after a final trial's second.
    kill_9_at(command(killed), HETERO_STOP_CHECKPOINT=f"{killed / 'reference' / 'train.partial.pt'}:2")
    assert _epochs(killed / "reference" / "train.partial.pt") == 2
    kill_9_at(command(killed), HETERO_STOP_CHECKPOINT=f"{killed / 'final' / 'partial' / '*.pt'}:2")
    assert _epochs(killed / "final" / "partial" / "*.pt") == 2
    resumed = _hetero(command(killed))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "edge: resuming after epoch 2 of 3" in resumed.stdout
    assert not list((killed / "final" / "partial").glob("*.pt"))
    uninterrupted = _hetero(command(whole))
    assert uninterrupted.returncode == 0, uninterrupted.stderr[-2000:]

    reference = json.loads((killed / "reference" / "reference.json").read_text())
    assert len(reference["val_history"]) == 3  # the epochs before the kill kept their validation scores
    assert reference["val_history"] == json.loads((whole / "reference" / "reference.json").read_text())["val_history"]
    trials = optuna.load_study(study_name="hetero-search.final", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(killed / "study.journal")))).get_trials()
    failed = [t for t in trials if t.state == optuna.trial.TrialState.FAIL]
    assert len(failed) == 1
    retry = next(t for t in trials if t.system_attrs.get("failed_trial") == failed[0].number)
    assert retry.state == optuna.trial.TrialState.COMPLETE and retry.params == failed[0].params
    # (Which architecture a final trial trains depends on the search's sampler, seeded per process,
    # so the uninterrupted run is no reference here.) The retry's model holds all 3 epochs, the
    # first ones those the killed trial trained and reported before the kill.
    history = load_edge(killed / "final" / f"trial-{retry.number}").meta["history"]
    assert [r["epoch"] for r in history] == [1, 2, 3]
    assert all(history[e]["val"]["cross_map"] == failed[0].intermediate_values[e] for e in range(2))
    assert sorted(retry.intermediate_values) == [2] and retry.value == history[-1]["val"]["cross_map"]


def test_kill_9_during_hetero_train_then_the_same_command_resumes_it(search_setup, kill_9_at):
    from hetero.models import load_edge

    root, data = search_setup

    def command(out) -> list[str]:
        return ["train", "--cloud", str(root / "cloud"), "--data", data, "--epochs", "3", "--out", str(out), "--quiet"]

    killed, whole = root / "edge-killed", root / "edge-whole"
    kill_9_at(command(killed), HETERO_STOP_CHECKPOINT=f"{killed / 'train.partial.pt'}:2")
    assert _epochs(killed / "train.partial.pt") == 2 and not (killed / "edge.pt").exists()
    resumed = _hetero(command(killed))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "edge: resuming after epoch 2 of 3" in resumed.stdout
    assert not (killed / "train.partial.pt").exists()
    assert _hetero(command(whole)).returncode == 0
    a, b = load_edge(killed), load_edge(whole)
    assert len(a.meta["history"]) == 3 and a.meta["history"] == b.meta["history"]
    assert all(torch.equal(v, b.net.state_dict()[k]) for k, v in a.net.state_dict().items())
