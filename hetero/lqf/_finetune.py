"""LQF: fine-tune a trained model as a linear model with a convex, K-FAC-preconditioned loss.

Achille et al., "LQF: Linear Quadratic Fine-Tuning" (CVPR 2021): the fine-tuned model is the
first-order Taylor expansion of the trained network around its weights ``w0``,
``u(x) = f(x; w0) + J(x; w0) delta``, with three changes that make such a linear model train as
well as the network: leaky ReLUs (so off units still contribute features), a squared loss
instead of cross-entropy (so the problem in ``delta`` is a convex quadratic) and K-FAC
preconditioning (its curvature is the constant Gauss-Newton matrix at ``w0``).

Here the squared loss has two terms on ``u(x) / |f(x; w0)|`` (divided by a constant per image, so
the loss stays quadratic; the embedding used for search is ``u(x) / |u(x)|``):

- compatibility: the squared distance to the cloud model's unit embedding of the image;
- classes: the squared error of the cosine scores against the cloud's class prototypes (the
  normalised mean cloud embedding of each training class, fixed) to one-hot targets;

plus a ridge ``|delta|^2`` that keeps the model near the one it starts from.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import cast

import numpy as np
import torch
from tqdm.auto import tqdm

from hetero.data import Dataset, resolve_augment
from hetero.errors import UserError
from hetero.lqf._kfac import KFAC
from hetero.lqf._linearize import LinearizedNet, leaky_copy, split_norm, tangent_forward
from hetero.lqf._space import lqf_arch
from hetero.models import CloudModel, EdgeModel
from hetero.training import TrainViews

__all__ = ["LQFConfig", "lqf_finetune", "as_edge"]


@dataclass(frozen=True)
class LQFConfig:
    """LQF's settings.

    Attributes:
        epochs: passes over the training images.
        batch_size: images per step.
        lr: fraction of the step that minimises the batch's quadratic along the K-FAC direction
            and the previous step (1: the whole step).
        slope: the leaky ReLUs' negative slope. Default 0 (plain ReLU): LQF's leaky ReLU is meant for
            a network trained with it; on one trained with ReLU a slope changes ``f(x; w0)`` itself
            (Omniglot, 5 images per class: cross mAP 0.257 before, 0.232 at slope 0.02, 0.108
            at 0.1 with delta = 0; benchmarks/README.md), so it is opt-in.
        compat: weight of the squared distance to the cloud's embeddings.
        classes: weight of the one-hot squared loss on the cloud-prototype scores.
        ridge: weight of ``|delta|^2 / 2``.
        damping: K-FAC damping, relative to the curvature's mean eigenvalue.
        kfac_images: images whose outputs estimate the curvature (once, at ``w0``).
        augment: ``auto``, ``none``, ``glyph`` or ``photo`` (:func:`hetero.data.resolve_augment`):
            each step sees one of ``views`` fixed views per image, with the cloud's embedding of
            that view as its target (the loss is the mean over views: still a convex quadratic).
        views: views per image, the first the image as it is. 8: at 5 images per class it kept LQF's
            NFR at or below plain fine-tuning's on three Omniglot seeds (4 left two of them one flip
            above) and on three tiny-imagenet-100 seeds, at higher mAP (benchmarks/README.md).
    """

    epochs: int = 8
    batch_size: int = 64
    lr: float = 0.5
    slope: float = 0.0
    compat: float = 1.0
    classes: float = 1.0
    ridge: float = 1e-4
    damping: float = 1e-2
    kfac_images: int = 512
    augment: str = "auto"
    views: int = 8

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise UserError("LQF needs --epochs >= 1 and a batch size >= 1")
        if not 0 <= self.slope < 1:
            raise UserError(f"LQF's leaky slope {self.slope} must be in [0, 1)")
        if self.lr <= 0 or self.damping <= 0:
            raise UserError("LQF's learning rate and damping must be > 0")
        if self.compat < 0 or self.classes < 0 or self.compat + self.classes == 0:
            raise UserError("LQF needs a compatibility or class term weight above 0")

    def to_dict(self) -> dict:
        return asdict(self)


def as_edge(model: EdgeModel | CloudModel) -> tuple[dict, EdgeModel | CloudModel]:
    """The base architecture of a trained edge or cloud model (``--init``), checked for LQF."""
    arch = model.arch if isinstance(model, EdgeModel) else (model.source.get("arch") if model.source.get("type") == "space" else None)
    if arch is None:
        raise UserError("LQF needs a model built from hetero's search spaces; this cloud model wraps a user's network "
                        "(hetero cloud import): fine-tune with --method compat")
    if arch.get("space") in ("lqf", "cloud_pruned"):
        raise UserError(f"LQF cannot start from a {arch['space']} model; start from the model it was made from")
    return arch, model


def _prototypes(gallery: np.ndarray, labels: np.ndarray) -> tuple[torch.Tensor, np.ndarray]:
    classes = np.unique(labels)
    protos = np.stack([gallery[labels == c].mean(0) for c in classes])
    protos /= np.maximum(np.linalg.norm(protos, axis=1, keepdims=True), 1e-12)
    return torch.from_numpy(protos.astype(np.float32)), np.searchsorted(classes, labels)


def lqf_finetune(
    init: EdgeModel | CloudModel,
    cloud: CloudModel,
    train: Dataset,
    config: LQFConfig = LQFConfig(),
    seed: int = 0,
    progress: bool = True,
) -> EdgeModel:
    """Fine-tune ``init`` on ``train`` as LQF's linear model, compatible with ``cloud``.

    Args:
        init: the trained model to start from (an edge model, or a cloud model to fine-tune as
            a query model); its weights are ``w0``.
        cloud: the unchanged gallery model the result stays compatible with.
        train: the new data (images and labels).
        config: the settings.
        seed: shuffling and curvature sampling.
        progress: show a progress bar.

    Returns:
        An edge model whose network is the plain-layer :class:`LinearizedNet` (architecture
        ``lqf``); ``meta`` records the settings, the loss per epoch and the time.
    """
    arch, _ = as_edge(init)
    if init.embed_dim != cloud.embed_dim:
        raise UserError(f"--init's embedding dim {init.embed_dim} differs from the cloud model's {cloud.embed_dim}")
    if train.num_classes < 2:
        raise UserError("LQF's class term needs at least 2 classes in the training data")
    start = time.perf_counter()
    gen = torch.Generator().manual_seed(seed)
    net = LinearizedNet(split_norm(leaky_copy(init.net.cpu(), config.slope)))
    net.arch = lqf_arch(arch, config.slope)
    count = len(train.labels)
    kind = resolve_augment(config.augment, train.images)
    views = TrainViews(train.images, init.preprocess, kind, cloud=cloud, views=config.views,
                       samples=config.views * count, seed=seed)
    assert views.clean is not None  # views made with the cloud keep the clean images' embeddings
    protos, rows = _prototypes(views.clean.numpy(), train.labels)
    onehot = torch.nn.functional.one_hot(torch.from_numpy(rows), len(protos)).float()

    # The loss's Hessian in the scaled output is compat * I + classes * P^T P: sample v with that covariance.
    def sample(shape: torch.Size, g: torch.Generator) -> torch.Tensor:
        v = config.compat ** 0.5 * torch.randn(shape, generator=g)
        return v + config.classes ** 0.5 * torch.randn(shape[0], len(protos), generator=g) @ protos

    pick = torch.randperm(count, generator=gen)[: config.kfac_images]
    chunks = [pick[i:i + config.batch_size] for i in range(0, len(pick), config.batch_size)]
    kfac = KFAC(net.body, config.damping).fit((views.batch(c, gen).inputs for c in chunks), True, sample, seed)

    deltas = net.deltas()
    names = list(deltas)
    previous: dict[str, torch.Tensor] | None = None
    history = []
    bar = tqdm(total=config.epochs * -(-count // config.batch_size), desc="lqf", disable=not progress, leave=False)
    for epoch in range(config.epochs):
        order = torch.randperm(count, generator=gen)
        sums = {"compat": 0.0, "classes": 0.0}
        for i in range(0, len(order), config.batch_size):
            idx = order[i:i + config.batch_size]
            batch = views.batch(idx, gen)
            primal, tangent = tangent_forward(net.body, deltas, batch.inputs)
            radius = primal.detach().norm(dim=1).clamp_min(1e-12)  # f(x; w0)'s norm: a constant
            u = (primal + tangent) / radius[:, None]
            compat = (u - batch.cloud).pow(2).sum(1).mean() / 2
            classes = (u @ protos.T - onehot[idx]).pow(2).sum(1).mean() / 2
            ridge = sum(d.pow(2).sum() for d in deltas.values()) / 2
            loss = config.compat * compat + config.classes * classes + config.ridge * ridge
            grads = dict(zip(names, torch.autograd.grad(loss, [deltas[n] for n in names])))
            with torch.no_grad():
                update = _quadratic_step(net.body, batch.inputs, radius, kfac.precondition(grads), previous, grads,
                                         deltas, protos, config)
                for n in names:
                    deltas[n].add_(update[n])
            previous = update
            sums["compat"] += float(compat.detach()) * len(idx)
            sums["classes"] += float(classes.detach()) * len(idx)
            bar.update()
        record = {"epoch": epoch, **{k: v / count for k, v in sums.items()}}
        history.append(record)
        bar.set_postfix(compat=f"{record['compat']:.4f}", classes=f"{record['classes']:.4f}")
    bar.close()
    net.eval()
    edge = EdgeModel(net, init.preprocess, init.embed_dim, arch=net.arch, cloud_fingerprint=cloud.fingerprint)
    edge.meta = {"method": "lqf", "lqf": config.to_dict(), "history": history, "data": train.spec, "augment": kind,
                 "train_images": len(train.labels), "seconds": time.perf_counter() - start,
                 "init": getattr(init, "fingerprint", "") or init.meta.get("data", ""),
                 "delta_norm": float(sum(d.detach().pow(2).sum() for d in deltas.values()) ** 0.5)}
    return edge


def _dot(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> torch.Tensor:
    return cast(torch.Tensor, sum((a[n] * b[n]).sum() for n in a))


def _quadratic_step(body, x, radius, direction, previous, grads, deltas, protos, config: LQFConfig) -> dict:
    """The step ``alpha * direction + mu * previous`` that minimises the batch's quadratic exactly.

    K-FAC's blocks ignore the coupling between layers, so its raw step overshoots (by about the
    number of blocks); as in Martens & Grosse (2015, section 7) the step size and the momentum
    are solved from the exact quadratic model, here exact because the loss is quadratic in delta:
    its curvature products need one Jacobian-vector product per direction.
    """
    dirs = [direction] if previous is None else [direction, previous]
    outs = [tangent_forward(body, {n: d[n] for n in deltas}, x)[1] / radius[:, None] for d in dirs]

    def curvature(a: torch.Tensor, b: torch.Tensor, da: dict, db: dict) -> torch.Tensor:
        value = config.compat * (a * b).sum(1) + config.classes * ((a @ protos.T) * (b @ protos.T)).sum(1)
        return value.mean() + config.ridge * _dot(da, db)

    k = len(dirs)
    m = torch.zeros(k, k, dtype=torch.float64)
    g = torch.zeros(k, dtype=torch.float64)
    for i in range(k):
        g[i] = float(_dot(grads, dirs[i]))
        for j in range(i, k):
            m[i, j] = m[j, i] = float(curvature(outs[i], outs[j], dirs[i], dirs[j]))
    m += 1e-12 * torch.eye(k, dtype=torch.float64) * m.diagonal().abs().max().clamp_min(1e-30)
    coef = -config.lr * torch.linalg.solve(m, g)
    return {n: sum(float(coef[i]) * dirs[i][n] for i in range(k)) for n in deltas}
