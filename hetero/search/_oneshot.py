"""The oneshot strategy: one weight-sharing supernet aligned to the cloud model, then fast trials.

The supernet is trained once with the sandwich rule (BigNAS): every step the largest, the smallest
and a few random subnets take the same batch, each with the compatibility losses against the
cloud model's targets, and their gradients are accumulated into one update. Its weights are saved
in the run folder, so a re-run (or a second worker) reuses them. A trial then activates its
architecture, re-estimates the batch-norm statistics on a few hundred training images (one
forward pass) and scores the subnet on the validation images (another): no training per trial.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import optuna
import torch
from torch import nn

from hetero.errors import UserError
from hetero.models._files import load_model_file, save_model_file
from hetero.search._cost import CostModel
from hetero.search._data import SearchData
from hetero.search._storage import run_lock
from hetero.training import EpochCheckpoint, TrainConfig, dense_labels, loss_terms, random_shift, run_epochs

__all__ = ["SUPERNET_FILE", "train_supernet", "load_or_train_supernet", "evaluate_subnet", "oneshot_objective"]

SUPERNET_FILE = "supernet.pt"
SUPERNET_FORMAT = "hetero.supernet/1"
PARTIAL_FILE = "supernet.partial.pt"  # the training so far, saved after every epoch


def train_supernet(supernet, data: SearchData, config: TrainConfig, sandwich_random: int, device: torch.device,
                   seed: int = 0, checkpoint: EpochCheckpoint | None = None) -> list[dict]:
    """Train ``supernet`` in place with the sandwich rule and the compatibility losses.

    Args:
        supernet: A :class:`search_spaces.Supernet` whose embedding size is the cloud model's.
        data: The search data (the ``fit`` part is trained on, against ``data.targets``).
        config: Optimiser settings, epochs and loss weights (as for an edge model).
        sandwich_random: Random subnets per step besides the largest and the smallest.
        device: Where to train.
        seed: Fixes the batch order, the random subnets and the augmentation.
        checkpoint: Saves the training after every epoch (with the random subnets' generator); a
            run killed in the middle and started again resumes after its last finished epoch.

    Returns:
        Per-epoch mean loss of each term, summed over the subnets of a step.
    """
    space = supernet.space
    y, classes = dense_labels(data.fit.labels)
    supernet.to(device).train()
    generator = torch.Generator().manual_seed(seed)
    head = nn.Parameter((torch.randn(len(classes), supernet.embed_dim, generator=generator) * 0.01).to(device))
    inputs = {r: data.inputs("fit", r) for r in space.resolutions}
    rng = np.random.default_rng(seed)

    def sandwich_step(idx: torch.Tensor) -> dict[str, float]:
        archs = [space.largest_arch(), space.smallest_arch()] + [space.random_arch(rng) for _ in range(sandwich_random)]
        sums: dict[str, float] = {}
        for arch in archs:
            supernet.set_active(arch)
            x = inputs[arch["resolution"]][idx]
            if config.augment:
                x = random_shift(x, generator)
            terms = loss_terms(supernet(x.to(device)), y[idx].to(device), head, idx, config, data.targets, device)
            (sum(w * v for w, v in terms.values()) / len(archs)).backward()
            for name, (_, value) in terms.items():
                sums[name] = sums.get(name, 0.0) + float(value.detach()) / len(archs)
        return sums

    if checkpoint is not None:
        checkpoint.rngs = (rng,)
    history = run_epochs(supernet, [*supernet.parameters(), head], len(y), config, generator, sandwich_step, "supernet",
                         checkpoint=checkpoint)
    supernet.set_active(space.largest_arch())
    supernet.eval()
    return history


def load_or_train_supernet(run_dir: Path, space, data: SearchData, config: TrainConfig, sandwich_random: int,
                           device: torch.device, seed: int) -> tuple[object, dict]:
    """The run's supernet: loaded from ``run_dir/supernet.pt`` if trained before, else trained and saved.

    Concurrent workers on one run folder train it once: the others wait for the file.

    Returns:
        The supernet (on ``device``) and facts about it (``trained_now``, ``seconds``, ``history``,
        ``path``).

    Raises:
        UserError: The file was trained for another cloud model, data or settings.
    """
    key = {
        "cloud": data.cloud.fingerprint, "data": data.split.train.spec, "split": data.describe(), "space": space.name,
        "resolutions": list(space.resolutions), "embed_dim": data.cloud.embed_dim, "sandwich_random": sandwich_random,
        "seed": seed, "train": config.to_dict(),
    }
    supernet = space.supernet(data.cloud.embed_dim, data.channels)
    path = run_dir / SUPERNET_FILE
    with run_lock(run_dir / ".supernet.lock"):
        if path.exists():
            payload = load_model_file(path, SUPERNET_FORMAT, "supernet")
            # A training setting added to hetero since the file was written reads as its default.
            payload["key"]["train"] = TrainConfig.from_dict(payload["key"].get("train", {})).to_dict()
            if payload["key"] != key:
                diff = sorted(k for k in key if payload["key"].get(k) != key[k])
                raise UserError(
                    f"{path} was trained with other settings ({', '.join(diff)} differ); use another --out, "
                    "or delete the file to retrain it"
                )
            supernet.load_state_dict(payload["state_dict"])
            return supernet.to(device).eval(), {**payload["info"], "trained_now": False, "path": str(path)}
        start = time.perf_counter()
        partial = EpochCheckpoint(run_dir / PARTIAL_FILE, key)
        history = train_supernet(supernet, data, config, sandwich_random, device, seed, checkpoint=partial)
        seconds = partial.seconds_since(start)
        info = {"seconds": seconds, "epochs": config.epochs, "history": history}
        state = {k: v.detach().cpu() for k, v in supernet.state_dict().items()}
        save_model_file(path, {"format": SUPERNET_FORMAT, "key": key, "info": info, "state_dict": state})
        partial.discard()
    return supernet, {**info, "trained_now": True, "path": str(path)}


def evaluate_subnet(supernet, arch: dict, data: SearchData, bn_images: int) -> dict[str, float]:
    """Validation scores of ``arch`` with inherited weights, after batch-norm recalibration.

    This is the whole cost of a oneshot trial, so it does only what the score needs: the
    preprocessed images are cached per resolution (``SearchData.inputs``), the batch-norm
    statistics come from one forward pass over ``bn_images`` training images, the validation
    images are embedded in one more, and both run under ``torch.inference_mode`` (no autograd
    bookkeeping).
    """
    from search_spaces import recalibrate_bn

    supernet.set_active(arch)
    resolution = int(arch["resolution"])
    with torch.inference_mode():
        recalibrate_bn(supernet, data.calibration_batches(resolution, bn_images))
    return data.score(data.embed_val(supernet, resolution))


def oneshot_objective(supernet, data: SearchData, costs: CostModel, bn_images: int) -> Callable[[optuna.Trial], tuple[float, float]]:
    """The trial function: sample an architecture, record its cost, score it with inherited weights."""

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        start = time.perf_counter()
        arch = supernet.space.sample(trial)
        supernet.set_active(arch)
        cost = costs.record(trial, arch, supernet)
        scores = evaluate_subnet(supernet, arch, data, bn_images)
        for key, value in {**scores, "seconds": time.perf_counter() - start}.items():
            trial.set_user_attr(key, value)
        return scores["cross_map"], costs.value(cost)

    return objective
