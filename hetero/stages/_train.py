"""The training stages: checkpoint -> train -> evaluate -> annotate -> save -> discard, written once."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import torch

from hetero._io import write_json
from hetero.data import Dataset, Split
from hetero.models import CloudModel, EdgeModel, save_cloud, save_edge
from hetero.pipeline import CompatEvaluation, evaluate_cloud, evaluate_compat, train_cloud, train_edge
from hetero.stages._cache import stage_checkpoint
from hetero.training import EpochCheckpoint, TrainConfig

__all__ = ["train_cloud_stage", "train_edge_stage"]

M = TypeVar("M", CloudModel, EdgeModel)


def _trained(folder: Path, key: dict[str, Any], fresh: bool, train: Callable[[EpochCheckpoint], M],
             annotate: Callable[[M], None], save: Callable[[M], Path]) -> tuple[M, Path]:
    """Train under a checkpoint in ``folder``, annotate and save the model, then drop the checkpoint.

    The checkpoint goes only after the model is saved: a run killed before then resumes training.
    """
    checkpoint = stage_checkpoint(folder, key, fresh)
    model = train(checkpoint)
    annotate(model)
    path = save(model)
    checkpoint.discard()
    return model, path


def train_cloud_stage(train: Dataset, test: Dataset, arch: dict[str, Any], embed_dim: int, config: TrainConfig,
                      device: torch.device | None, seed: int, folder: str | Path, key: dict[str, Any], *,
                      meta: dict[str, Any] | None = None, fresh: bool = False) -> tuple[CloudModel, Path]:
    """Train the cloud model, record its paragon (cloud -> cloud) scores on ``test`` and save it in ``folder``.

    Args:
        train: the images it trains on.
        test: the images its paragon retrieval is measured on.
        arch: a ``resnet``-space architecture.
        embed_dim: the embedding dimension.
        config: training settings.
        device: where to train (None: CPU).
        seed: initialisation and batch order.
        folder: where ``cloud.pt`` (and the checkpoint while training) go.
        key: what the checkpoint belongs to; a checkpoint with another key is not resumed.
        meta: entries recorded in the model's meta before ``paragon`` (e.g. ``split``).
        fresh: start from the first epoch even if a checkpoint exists.

    Returns:
        The model and the path of ``cloud.pt``.
    """
    folder = Path(folder)

    def annotate(model: CloudModel) -> None:
        model.meta.update(meta or {})
        model.meta["paragon"] = evaluate_cloud(model, test)

    return _trained(folder, key, fresh, lambda checkpoint: train_cloud(train, arch, embed_dim, config, device, seed, checkpoint),
                    annotate, lambda model: save_cloud(model, folder))


def train_edge_stage(cloud: CloudModel, split: Split, arch: dict[str, Any], config: TrainConfig, device: torch.device | None,
                     seed: int, folder: str | Path, key: dict[str, Any], *, fresh: bool = False,
                     **train_options: Any) -> tuple[EdgeModel, CompatEvaluation, Path]:
    """Train an edge model compatible with ``cloud``, evaluate it on ``split.test`` and save it in ``folder``.

    Writes ``edge.pt`` and ``metrics.json`` (the evaluation, the data, the schedule and validation).

    Args:
        cloud: the frozen cloud model.
        split: training and test data.
        arch: the edge architecture.
        config: training settings.
        device: where to train (None: CPU).
        seed: initialisation and batch order.
        folder: the output folder.
        key: what the checkpoint belongs to.
        fresh: start from the first epoch even if a checkpoint exists.
        **train_options: passed to :func:`hetero.pipeline.train_edge` (``net``, ``unlabeled``, ``protocol``...).

    Returns:
        The model, its evaluation and the path of ``edge.pt``.
    """
    folder = Path(folder)
    box: dict[str, CompatEvaluation] = {}

    def annotate(edge: EdgeModel) -> None:
        box["evaluation"] = evaluate_compat(cloud, edge, split.test)
        edge.meta.update(split=split.describe(), evaluation=box["evaluation"].summary())

    def save(edge: EdgeModel) -> Path:
        path = save_edge(edge, folder)
        write_json(folder / "metrics.json", {**box["evaluation"].summary(), "data": split.describe(),
                                             "schedule": edge.meta["schedule"], "validation": edge.meta.get("validation")})
        return path

    edge, path = _trained(folder, key, fresh, lambda checkpoint: train_edge(cloud, split.train, arch, config, device, seed,
                                                                           checkpoint=checkpoint, **train_options),
                          annotate, save)
    return edge, box["evaluation"], path
