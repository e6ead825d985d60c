"""The standalone strategy: every trial trains its own architecture for a few epochs.

The trial samples an architecture and the training knobs, trains with the compatibility losses
(``hetero.pipeline.train_edge``), and after every epoch scores the network on the validation
images; with a pruner, that intermediate cross mAP is reported and a poor trial is stopped early.
An architecture over the device's budget is pruned before it trains.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace

import optuna
import torch

from hetero.pipeline import train_edge
from hetero.search._config import SearchConfig
from hetero.search._cost import CostModel
from hetero.search._data import SearchData
from hetero.search._knobs import sample_knobs
from hetero.search._nets import fresh_net
from hetero.training import EpochCheckpoint, TrainConfig

__all__ = ["standalone_objective", "train_scored"]


def train_scored(arch: dict, train_config: TrainConfig, data: SearchData, device: torch.device, seed: int,
                 net: torch.nn.Module | None = None, on_score: Callable[[int, dict], None] | None = None,
                 checkpoint: EpochCheckpoint | None = None):
    """Train an edge model of ``arch`` on the search data, scoring it on validation after each epoch.

    Args:
        arch: The architecture.
        train_config: Epochs, optimiser and loss weights.
        data: The search data.
        device: Where to train.
        seed: Fixes initialisation and batch order.
        net: Initial weights (a subnet extracted from a supernet); a fresh network by default (in
            ``cloud_pruned``, the cloud pruned to ``arch``: see :func:`hetero.search._nets.fresh_net`).
        on_score: Called with the epoch and its validation scores; may raise ``TrialPruned``.
        checkpoint: Saves the training after every epoch; a killed training resumes from it
            (``on_score`` is then called for the epochs trained after the resume only).

    Returns:
        The trained :class:`hetero.models.EdgeModel` (each epoch's validation scores under
        ``"val"`` in its ``meta["history"]``) and the validation scores of the model returned.
    """
    if net is None:
        arch, net = fresh_net(arch, data.cloud, data.channels, seed)

    def on_epoch(epoch: int, record: dict) -> None:
        record["val"] = data.score(data.embed_val(net, int(arch["resolution"])))
        if on_score is not None:
            on_score(epoch, dict(record["val"]))

    edge = train_edge(data.cloud, data.fit, arch, train_config, device, seed, on_epoch, net=net, targets=data.targets,
                      checkpoint=checkpoint)
    # Scored again, not taken from the last epoch's record: the trainer may change the weights after
    # it (batch-norm statistics re-estimated), and a training resumed after its last epoch runs none.
    return edge, data.score(data.embed_val(edge.net, int(arch["resolution"])))


def standalone_objective(space, data: SearchData, costs: CostModel, config: SearchConfig, base: TrainConfig,
                         device: torch.device) -> Callable[[optuna.Trial], float | tuple[float, float]]:
    """The trial function: sample an architecture and knobs, train a few epochs, score on validation."""
    assert config.epochs is not None  # the budget resolves every length before the search runs
    base = replace(base, epochs=config.epochs, batch_size=config.batch_size)

    def objective(trial: optuna.Trial) -> float | tuple[float, float]:
        start = time.perf_counter()
        arch = space.sample(trial)
        train_config = sample_knobs(trial, base)
        cost = costs.record(trial, arch)
        if not trial.user_attrs["feasible"]:
            trial.set_user_attr("pruned_because", "over the device budget")
            trial.set_user_attr("seconds", time.perf_counter() - start)
            raise optuna.TrialPruned("over the device budget")

        training = time.perf_counter()

        def on_score(epoch: int, scores: dict) -> None:
            # Seconds an epoch (its training and validation), without the cost and the last scoring
            # around them: what a fine-tuning epoch of this network costs, which sizes the final phase.
            epoch_seconds = (time.perf_counter() - training) / (epoch + 1)
            for key, value in {**scores, "epochs_trained": epoch + 1, "epoch_seconds": epoch_seconds}.items():
                trial.set_user_attr(key, value)
            if config.prunes:
                trial.report(scores["cross_map"], epoch)
                if trial.should_prune():
                    trial.set_user_attr("pruned_because", f"validation cross mAP {scores['cross_map']:.4f} after epoch {epoch + 1}")
                    trial.set_user_attr("seconds", time.perf_counter() - start)
                    raise optuna.TrialPruned()

        _, scores = train_scored(arch, train_config, data, device, config.seed, on_score=on_score)
        for key, value in {**scores, "seconds": time.perf_counter() - start}.items():
            trial.set_user_attr(key, value)
        if config.prunes:
            return scores["cross_map"]
        return scores["cross_map"], costs.value(cost)

    return objective
