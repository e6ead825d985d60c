"""One training loop for every model hetero trains: cloud, edge, and search trials.

A step's images come from :class:`hetero.training.TrainViews`: each image's augmented view and the
frozen cloud model's embedding of that same view (cached for a few views per image, or computed in
the step, whichever costs less). The cloud's classifier (its head or class prototypes) is fixed
before the loop, in :class:`CloudTargets`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import cast

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
    decorrelation_loss,
    focal_distillation_loss,
    influence_loss,
    structure_loss,
)
from hetero.training._views import TrainViews

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
    def from_cloud(cls, cloud, images: np.ndarray, labels: np.ndarray, prototype_temperature: float) -> CloudTargets:
        """Embed ``images`` with ``cloud`` and choose its classifier (head or prototypes)."""
        return cls.from_embeddings(cloud, torch.from_numpy(cloud.embed(images)), labels, prototype_temperature)

    @classmethod
    def from_embeddings(cls, cloud, g: torch.Tensor, labels: np.ndarray, prototype_temperature: float) -> CloudTargets:
        """The targets of images whose cloud embeddings ``g`` are already computed."""
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

    def subset(self, mask_or_index: np.ndarray) -> CloudTargets:
        """The targets of some of the images (the classifier is kept as it is)."""
        pick = torch.as_tensor(np.flatnonzero(mask_or_index) if np.asarray(mask_or_index).dtype == bool else mask_or_index)
        return replace(self, embeddings=self.embeddings[pick], rows=self.rows[pick], teacher_correct=self.teacher_correct[pick])


def random_shift(x: torch.Tensor, generator: torch.Generator, max_shift: int = 2) -> torch.Tensor:
    """A random translation of the whole batch (wrap-around roll; the supernet's augmentation)."""
    dx, dy = (torch.randint(-max_shift, max_shift + 1, (2,), generator=generator)).tolist()
    return torch.roll(x, shifts=(dy, dx), dims=(2, 3))


def train_embedding(
    net: nn.Module,
    views: TrainViews,
    labels: np.ndarray,
    config: TrainConfig,
    targets: CloudTargets | None = None,
    device: torch.device | None = None,
    seed: int = 0,
    on_epoch: Callable[[int, dict], None] | None = None,
    description: str = "train",
    checkpoint: EpochCheckpoint | None = None,
    unlabeled: TrainViews | None = None,
    keep_best: str | None = None,
) -> tuple[torch.Tensor, list[dict]]:
    """Train ``net`` (preprocessed images to unit embeddings) with the configured losses.

    Args:
        net: the model to train, in place.
        views: the training images' views (and the cloud's embeddings of them, for the
            compatibility terms).
        labels: ``[N]`` class ids.
        config: optimiser settings and loss weights.
        targets: the frozen cloud model's classifier for the same images; required for the
            compatibility terms.
        device: where to train.
        seed: fixes the batch order and augmentation.
        on_epoch: called after each epoch with its index and mean losses; may raise (pruning).
        description: the progress bar's label.
        checkpoint: saves the training after every epoch and resumes a killed run from it.
        unlabeled: images without labels, for the label-free terms (alignment, structure, decorrelation); each
            step adds a batch of them.
        keep_best: a record entry that ``on_epoch`` sets (``"val_cross_map"``): the weights of the
            epoch where it is highest are the ones kept.

    Returns:
        The model's own trained cosine-classifier weights and the per-epoch loss history.
    """
    device = device or torch.device("cpu")
    if config.uses_cloud and (targets is None or views.clean is None and views.cloud is None):
        raise ValueError("compatibility losses need the cloud model's targets")
    y, classes = dense_labels(labels)
    net.to(device).train()
    generator = torch.Generator().manual_seed(seed)
    head = nn.Parameter((torch.randn(len(classes), _embed_dim(net, views, device), generator=generator) * 0.01).to(device))
    params = [p for p in net.parameters() if p.requires_grad] + [head]
    extra_batch = min(config.batch_size, len(unlabeled)) if unlabeled is not None else 0

    def step(idx: torch.Tensor) -> dict[str, float]:
        batch = views.batch(idx, generator)
        x, free = batch.inputs, None
        if extra_batch:
            assert unlabeled is not None  # extra_batch is 0 without unlabeled images
            more = unlabeled.batch(torch.randint(0, len(unlabeled), (extra_batch,), generator=generator), generator)
            x = torch.cat([x, more.inputs])
        out = net(x.to(device))
        q = out[: len(idx)]
        if extra_batch:
            assert more.cloud is not None  # unlabeled views always carry the cloud's targets
            free = (out[len(idx) :], more.cloud.to(device))
        cloud = batch.cloud.to(device) if batch.cloud is not None else None
        terms = loss_terms(q, y[idx].to(device), head, idx, config, targets, device, cloud=cloud, unlabeled=free)
        cast(torch.Tensor, sum(weight * value for weight, value in terms.values())).backward()
        return {name: float(value.detach()) for name, (_, value) in terms.items()}

    history = run_epochs(net, params, len(views), config, generator, step, description, on_epoch, checkpoint, keep_best)
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
    keep_best: str | None = None,
) -> list[dict]:
    """The loop every trainer shares: epochs of shuffled batches, one-cycle AdamW.

    It trains ``config.epochs_for(n)`` epochs: ``config.epochs``, or more where those would take
    fewer than ``config.min_steps`` optimizer steps.

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
        keep_best: A record entry (set by ``on_epoch``) to maximise: at the end, the module and the
            extra parameters are restored to the epoch where it was highest (the later epoch on a
            tie: it trained longer at a lower learning rate). The best state is checkpointed too.

    Returns:
        The per-epoch mean of each loss term.
    """
    steps_per_epoch = config.steps_per_epoch(n)
    epochs = config.epochs_for(n)
    optimizer, scheduler = one_cycle(params, config, steps_per_epoch, epochs)
    history: list[dict] = []
    best: dict | None = None
    # Trained tensors outside the module (a training head): the module's own are in its state dict.
    in_module = {id(p) for p in module.parameters()}
    extra = [p for p in params if id(p) not in in_module]
    saved = checkpoint.load() if checkpoint is not None else None
    if saved is not None:
        assert checkpoint is not None  # saved comes from it
        _restore(module, extra, saved)
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        generator.set_state(saved["generator"])
        history = list(saved["history"])
        best = saved.get("best")
        print(f"{description}: resuming after epoch {len(history)} of {epochs} from {checkpoint.path}", flush=True)
    bar = progress(total=epochs * steps_per_epoch, desc=description, unit="step",
                   initial=len(history) * steps_per_epoch)
    start = time.perf_counter()
    for epoch in range(len(history), epochs):
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
        if keep_best is not None and keep_best in record and (best is None or record[keep_best] >= best["score"]):
            best = {"score": float(record[keep_best]), "epoch": epoch + 1,
                    "module": {k: v.detach().clone() for k, v in module.state_dict().items()},
                    "extra_params": [p.detach().clone() for p in extra]}
        if checkpoint is not None:
            checkpoint.save({"module": module.state_dict(), "extra_params": [p.detach() for p in extra],
                             "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                             "generator": generator.get_state(), "history": history, "best": best},
                            time.perf_counter() - start)
    bar.close()
    if best is not None:
        _restore(module, extra, best)
        for record in history:
            record["kept"] = record["epoch"] == best["epoch"]
    return history


def _restore(module: nn.Module, extra: list, state: dict) -> None:
    """Put the weights of ``state`` (a kept epoch) back into ``module`` and the extra parameters."""
    module.load_state_dict(state["module"])
    with torch.no_grad():
        for param, value in zip(extra, state["extra_params"]):
            param.copy_(value)


def one_cycle(params, config: TrainConfig, steps_per_epoch: int, epochs: int | None = None):
    """AdamW under the one-cycle learning-rate schedule, for ``epochs`` (default ``config.epochs``) epochs."""
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=config.lr, total_steps=(epochs or config.epochs) * steps_per_epoch, pct_start=0.15
    )
    return optimizer, scheduler


def _embed_dim(net: nn.Module, views: TrainViews, device: torch.device) -> int:
    was = net.training
    net.eval()
    with torch.no_grad():
        dim = int(net(views.clean_inputs(2).to(device)).shape[1])
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
    cloud: torch.Tensor | None = None,
    unlabeled: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> dict[str, tuple[float, torch.Tensor]]:
    """The active loss terms as ``name -> (weight, value)``.

    Args:
        q: ``[B, D]`` the trained model's embeddings of the batch's views.
        y: ``[B]`` their dense class ids (rows of ``head``).
        head: the model's own cosine classifier.
        idx: the batch's image indices (rows of ``targets``).
        config: the loss weights.
        targets: the cloud's classifier and its embeddings of the unaugmented images.
        device: where ``q`` is.
        cloud: ``[B, D]`` the cloud's embeddings of the same views; default the unaugmented ones
            in ``targets`` (right only when the views are the unaugmented images).
        unlabeled: ``(q_u, g_u)`` edge and cloud embeddings of unlabeled views: they join the
            label-free terms (alignment, structure, decorrelation).
    """
    terms: dict[str, tuple[float, torch.Tensor]] = {}
    if config.metric:
        terms["metric"] = (config.metric, cosine_classifier_loss(q, head, y, config.metric_scale))
    if targets is None:
        return terms
    g = cloud if cloud is not None else targets.embeddings[idx].to(device)
    rows = targets.rows[idx].to(device)
    classifier = targets.classifier.to(device)
    q_free, g_free = (torch.cat([q, unlabeled[0]]), torch.cat([g, unlabeled[1]])) if unlabeled is not None else (q, g)
    if config.influence:
        terms["influence"] = (config.influence, influence_loss(q, classifier, rows, targets.scale))
    if config.alignment:
        terms["alignment"] = (config.alignment, alignment_loss(q_free, g_free, config.alignment_l2))
    if config.contrastive:
        terms["contrastive"] = (config.contrastive, contrastive_loss(q, g, rows, config.contrastive_temperature))
    if config.structure:
        terms["structure"] = (config.structure, structure_loss(q_free, g_free, config.structure_temperature))
    if config.decorrelation:
        terms["decorrelation"] = (config.decorrelation, decorrelation_loss(q_free, g_free, config.structure_temperature))
    if config.focal:
        w = classifier / classifier.norm(dim=1, keepdim=True).clamp_min(1e-12)
        student, teacher = targets.scale * q @ w.T, targets.scale * g @ w.T
        # Whether the reference is right on this very view (the cached flag is the unaugmented image's).
        teacher_correct = teacher.argmax(1) == rows if cloud is not None else targets.teacher_correct[idx].to(device)
        if config.focal_head == "own":
            # PCT's form: the model's own classifier against the reference's, class for class.
            own = head / head.norm(dim=1, keepdim=True).clamp_min(1e-12)
            assert targets.columns is not None  # set whenever the targets come from a classifier
            student, teacher = config.metric_scale * q @ own.T, teacher[:, targets.columns.to(device)]
        terms["focal"] = (
            config.focal,
            focal_distillation_loss(
                student,
                teacher,
                teacher_correct,
                config.focal_alpha,
                config.focal_beta,
                config.focal_temperature,
            ),
        )
    return terms
