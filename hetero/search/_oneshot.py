"""The oneshot strategy: one weight-sharing supernet aligned to the cloud model, then fast trials.

The supernet is trained once, as once-for-all trains it: the largest subnet alone first, then its
channels sorted by importance (the narrower subnets keep the first ones), then the sandwich rule
(BigNAS): every step the largest, the smallest and a few random subnets take the same view of the
batch, each with the compatibility losses against the cloud model's targets and, in place, an
alignment to the largest subnet's embeddings; their gradients accumulate into one update. Its weights are saved
in the run folder, so a re-run (or a second worker) reuses them. A trial then activates its
architecture, re-estimates the batch-norm statistics on a few hundred training images (one
forward pass) and scores the subnet on the validation images (another): no training per trial.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import cast

import numpy as np
import optuna
import torch
from torch import nn

from hetero.errors import UserError
from hetero.models._files import load_model_file, save_model_file
from hetero.search._cost import CostModel
from hetero.search._data import SearchData
from hetero.search._storage import run_lock
from hetero.training import EpochCheckpoint, TrainConfig, alignment_loss, dense_labels, loss_terms, random_shift, run_epochs

__all__ = ["SUPERNET_FILE", "train_supernet", "load_or_train_supernet", "evaluate_subnet", "oneshot_objective"]

SUPERNET_FILE = "supernet.pt"
SUPERNET_FORMAT = "hetero.supernet/1"
PARTIAL_FILE = "supernet.partial.pt"  # the training so far, saved after every epoch
WARMUP_FILE = "supernet.warmup.pt"  # the largest subnet's epochs, before the channels are sorted
#: What the supernet's training does, in the file's key: a supernet trained otherwise is not reused.
RECIPE = "largest-first, sorted channels, sandwich with in-place distillation"
#: Share of the epochs that train the largest subnet alone (once-for-all trains it first).
WARMUP_SHARE = 0.25


def warmup_epochs(epochs: int) -> int:
    """Epochs that train the largest subnet alone before the channels are sorted (none below 4)."""
    return int(epochs * WARMUP_SHARE) if epochs >= 4 else 0


def train_supernet(supernet, data: SearchData, config: TrainConfig, sandwich_random: int, device: torch.device,
                   seed: int = 0, checkpoint: EpochCheckpoint | None = None,
                   warmup_checkpoint: EpochCheckpoint | None = None) -> list[dict]:
    """Train ``supernet`` in place: the largest subnet first, channels sorted, then the sandwich rule.

    As once-for-all trains: the largest subnet alone for :func:`warmup_epochs` (progressive
    shrinking's first stage), then :meth:`Supernet.sort_channels` so that the first channels of
    every layer, which the narrower subnets keep, are the most important ones, then the sandwich
    rule for the remaining epochs. Every subnet of a sandwich step sees the same view of the batch
    and learns from the cloud's targets *and*, in place, from the largest subnet's embeddings of
    that view (weighted as the alignment term; the largest subnet's are detached).

    Args:
        supernet: A :class:`search_spaces.Supernet` whose embedding size is the cloud model's.
        data: The search data (the ``fit`` part is trained on, against ``data.targets``).
        config: Optimiser settings, epochs and loss weights (as for an edge model).
        sandwich_random: Random subnets per step besides the largest and the smallest.
        device: Where to train.
        seed: Fixes the batch order, the random subnets and the augmentation.
        checkpoint: Saves the sandwich training after every epoch (with the random subnets'
            generator); a run killed in the middle and started again resumes after its last
            finished epoch.
        warmup_checkpoint: The same for the largest subnet's epochs; kept until the caller has
            saved the supernet, so that a resume replays the warm-up (at once) and the sort.

    Returns:
        Per-epoch mean loss of each term (summed over the subnets of a sandwich step), the
        warm-up's epochs first, each record's ``phase`` naming its stage.
    """
    space = supernet.space
    y, classes = dense_labels(data.fit.labels)
    supernet.to(device).train()
    generator = torch.Generator().manual_seed(seed)
    head = nn.Parameter((torch.randn(len(classes), supernet.embed_dim, generator=generator) * 0.01).to(device))
    inputs = {r: data.inputs("fit", r) for r in space.resolutions}
    rng = np.random.default_rng(seed)
    largest = space.largest_arch()
    inplace_weight = config.alignment or 1.0

    def embed(arch: dict, idx: torch.Tensor, view: torch.Tensor) -> torch.Tensor:
        """The subnet's embeddings of the step's view (the same shifts at every resolution)."""
        supernet.set_active(arch)
        x = inputs[arch["resolution"]][idx]
        if config.augment != "none":  # a kind name since issue 14 ("none" switches it off)
            generator.set_state(view)
            x = random_shift(x, generator)
        return supernet(x.to(device))

    def warmup_step(idx: torch.Tensor) -> dict[str, float]:
        terms = loss_terms(embed(largest, idx, generator.get_state()), y[idx].to(device), head, idx, config, data.targets, device)
        cast(torch.Tensor, sum(w * v for w, v in terms.values())).backward()
        return {name: float(value.detach()) for name, (_, value) in terms.items()}

    def sandwich_step(idx: torch.Tensor) -> dict[str, float]:
        archs = [largest, space.smallest_arch()] + [space.random_arch(rng) for _ in range(sandwich_random)]
        view = generator.get_state()
        sums: dict[str, float] = {}
        teacher = None
        for arch in archs:
            q = embed(arch, idx, view)
            terms = loss_terms(q, y[idx].to(device), head, idx, config, data.targets, device)
            if teacher is None:
                teacher = q.detach()  # the largest subnet comes first: the others distil from it
            else:
                terms["inplace"] = (inplace_weight, alignment_loss(q, teacher))
            (cast(torch.Tensor, sum(w * v for w, v in terms.values())) / len(archs)).backward()
            for name, (_, value) in terms.items():
                sums[name] = sums.get(name, 0.0) + float(value.detach()) / len(archs)
        return sums

    history: list[dict] = []
    params = [*supernet.parameters(), head]
    warm = warmup_epochs(config.epochs)
    if warm:
        if warmup_checkpoint is not None:
            warmup_checkpoint.rngs = (rng,)
        records = run_epochs(supernet, params, len(y), replace(config, epochs=warm), generator, warmup_step,
                             "supernet (largest subnet)", checkpoint=warmup_checkpoint)
        history += [{**r, "phase": "largest"} for r in records]
        supernet.sort_channels()
    if checkpoint is not None:
        checkpoint.rngs = (rng,)
    records = run_epochs(supernet, params, len(y), replace(config, epochs=config.epochs - warm), generator, sandwich_step,
                         "supernet", checkpoint=checkpoint)
    history += [{**r, "phase": "sandwich"} for r in records]
    supernet.set_active(largest)
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
        "seed": seed, "train": config.to_dict(), "recipe": RECIPE,
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
        warmup = EpochCheckpoint(run_dir / WARMUP_FILE, key)
        history = train_supernet(supernet, data, config, sandwich_random, device, seed, checkpoint=partial, warmup_checkpoint=warmup)
        # The warm-up's seconds are in its own checkpoint (a resume replays it at once).
        seconds = partial.seconds_since(start) + warmup.seconds_before
        info = {"seconds": seconds, "epochs": config.epochs, "warmup_epochs": warmup_epochs(config.epochs), "recipe": RECIPE,
                "history": history}
        state = {k: v.detach().cpu() for k, v in supernet.state_dict().items()}
        save_model_file(path, {"format": SUPERNET_FORMAT, "key": key, "info": info, "state_dict": state})
        partial.discard()
        warmup.discard()
    return supernet, {**info, "trained_now": True, "path": str(path)}


def evaluate_subnet(supernet, arch: dict, data: SearchData, bn_images: int) -> dict[str, float]:
    """Validation scores of ``arch`` with inherited weights, after batch-norm recalibration.

    This is the whole cost of a oneshot trial, so it does only what the score needs: the
    preprocessed images are cached per resolution (``SearchData.inputs``), the batch-norm
    statistics come from one forward pass over ``bn_images`` training images, the validation
    images are embedded in one more, and both run under ``torch.inference_mode`` (no autograd
    bookkeeping).
    """
    from hetero.search_spaces import recalibrate_bn

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
