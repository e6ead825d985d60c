"""The pipeline's stages as functions: train the cloud model, train a compatible edge model,
evaluate paragon / homogeneous / cross retrieval. The CLI and the search call these."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from hetero.data import Dataset, Preprocess
from hetero.metrics import RetrievalResult, gap_closed, retrieval_metrics
from hetero.models import CloudModel, EdgeModel, build_edge, build_net
from hetero.training import CLOUD_DEFAULTS, EDGE_DEFAULTS, CloudTargets, EpochCheckpoint, TrainConfig, train_embedding

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
    from search_spaces import get_space

    preprocess = default_preprocess(get_space(arch["space"]).resolution(arch), train.images.shape[1])
    source = {"type": "space", "arch": arch, "in_channels": preprocess.channels}
    with _seeded(seed):
        net = build_net(source, embed_dim)
    inputs = torch.cat(list(preprocess.batches(train.images)))
    head, history = train_embedding(net, inputs, train.labels, config, device=device, seed=seed, description="cloud",
                                    checkpoint=checkpoint)
    meta = {"train": config.to_dict(), "history": history, "data": train.spec}
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
) -> EdgeModel:
    """Train an edge model of architecture ``arch`` against the frozen ``cloud``.

    Args:
        net: start from these weights (e.g. a subnet extracted from a supernet) instead of
            a fresh network of ``arch``.
        targets: precomputed cloud targets for ``train`` (saves a cloud pass per trial).
        checkpoint: saves the training after every epoch; a killed run resumes from it.

    Returns:
        The edge model, its own trained cosine head in ``head`` (:func:`cloud_from_edge` turns
        the pair into a cloud model: a backward-compatible update of ``cloud``).
    """
    from search_spaces import get_space

    preprocess = default_preprocess(get_space(arch["space"]).resolution(arch), train.images.shape[1])
    with _seeded(seed):
        model = build_edge(arch, cloud.embed_dim, preprocess, cloud.fingerprint)
    if net is not None:
        model.net = net
    if targets is None and config.uses_cloud:
        targets = CloudTargets.from_cloud(cloud, train.images, train.labels, config.prototype_temperature)
    inputs = torch.cat(list(preprocess.batches(train.images)))
    head, history = train_embedding(
        model.net, inputs, train.labels, config, targets, device=device, seed=seed, on_epoch=on_epoch, description="edge",
        checkpoint=checkpoint,
    )
    model.net.cpu().eval()
    model.meta = {"train": config.to_dict(), "history": history, "data": train.spec}
    model.head = head
    return model


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
    def gap_closed(self) -> float:
        r = self.results
        return gap_closed(r["cross_torch"].map, r["homogeneous_edge"].map, r["paragon"].map)

    @property
    def compatible(self) -> bool:
        """The empirical criterion, moved to the query side: M(q, g) > M(q, q)."""
        return bool(self.results["cross_torch"].map > self.results["homogeneous_edge"].map)

    def summary(self) -> dict:
        return {
            **{name: r.summary() for name, r in self.results.items()},
            "gap_closed": self.gap_closed,
            "compatible": self.compatible,
        }


def evaluate_compat(cloud: CloudModel, edge: EdgeModel, test: Dataset) -> CompatEvaluation:
    """Leave-one-out retrieval on ``test``: paragon, homogeneous edge and cross (PyTorch)."""
    g = cloud.embed(test.images)
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
