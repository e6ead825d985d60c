"""One training loop for every model hetero trains: cloud, edge, and search trials.

The frozen cloud model is run once over the training images before the loop (its embeddings and
logits are the targets), so each step costs only the edge model's forward and backward pass.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from hetero.runtime import progress
from hetero.training._checkpoint import EpochCheckpoint
from hetero.training._config import TrainConfig
from hetero.training._losses import (
    alignment_loss,
    class_prototypes,
    contrastive_loss,
    cosine_classifier_loss,
    focal_distillation_loss,
    influence_loss,
)

__all__ = ["CloudTargets", "train_embedding", "run_epochs", "dense_labels", "loss_terms", "one_cycle", "random_shift"]


def dense_labels(labels: np.ndarray) -> tuple[torch.Tensor, np.ndarray]:
    """Map arbitrary class ids to ``0..K-1``; returns the mapped tensor and the sorted ids."""
    classes, index = np.unique(labels, return_inverse=True)
    return torch.from_numpy(index.astype(np.int64)), classes


@dataclass
class CloudTargets:
    """What the frozen reference (cloud) model says about each training image.

    Attributes:
        embeddings: ``[N, D]`` its unit embeddings.
        classifier: ``[K, D]`` the frozen classifier for the influence loss: its own head where it
            covers the training classes, else class-mean prototypes of ``embeddings``.
        rows: ``[N]`` the classifier row of each image's class.
        scale: logit scale of ``classifier``.
        teacher_correct: ``[N]`` whether the reference classifies each image right (focal weights).
        columns: ``[K']`` the classifier row of each training class in sorted order (the order of
            the trained model's own head), for focal distillation through that head.
    """

    embeddings: torch.Tensor
    classifier: torch.Tensor
    rows: torch.Tensor
    scale: float
    teacher_correct: torch.Tensor
    columns: torch.Tensor | None = None

    @classmethod
    def from_cloud(cls, cloud, images: np.ndarray, labels: np.ndarray, prototype_temperature: float) -> "CloudTargets":
        """Embed ``images`` with ``cloud`` and choose its classifier (head or prototypes)."""
        g = torch.from_numpy(cloud.embed(images))
        covered = cloud.classifier is not None and cloud.classes is not None and set(np.unique(labels)) <= set(cloud.classes)
        if covered:
            row_of = {c: i for i, c in enumerate(cloud.classes)}
            rows = torch.tensor([row_of[int(c)] for c in labels], dtype=torch.int64)
            columns = torch.tensor([row_of[int(c)] for c in np.unique(labels)], dtype=torch.int64)
            classifier, scale = cloud.classifier.float(), cloud.scale
        else:
            rows, classes = dense_labels(labels)
            columns = torch.arange(len(classes))
            classifier, scale = class_prototypes(g, rows, len(classes)), 1.0 / prototype_temperature
        w = classifier / classifier.norm(dim=1, keepdim=True).clamp_min(1e-12)
        teacher_correct = (g @ w.T).argmax(1) == rows
        return cls(g, classifier, rows, float(scale), teacher_correct, columns)


def random_shift(x: torch.Tensor, generator: torch.Generator, max_shift: int = 2) -> torch.Tensor:
    """A random translation of the whole batch (cheap augmentation that keeps content)."""
    dx, dy = (torch.randint(-max_shift, max_shift + 1, (2,), generator=generator)).tolist()
    return torch.roll(x, shifts=(dy, dx), dims=(2, 3))


def train_embedding(
    net: nn.Module,
    inputs: torch.Tensor,
    labels: np.ndarray,
    config: TrainConfig,
    targets: CloudTargets | None = None,
    device: torch.device | None = None,
    seed: int = 0,
    on_epoch: Callable[[int, dict], None] | None = None,
    description: str = "train",
    checkpoint: EpochCheckpoint | None = None,
) -> tuple[torch.Tensor, list[dict]]:
    """Train ``net`` (preprocessed ``inputs`` to unit embeddings) with the configured losses.

    Args:
        net: the model to train, in place.
        inputs: ``[N, C, S, S]`` preprocessed training images.
        labels: ``[N]`` class ids.
        config: optimiser settings and loss weights.
        targets: the frozen cloud model's view of the same images; required for the
            compatibility terms.
        device: where to train.
        seed: fixes the batch order and augmentation.
        on_epoch: called after each epoch with its index and mean losses; may raise (pruning).
        description: the progress bar's label.
        checkpoint: saves the training after every epoch and resumes a killed run from it.

    Returns:
        The model's own trained cosine-classifier weights and the per-epoch loss history.
    """
    device = device or torch.device("cpu")
    if config.uses_cloud and targets is None:
        raise ValueError("compatibility losses need the cloud model's targets")
    y, classes = dense_labels(labels)
    net.to(device).train()
    generator = torch.Generator().manual_seed(seed)
    head = nn.Parameter((torch.randn(len(classes), _embed_dim(net, inputs, device), generator=generator) * 0.01).to(device))
    params = [p for p in net.parameters() if p.requires_grad] + [head]

    def step(idx: torch.Tensor) -> dict[str, float]:
        x = inputs[idx]
        if config.augment:
            x = random_shift(x, generator)
        terms = loss_terms(net(x.to(device)), y[idx].to(device), head, idx, config, targets, device)
        sum(weight * value for weight, value in terms.values()).backward()
        return {name: float(value.detach()) for name, (_, value) in terms.items()}

    history = run_epochs(net, params, len(inputs), config, generator, step, description, on_epoch, checkpoint)
    net.eval()
    return head.detach().cpu(), history


def run_epochs(
    module: nn.Module,
    params: list,
    n: int,
    config: TrainConfig,
    generator: torch.Generator,
    step: Callable[[torch.Tensor], dict[str, float]],
    description: str,
    on_epoch: Callable[[int, dict], None] | None = None,
    checkpoint: EpochCheckpoint | None = None,
) -> list[dict]:
    """The loop every trainer shares: ``config.epochs`` epochs of shuffled batches, one-cycle AdamW.

    Args:
        module: Put in training mode before each epoch (an ``on_epoch`` evaluation may leave it
            in eval mode).
        params: What the optimiser updates.
        n: How many training items; batches are ``config.batch_size`` of their indices.
        config: Epochs, batch size and optimiser settings.
        generator: Shuffles the items (and whatever ``step`` draws from it, in the same order).
        step: Computes the losses of a batch of item indices and calls ``backward`` on them (once,
            or once per subnet of a sandwich step: gradients accumulate until the update);
            returns each loss term's value for the history.
        description: The progress bar's label.
        on_epoch: Called after each epoch with its index and record (the mean losses); may raise
            (pruning), and may add entries to the record, which the history and checkpoint keep.
        checkpoint: Where to save the state after every epoch and to resume from: a killed run
            started again continues after its last finished epoch, with the same result.

    Returns:
        The per-epoch mean of each loss term.
    """
    steps_per_epoch = max(1, n // config.batch_size)
    optimizer, scheduler = one_cycle(params, config, steps_per_epoch)
    history: list[dict] = []
    # Trained tensors outside the module (a training head): the module's own are in its state dict.
    in_module = {id(p) for p in module.parameters()}
    extra = [p for p in params if id(p) not in in_module]
    saved = checkpoint.load() if checkpoint is not None else None
    if saved is not None:
        module.load_state_dict(saved["module"])
        with torch.no_grad():
            for param, value in zip(extra, saved["extra_params"]):
                param.copy_(value)
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        generator.set_state(saved["generator"])
        history = list(saved["history"])
        print(f"{description}: resuming after epoch {len(history)} of {config.epochs} from {checkpoint.path}", flush=True)
    bar = progress(total=config.epochs * steps_per_epoch, desc=description, unit="step",
                   initial=len(history) * steps_per_epoch)
    start = time.perf_counter()
    for epoch in range(len(history), config.epochs):
        module.train()
        order = torch.randperm(n, generator=generator)
        sums: dict[str, float] = {}
        for i in range(steps_per_epoch):
            optimizer.zero_grad(set_to_none=True)
            for name, value in step(order[i * config.batch_size : (i + 1) * config.batch_size]).items():
                sums[name] = sums.get(name, 0.0) + value
            optimizer.step()
            scheduler.step()
            bar.update(1)
        record = {"epoch": epoch + 1, **{k: v / steps_per_epoch for k, v in sums.items()}}
        history.append(record)
        bar.set_postfix({k: f"{v:.3f}" for k, v in record.items() if k != "epoch"})
        # Before the save, so that what on_epoch adds to the record (validation scores) is saved
        # with it; an on_epoch that raises (pruning) ends the training, which needs no checkpoint.
        if on_epoch is not None:
            on_epoch(epoch, record)
        if checkpoint is not None:
            checkpoint.save({"module": module.state_dict(), "extra_params": [p.detach() for p in extra],
                             "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                             "generator": generator.get_state(), "history": history},
                            time.perf_counter() - start)
    bar.close()
    return history


def one_cycle(params, config: TrainConfig, steps_per_epoch: int):
    """AdamW under the one-cycle learning-rate schedule, for ``config.epochs`` epochs."""
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=config.lr, total_steps=config.epochs * steps_per_epoch, pct_start=0.15
    )
    return optimizer, scheduler


def _embed_dim(net: nn.Module, inputs: torch.Tensor, device: torch.device) -> int:
    was = net.training
    net.eval()
    with torch.no_grad():
        dim = int(net(inputs[:2].to(device)).shape[1])
    net.train(was)
    return dim


def loss_terms(
    q: torch.Tensor,
    y: torch.Tensor,
    head: torch.Tensor,
    idx: torch.Tensor,
    config: TrainConfig,
    targets: CloudTargets | None,
    device: torch.device,
) -> dict[str, tuple[float, torch.Tensor]]:
    """The active loss terms as ``name -> (weight, value)``."""
    terms: dict[str, tuple[float, torch.Tensor]] = {}
    if config.metric:
        terms["metric"] = (config.metric, cosine_classifier_loss(q, head, y, config.metric_scale))
    if targets is None:
        return terms
    g = targets.embeddings[idx].to(device)
    rows = targets.rows[idx].to(device)
    classifier = targets.classifier.to(device)
    if config.influence:
        terms["influence"] = (config.influence, influence_loss(q, classifier, rows, targets.scale))
    if config.alignment:
        terms["alignment"] = (config.alignment, alignment_loss(q, g, config.alignment_l2))
    if config.contrastive:
        terms["contrastive"] = (config.contrastive, contrastive_loss(q, g, rows, config.contrastive_temperature))
    if config.focal:
        w = classifier / classifier.norm(dim=1, keepdim=True).clamp_min(1e-12)
        student, teacher = targets.scale * q @ w.T, targets.scale * g @ w.T
        if config.focal_head == "own":
            # PCT's form: the model's own classifier against the reference's, class for class.
            own = head / head.norm(dim=1, keepdim=True).clamp_min(1e-12)
            student, teacher = config.metric_scale * q @ own.T, teacher[:, targets.columns.to(device)]
        terms["focal"] = (
            config.focal,
            focal_distillation_loss(
                student,
                teacher,
                targets.teacher_correct[idx].to(device),
                config.focal_alpha,
                config.focal_beta,
                config.focal_temperature,
            ),
        )
    return terms
