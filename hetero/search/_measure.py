"""Time a search's units of work on this machine: a supernet step, a oneshot trial, a training step.

What ``--time-budget`` plans with (``hetero.search._budget``). Each is timed on the second of two
runs (the first pays for allocation and warm-up), on the run's own data, space and batch size.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from hetero.search._budget import PhaseCosts, steps_per_epoch
from hetero.search._cost import CostModel
from hetero.search._data import SearchData
from hetero.search._nets import fresh_net

__all__ = ["measure_costs"]


def _timed(fn, repeats: int = 2) -> float:
    """Seconds of the last of ``repeats`` calls of ``fn``."""
    seconds = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        seconds = time.perf_counter() - start
    return seconds


def _train_step(net: torch.nn.Module, x: torch.Tensor, g: torch.Tensor) -> None:
    """Forward, an alignment loss and backward: what a training step costs, the optimizer aside."""
    q = net(x)
    (1 - (q * g).sum(1)).mean().backward()


def measure_costs(space, data: SearchData, costs: CostModel, batch_size: int, sandwich_random: int, bn_images: int,
                  device: torch.device, oneshot: bool = True) -> PhaseCosts:
    """Time one sandwich step, one oneshot trial, one training step of the default architecture and a validation pass.

    A trial is timed as the objective runs it: its cost counted on the active subnet, then its
    scores with inherited weights. ``oneshot`` False (a standalone search, which has no supernet)
    times the training step and the validation pass only.
    """
    n = min(batch_size, len(data.fit.labels))
    idx = torch.arange(n)
    g = data.targets.embeddings[idx].to(device)
    supernet_step = trial = 0.0
    if oneshot:
        supernet_step, trial = _time_oneshot(space, data, costs, idx, g, sandwich_random, bn_images, device)
    default = space.default_arch()
    _, net = fresh_net(default, data.cloud, data.channels)
    net = net.to(device).train()
    x = data.inputs("fit", int(default["resolution"]))[idx].to(device)
    train_step = _timed(lambda: _train_step(net, x, g))
    val_pass = _timed(lambda: data.score(data.embed_val(net, int(default["resolution"]))))
    return PhaseCosts(supernet_step, trial, train_step, val_pass, steps_per_epoch(len(data.fit.labels), batch_size))


def _time_oneshot(space, data: SearchData, costs: CostModel, idx: torch.Tensor, g: torch.Tensor, sandwich_random: int,
                  bn_images: int, device: torch.device) -> tuple[float, float]:
    """Seconds of one sandwich step and of one oneshot trial."""
    from hetero.search._oneshot import evaluate_subnet

    rng = np.random.default_rng(0)
    supernet = space.supernet(data.cloud.embed_dim, data.channels).to(device)
    archs = [space.largest_arch(), space.smallest_arch()] + [space.random_arch(rng) for _ in range(sandwich_random)]

    def sandwich() -> None:
        supernet.train()
        for arch in archs:
            supernet.set_active(arch)
            _train_step(supernet, data.inputs("fit", int(arch["resolution"]))[idx].to(device), g)
        supernet.zero_grad(set_to_none=True)

    supernet_step = _timed(sandwich)
    probe = space.random_arch(rng)

    def trial_work() -> None:
        supernet.set_active(probe)
        costs.measure(probe, supernet)
        evaluate_subnet(supernet, probe, data, bn_images)

    return supernet_step, _timed(trial_work)
