"""The pipeline's stages as functions: train the cloud model, train a compatible edge model,
evaluate paragon / homogeneous / cross retrieval. The CLI and the search call these."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from hetero.data import Dataset, Preprocess, holdout_mask, resolve_augment
from hetero.errors import UserError
from hetero.metrics import RetrievalResult, embedding_collapse, gap_closed_entry, result_status, retrieval_metrics
from hetero.models import CloudModel, EdgeModel, build_edge, build_net
from hetero.training import (
    CLOUD_DEFAULTS,
    EDGE_DEFAULTS,
    LABEL_FREE_TERMS,
    CloudTargets,
    EpochCheckpoint,
    TrainConfig,
    TrainViews,
    train_embedding,
)

__all__ = [
    "train_cloud",
    "train_edge",
    "cloud_from_edge",
    "evaluate_compat",
    "evaluate_cloud",
    "default_preprocess",
    "CompatEvaluation",
]


@contextlib.contextmanager
def _seeded(seed: int):
    """Initialise weights from ``seed`` alone, leaving the caller's random state untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def default_preprocess(size: int, channels: int) -> Preprocess:
    """Centre ``[0, 1]`` pixels on 0 with unit-ish range, per channel."""
    return Preprocess(size=size, channels=channels, mean=(0.5,) * channels, std=(0.5,) * channels)


def train_cloud(
    train: Dataset,
    arch: dict,
    embed_dim: int = 128,
    config: TrainConfig = CLOUD_DEFAULTS,
    device: torch.device | None = None,
    seed: int = 0,
    checkpoint: EpochCheckpoint | None = None,
) -> CloudModel:
    """Train a cloud model of architecture ``arch`` with its own cosine classifier (``checkpoint``:
    see :func:`hetero.training.run_epochs`)."""
    from hetero.search_spaces import get_space

    preprocess = default_preprocess(get_space(arch["space"]).resolution(arch), train.images.shape[1])
    source = {"type": "space", "arch": arch, "in_channels": preprocess.channels}
    with _seeded(seed):
        net = build_net(source, embed_dim)
    kind = resolve_augment(config.augment, train.images)
    views = TrainViews(train.images, preprocess, kind, seed=seed)
    head, history = train_embedding(net, views, train.labels, config, device=device, seed=seed, description="cloud",
                                    checkpoint=checkpoint)
    _recalibrate(net, train.images, preprocess)
    meta = {"train": config.to_dict(), "history": history, "data": train.spec,
            "schedule": _schedule(config, len(train.labels), kind, views.mode)}
    return _cloud_with_head(net, preprocess, embed_dim, meta, source, head, train.labels, config.metric_scale)


def _cloud_with_head(
    net: torch.nn.Module,
    preprocess: Preprocess,
    embed_dim: int,
    meta: dict,
    source: dict,
    head: torch.Tensor,
    labels: np.ndarray,
    scale: float,
) -> CloudModel:
    """A frozen cloud model whose classifier is the trained cosine ``head`` (rows: sorted classes)."""
    model = CloudModel(
        net=net.cpu().eval().requires_grad_(False),
        preprocess=preprocess,
        embed_dim=embed_dim,
        meta=meta,
        source=source,
        classifier=head / head.norm(dim=1, keepdim=True).clamp_min(1e-12),
        classes=[int(c) for c in np.unique(labels)],
        scale=scale,
    )
    model.refresh_fingerprint()
    return model


def train_edge(
    cloud: CloudModel,
    train: Dataset,
    arch: dict,
    config: TrainConfig = EDGE_DEFAULTS,
    device: torch.device | None = None,
    seed: int = 0,
    on_epoch: Callable[[int, dict], None] | None = None,
    net: torch.nn.Module | None = None,
    targets: CloudTargets | None = None,
    checkpoint: EpochCheckpoint | None = None,
    unlabeled: Dataset | None = None,
    protocol: str | None = None,
) -> EdgeModel:
    """Train an edge model of architecture ``arch`` against the frozen ``cloud``.

    Where ``config.val_fraction`` is set and the data allows it, part of ``train`` is held out
    (:func:`hetero.data.holdout_mask`), each epoch is scored by its cross mAP on it
    (``val_cross_map`` in the history, beside ``val_homogeneous_map``) and the weights returned are
    the best epoch's among those compatible on it (:func:`keep_score`).

    Args:
        net: start from these weights (e.g. a subnet extracted from a supernet) instead of
            a fresh network of ``arch``; a ``cloud_pruned`` ``arch`` without it starts from the
            cloud pruned to ``arch`` (:func:`hetero.models._pruned.start_from_cloud`).
        targets: precomputed cloud targets for ``train`` (saves a cloud pass per trial). They hold
            the unaugmented images' embeddings only, so the edge then trains on the images as they
            are (augmented views need the cloud's embedding of each view).
        checkpoint: saves the training after every epoch; a killed run resumes from it.
        unlabeled: images without labels (any data set; its labels are ignored) for the label-free
            terms, alignment and structure.
        protocol: how ``train`` was split from its test part, for the validation hold-out
            (``None``: by the number of classes, as the split's default).

    Returns:
        The edge model, its own trained cosine head in ``head`` (:func:`cloud_from_edge` turns
        the pair into a cloud model: a backward-compatible update of ``cloud``). ``meta`` records
        the schedule (steps, epochs, augmentation, how targets were made) and the validation.
    """
    from hetero.search_spaces import get_space

    if net is None and arch["space"] == "cloud_pruned" and "cloud" not in arch:
        from hetero.models._pruned import start_from_cloud

        arch, net = start_from_cloud(cloud, arch)  # a pruned copy of the cloud, its weights kept
    preprocess = default_preprocess(get_space(arch["space"]).resolution(arch), train.images.shape[1])
    with _seeded(seed):
        model = build_edge(arch, cloud.embed_dim, preprocess, cloud.fingerprint)
    if net is not None:
        model.net = net
    if unlabeled is not None and not config.uses_label_free:
        flags = [f"--{term}" for term in LABEL_FREE_TERMS]
        raise UserError(f"--unlabeled images feed only the label-free terms: set {', '.join(flags[:-1])} or {flags[-1]} above 0")
    val_mask, val_note = holdout_mask(train, config.val_fraction, protocol, seed)
    fit = train if val_mask is None else train.subset(~val_mask)
    if targets is not None and val_mask is not None:
        targets = targets.subset(~val_mask)
    kind = resolve_augment(config.augment, fit.images)
    samples = config.epochs_for(len(fit.labels)) * config.steps_per_epoch(len(fit.labels)) * config.batch_size
    teacher = cloud if config.uses_cloud and targets is None else None
    # The cloud's pass over the views runs where the edge trains.
    moved_to = device if teacher is not None and device is not None and device.type != "cpu" else None
    if moved_to is not None:
        cloud.to(moved_to)
    try:
        views = TrainViews(fit.images, preprocess, kind, cloud=teacher, clean=None if targets is None else targets.embeddings,
                           views=config.cloud_views, samples=samples, seed=seed)
        if targets is None and config.uses_cloud:
            assert views.clean is not None  # the views were embedded by the cloud (the teacher) above
            targets = CloudTargets.from_embeddings(cloud, views.clean, fit.labels, config.prototype_temperature)
        free = None
        if unlabeled is not None:
            free = TrainViews(unlabeled.images, preprocess, kind, cloud=cloud, views=config.cloud_views,
                              samples=samples, seed=seed + 1)
        validate = _validator(model, cloud, train.subset(val_mask), fit, on_epoch) if val_mask is not None else on_epoch
        head, history = train_embedding(
            model.net, views, fit.labels, config, targets, device=device, seed=seed, on_epoch=validate, description="edge",
            checkpoint=checkpoint, unlabeled=free, keep_best="val_keep_score" if val_mask is not None else None,
        )
    finally:
        if moved_to is not None:
            cloud.to(torch.device("cpu"))
    # A validated model's kept epoch was recalibrated before it was scored; a caller that scores
    # the epochs itself (the search's trials) gets the model it scored, its last epoch as trained.
    if val_mask is None and on_epoch is None:
        _recalibrate(model.net, fit.images, preprocess)
    model.net.cpu().eval()
    schedule = _schedule(config, len(fit.labels), kind, views.mode)
    if free is not None and unlabeled is not None:
        schedule.update(unlabeled_spec=unlabeled.spec, unlabeled_images=len(unlabeled.images), unlabeled_targets=free.mode)
    kept = next((r for r in history if r.get("kept")), None)
    validation = {"note": val_note, "images": int(val_mask.sum()) if val_mask is not None else 0}
    if kept is not None:
        validation.update(best_epoch=kept["epoch"], val_cross_map=kept["val_cross_map"],
                          val_homogeneous_map=kept.get("val_homogeneous_map"), val_compatible=kept.get("val_compatible"),
                          compatible_epochs=sum(bool(r.get("val_compatible")) for r in history))
    model.meta = {"train": config.to_dict(), "history": history, "data": train.spec, "schedule": schedule,
                  "validation": validation}
    model.head = head
    return model


#: Training images that re-estimate the batch norms' statistics (spread evenly over the set).
_BN_IMAGES = 4096


def _recalibrate(net: torch.nn.Module, images: np.ndarray, preprocess: Preprocess) -> None:
    """Re-estimate the batch norms' running statistics of the trained weights on unaugmented images.

    The running averages trail the weights (and start at mean 0, variance 1): after a short
    training a layer whose true variance is tiny is divided by a far larger running one, and in
    eval mode every image maps to nearly the same embedding (a 9-step model here had pairwise
    cosines within 1e-7 of 1 in eval mode, healthy in training mode). An exact pass over the
    images the model will see at test time costs one forward pass and removes the lag.
    """
    from hetero.search_spaces import recalibrate_bn

    if not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in net.modules()):
        return
    pick = np.unique(np.linspace(0, len(images) - 1, min(len(images), _BN_IMAGES)).round().astype(np.int64))
    # Few large batches: the average of per-batch variances misses the spread of batch means.
    recalibrate_bn(net, preprocess.batches(images[pick], 1024))


def _schedule(config: TrainConfig, n: int, kind: str, targets: str) -> dict:
    """How long the training ran and on what views (recorded in the model's meta)."""
    epochs = config.epochs_for(n)
    return {"train_images": n, "epochs": epochs, "steps": epochs * config.steps_per_epoch(n),
            "min_steps": config.min_steps, "augment": kind, "targets": targets}


def keep_score(cross: float, homogeneous: float) -> float:
    """What the kept epoch maximises: validation cross mAP, less 1 where the epoch is not compatible
    there (its queries search its own embeddings better than the cloud's), so that a compatible
    epoch is always kept over an incompatible one, and the best of the incompatible only where no
    epoch is compatible (a long training can carry the edge's own space past the cloud's)."""
    return cross if cross > homogeneous else cross - 1.0


def _validator(model: EdgeModel, cloud: CloudModel, val: Dataset, fit: Dataset,
               then: Callable[[int, dict], None] | None):
    """An ``on_epoch`` that scores the epoch's cross mAP on the held-out ``val`` (then calls ``then``).

    The batch norms are recalibrated on ``fit`` first, so the score is that of the model as it
    would be kept (the kept epoch's weights carry those statistics).
    """
    gallery = cloud.embed(val.images)

    def on_epoch(epoch: int, record: dict) -> None:
        _recalibrate(model.net, fit.images, model.preprocess)
        queries = model.embed(val.images)
        cross = float(retrieval_metrics(queries, gallery, val.labels, val.labels, same_images=True).map)
        homogeneous = float(retrieval_metrics(queries, queries, val.labels, val.labels, same_images=True).map)
        record.update(val_cross_map=cross, val_homogeneous_map=homogeneous, val_compatible=cross > homogeneous,
                      val_keep_score=keep_score(cross, homogeneous))
        if then is not None:
            then(epoch, record)

    return on_epoch


def cloud_from_edge(edge: EdgeModel, train: Dataset) -> CloudModel:
    """The model trained against an old cloud model, as a cloud model in its own right.

    Its classifier is its own trained head (``edge.head``, from :func:`train_edge` on ``train``),
    so a later update can in turn be trained against it; ``meta["compatible_with"]`` names the old
    model's fingerprint.

    Raises:
        ValueError: ``edge`` carries no head (it was loaded from a file, not trained here).
    """
    if edge.head is None:
        raise ValueError("cloud_from_edge needs the head of a model trained in this process (train_edge)")
    head = edge.head
    scale = float(edge.meta.get("train", {}).get("metric_scale", EDGE_DEFAULTS.metric_scale))
    meta = {**edge.meta, "compatible_with": edge.cloud_fingerprint}
    return _cloud_with_head(edge.net, edge.preprocess, edge.embed_dim, meta, edge.source, head, train.labels, scale)


@dataclass
class CompatEvaluation:
    """Retrieval on the test images for the pairings of DESIGN.md.

    Attributes:
        results: ``paragon``, ``homogeneous_edge``, ``cross_torch`` (and any added pairing).
        queries: the edge model's query embeddings.
        gallery: the cloud model's gallery embeddings.
        labels: the test labels.
    """

    results: dict[str, RetrievalResult]
    queries: np.ndarray
    gallery: np.ndarray
    labels: np.ndarray

    @property
    def gap_closed(self) -> float | None:
        """None when the paragon is no better than the homogeneous edge (see ``summary``'s note)."""
        return self._gap()["gap_closed"]

    def _gap(self) -> dict:
        r = self.results
        return gap_closed_entry(r["cross_torch"].map, r["homogeneous_edge"].map, r["paragon"].map)

    @property
    def compatible(self) -> bool:
        """The empirical criterion, moved to the query side: M(q, g) > M(q, q)."""
        return bool(self.results["cross_torch"].map > self.results["homogeneous_edge"].map)

    def collapse(self) -> dict:
        """The collapse check of the edge model's test embeddings (see :func:`hetero.metrics.embedding_collapse`)."""
        return embedding_collapse(self.queries, name="the edge model's test embeddings").to_dict()

    def summary(self) -> dict:
        collapse = self.collapse()
        return {
            **{name: r.summary() for name, r in self.results.items()},
            **self._gap(),
            "compatible": self.compatible,
            "collapsed": collapse["collapsed"],
            "collapse": collapse,
            "status": result_status(self.compatible, collapse["collapsed"]),
        }


def evaluate_compat(cloud: CloudModel, edge: EdgeModel, test: Dataset, gallery: np.ndarray | None = None) -> CompatEvaluation:
    """Leave-one-out retrieval on ``test``: paragon, homogeneous edge and cross (PyTorch).

    ``gallery``: the cloud model's embeddings of ``test.images`` where a caller evaluating several
    edge models has them already (the cloud is usually the costliest network to run).
    """
    g = cloud.embed(test.images) if gallery is None else gallery
    q = edge.embed(test.images)
    labels = test.labels
    results = {
        "paragon": retrieval_metrics(g, g, labels, labels, same_images=True),
        "homogeneous_edge": retrieval_metrics(q, q, labels, labels, same_images=True),
        "cross_torch": retrieval_metrics(q, g, labels, labels, same_images=True),
    }
    return CompatEvaluation(results, q, g, labels)


def evaluate_cloud(cloud: CloudModel, test: Dataset) -> dict[str, float]:
    """The paragon: cloud queries against the cloud gallery, leave-one-out on ``test``."""
    g = cloud.embed(test.images)
    return retrieval_metrics(g, g, test.labels, test.labels, same_images=True).summary()
