"""Time a search's units of work on this machine: a supernet step, a oneshot trial, a training step,
the test figures written at the end.

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
from hetero.search._nets import fresh_net, reference_arch

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
    times the training step and the validation pass only. The reference (``_final.train_reference``)
    is timed too where its training is not also the default's first final trial.
    """
    n = min(batch_size, len(data.fit.labels))
    idx = torch.arange(n)
    g = data.targets.embeddings[idx].to(device)
    supernet_step = trial = 0.0
    if oneshot:
        supernet_step, trial = _time_oneshot(space, data, costs, idx, g, sandwich_random, bn_images, device)
    per_epoch = steps_per_epoch(len(data.fit.labels), batch_size)
    default = space.default_arch()
    arch, net = fresh_net(default, data.cloud, data.channels)
    train_step, val_pass = _time_epoch_parts(data, arch, net.to(device), idx, g, device)
    reference = reference_arch(space)
    reference_epoch = 0.0
    # The reference is trained apart from the final trials where it cannot be one of them: an
    # architecture of another space (a cloud_pruned search's), or the default over the budget.
    if reference != default:
        ref_arch, ref_net = fresh_net(reference, data.cloud, data.channels)
        ref_step, ref_val = _time_epoch_parts(data, ref_arch, ref_net.to(device), idx, g, device)
        reference_epoch = ref_step * per_epoch + ref_val
    elif any(c > 0 for c in costs.constraints(costs.measure(reference)).values()):
        reference_epoch = train_step * per_epoch + val_pass
    return PhaseCosts(supernet_step, trial, train_step, val_pass, per_epoch, _time_test_figures(data, arch, net), reference_epoch)


def _time_epoch_parts(data: SearchData, arch: dict, net: torch.nn.Module, idx: torch.Tensor, g: torch.Tensor,
                      device: torch.device) -> tuple[float, float]:
    """Seconds of one training step of ``net`` and of scoring it on the validation images."""
    resolution = int(arch["resolution"])
    net.train()
    x = data.inputs("fit", resolution)[idx].to(device)
    return _timed(lambda: _train_step(net, x, g)), _timed(lambda: data.score(data.embed_val(net, resolution)))


def _time_test_figures(data: SearchData, arch: dict, net: torch.nn.Module, ranked: int = 2000) -> float:
    """Seconds of the test figures of the pick and the default architecture (``_run._write_outputs``).

    The cloud embeds the test images once, each edge model embeds them, and each evaluation ranks
    them three times (paragon, homogeneous, cross). Embedding is timed per image on raw images of
    the validation part, resizing included (the test split is not touched before its figures; the
    default architecture ``arch``, ``net`` stands in for the pick); ranking on stand-in embeddings of
    ``ranked`` images, scaled to the test split's size (every query against every image: 141 s of
    the search on full Omniglot, one core, once left out of the plan and the ETA).
    """
    from hetero.metrics import retrieval_metrics
    from hetero.models import EdgeModel
    from hetero.pipeline import default_preprocess

    n_test = len(data.split.test.labels)
    images = data.val.images[:512]
    edge = EdgeModel(net, default_preprocess(int(arch["resolution"]), data.channels), data.cloud.embed_dim, arch=arch)
    cloud_image = _timed(lambda: data.cloud.embed(images)) / len(images)
    edge_image = _timed(lambda: edge.embed(images)) / len(images)
    m = min(ranked, n_test)
    rng = np.random.default_rng(0)
    stand_in = rng.standard_normal((m, data.cloud.embed_dim)).astype(np.float32)
    labels = rng.integers(0, max(2, m // 20), m)
    # Every query sorts every image: n^2 log n (measured on full Omniglot's 13,180 test images: 21.4 s a
    # ranking, 22.8 s scaled from 2,000 stand-ins; 18.4 s without the log).
    scale = (n_test / m) ** 2 * (np.log(n_test) / np.log(m) if m > 1 else 1.0)
    rank = _timed(lambda: retrieval_metrics(stand_in, stand_in, labels, labels, same_images=True)) * scale
    return n_test * (cloud_image + 2 * edge_image) + 6 * rank


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
