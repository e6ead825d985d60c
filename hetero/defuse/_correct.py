"""Correcting the failures (Defuse, step 4): fine-tune on them mixed with the training data, sweeping lambda.

The generated failures are labelled by the image they were perturbed from. For each ``lambda`` the
candidate is fine-tuned from its trained weights on a mix where failures make up ``lambda`` of the
samples (each failure repeated as needed; ``lambda = 0`` is the control: the same fine-tuning on the
training data alone). The losses are the compatibility terms against the reference model
(:class:`hetero.training.CloudTargets` of the reference on every mixed image, generated ones
included: alignment, contrastive, influence through the reference's classifier, structure), the
one training loop :func:`hetero.training.train_embedding`. The model's own cosine-classifier term
is off: its head would start from random weights and pull a trained embedding around.

Each fine-tuned model is scored on failures generated from *held-out* source images (never trained
on) and on the original test split (the candidate's search of the reference's test gallery).
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, replace

import numpy as np
import torch

from hetero.data import Dataset, resolve_augment
from hetero.defuse._generate import Generated
from hetero.defuse._judge import top1_correct
from hetero.errors import UserError
from hetero.metrics import retrieval_metrics
from hetero.models import EmbeddingModel
from hetero.training import EDGE_DEFAULTS, CloudTargets, TrainConfig, TrainViews, train_embedding

__all__ = ["CorrectionSettings", "parse_lambdas", "mix", "finetune", "test_scores", "correction_sweep", "best_lambda"]


@dataclass(frozen=True)
class CorrectionSettings:
    """The sweep.

    Attributes:
        lambdas: the share of failures in the fine-tuning mix, each in [0, 1); 0 is always run too
            (the control).
        steps: optimizer steps per fine-tuning (the same for every lambda).
        lr: peak learning rate (one-cycle AdamW).
        batch_size: images per step.
        augment: the augmentation of the fine-tuning views (``auto``: as training).
    """

    lambdas: tuple[float, ...] = (0.1, 0.3, 0.5)
    steps: int = 200
    lr: float = 1e-3
    batch_size: int = 128
    augment: str = "auto"

    def __post_init__(self) -> None:
        if not self.lambdas or any(not 0.0 <= lam < 1.0 for lam in self.lambdas):
            raise UserError(f"--lambdas {','.join(map(str, self.lambdas))}: each lambda must lie in [0, 1)")
        if self.steps < 1 or self.batch_size < 1 or not self.lr > 0:
            raise UserError("--finetune-steps must be >= 1 and --finetune-lr > 0")

    @property
    def swept(self) -> list[float]:
        """The lambdas run, the control 0 first."""
        return sorted({0.0, *self.lambdas})


def parse_lambdas(text: str) -> tuple[float, ...]:
    """``"0.1,0.3,0.5"`` as floats (a bad list is a user error)."""
    try:
        values = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise UserError(f"--lambdas {text!r} is not a comma list of numbers such as 0.1,0.3,0.5") from None
    if not values:
        raise UserError("--lambdas is empty; give numbers such as 0.1,0.3,0.5")
    return values


def mix(train: Dataset, failures: Generated, lam: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Training images plus failures as ``lam`` of the whole: ``round(lam / (1 - lam) * N)`` failure samples.

    The failures are repeated in a seeded shuffled order (each as evenly as the count allows).
    """
    if lam == 0.0 or len(failures) == 0:
        return train.images, train.labels
    count = int(round(lam / (1.0 - lam) * len(train.labels)))
    order = np.random.default_rng(seed).permutation(np.resize(np.arange(len(failures)), count))
    return np.concatenate([train.images, failures.images[order]]), np.concatenate([train.labels, failures.labels[order]])


def _config(candidate: EmbeddingModel, settings: CorrectionSettings) -> TrainConfig:
    base = candidate.meta.get("train")
    trained = TrainConfig.from_dict(base) if isinstance(base, dict) else EDGE_DEFAULTS
    # The compatibility terms of an edge's training (a cloud candidate was trained without them).
    weights = trained if trained.uses_cloud else EDGE_DEFAULTS
    return replace(weights, epochs=1, min_steps=settings.steps, lr=settings.lr, batch_size=settings.batch_size,
                   val_fraction=0.0, metric=0.0, augment=settings.augment)


def finetune(candidate: EmbeddingModel, reference: EmbeddingModel, images: np.ndarray, labels: np.ndarray,
             settings: CorrectionSettings, seed: int = 0, description: str = "defuse fine-tune") -> EmbeddingModel:
    """A copy of ``candidate`` fine-tuned on ``images`` with the compatibility losses against ``reference``."""
    tuned = copy.deepcopy(candidate)
    tuned.net.requires_grad_(True)
    config = _config(candidate, settings)
    kind = resolve_augment(config.augment, images)
    samples = config.epochs_for(len(labels)) * config.steps_per_epoch(len(labels)) * config.batch_size
    views = TrainViews(images, tuned.preprocess, kind, cloud=reference, views=config.cloud_views, samples=samples, seed=seed)
    # TrainViews embeds the images with the reference when given one: clean is set.
    clean = views.clean if views.clean is not None else torch.from_numpy(reference.embed(images))
    targets = CloudTargets.from_embeddings(reference, clean, labels, config.prototype_temperature)
    train_embedding(tuned.net, views, labels, config, targets, seed=seed, description=description)
    tuned.net.cpu().eval().requires_grad_(False)
    return tuned


def test_scores(model: EmbeddingModel, test_gallery: np.ndarray, test: Dataset) -> dict[str, float]:
    """``top1`` and ``map`` of the model's test queries against the reference's test gallery (leave-one-out)."""
    result = retrieval_metrics(model.embed(test.images), test_gallery, test.labels, test.labels, same_images=True)
    return {"top1": result.top1, "map": result.map}


def _failure_scores(model: EmbeddingModel, held: Generated, held_groups: np.ndarray, k: int, gallery: np.ndarray,
                    gallery_labels: np.ndarray) -> tuple[float, list[float | None]]:
    right = top1_correct(model.embed(held.images), gallery, gallery_labels, held.labels, held.sources)
    per_group = [float(right[held_groups == g].mean()) if (held_groups == g).any() else None for g in range(k)]
    return float(right.mean()) if len(right) else float("nan"), per_group


def correction_sweep(candidate: EmbeddingModel, reference: EmbeddingModel, train: Dataset, fit: Generated,
                     held: Generated, held_groups: np.ndarray, k: int, gallery: np.ndarray, test: Dataset,
                     settings: CorrectionSettings, seed: int = 0) -> tuple[list[dict], dict[float, EmbeddingModel]]:
    """Fine-tune at every lambda and score each model.

    Args:
        candidate, reference: the model to correct and the reference its searches use.
        train: the original training data (the mix's other part; ``gallery`` embeds its images).
        fit: the failures trained on (from the training sources).
        held: the held-out failures scored (from the other sources), ``held_groups`` their groups.
        k: the number of groups.
        gallery: ``[N, D]`` the reference's embeddings of ``train``'s images.
        test: the original test split.
        settings: the sweep.

    Returns:
        One row per lambda (the control first) and the fine-tuned models by lambda. Each row:
        ``lambda``, ``failure_accuracy`` (held-out failures the model now gets right; the
        candidate before fine-tuning gets none), ``failure_gain_points`` (its change in points),
        ``failure_gain_over_control_points``, ``per_group_accuracy``, ``test_top1``/``test_map``
        and their ``_change_points`` against the candidate before fine-tuning, ``mixed_images``,
        ``failure_samples``, ``steps`` and ``seconds``.
    """
    if len(held) == 0:
        raise UserError("no held-out failures to score the correction on: generate more (--sources, --samples, --noise)")
    test_gallery = reference.embed(test.images)
    before = test_scores(candidate, test_gallery, test)
    rows: list[dict] = []
    models: dict[float, EmbeddingModel] = {}
    config = _config(candidate, settings)
    for lam in settings.swept:
        start = time.perf_counter()
        images, labels = mix(train, fit, lam, seed)
        tuned = finetune(candidate, reference, images, labels, settings, seed, description=f"defuse lambda={lam:g}")
        accuracy, per_group = _failure_scores(tuned, held, held_groups, k, gallery, train.labels)
        scores = test_scores(tuned, test_gallery, test)
        rows.append({
            "lambda": lam, "failure_accuracy": accuracy, "failure_gain_points": 100 * accuracy,
            "per_group_accuracy": per_group, "test_top1": scores["top1"], "test_map": scores["map"],
            "test_top1_change_points": 100 * (scores["top1"] - before["top1"]),
            "test_map_change_points": 100 * (scores["map"] - before["map"]),
            "mixed_images": int(len(labels)), "failure_samples": int(len(labels) - len(train.labels)),
            "steps": config.epochs_for(len(labels)) * config.steps_per_epoch(len(labels)),
            "seconds": time.perf_counter() - start,
        })
        models[lam] = tuned
    control = rows[0]["failure_accuracy"]
    for row in rows:
        row["failure_gain_over_control_points"] = 100 * (row["failure_accuracy"] - control)
    for row in rows:
        row["test_before"] = before
    return rows, models


def best_lambda(rows: list[dict], gain_points: float = 20.0, test_points: float = 1.0) -> dict:
    """The lambda Defuse would pick: the largest failure gain whose test top-1 moves by at most ``test_points``.

    Returns:
        ``lambda`` (``None`` when none keeps the test within bounds), its gains,
        ``meets_target``: a gain of ``gain_points`` or more over the candidate before fine-tuning
        *and* over the control (lambda 0), and ``note`` (``None``, or why no lambda can keep the
        test still: the control itself moved it).
    """
    explained = {"rule": _RULE.format(test_points), "note": _unsettled_note(rows, test_points)}
    within = [r for r in rows if r["lambda"] > 0 and abs(r["test_top1_change_points"]) <= test_points]
    if not within:
        return {"lambda": None, "meets_target": False, **explained}
    pick = max(within, key=lambda r: r["failure_accuracy"])
    meets = pick["failure_gain_points"] >= gain_points and pick["failure_gain_over_control_points"] >= gain_points
    return {"lambda": pick["lambda"], "failure_gain_points": pick["failure_gain_points"],
            "failure_gain_over_control_points": pick["failure_gain_over_control_points"],
            "test_top1_change_points": pick["test_top1_change_points"], "meets_target": bool(meets), **explained}


def _unsettled_note(rows: list[dict], test_points: float) -> str | None:
    """A line when the control (lambda 0, no failures) moves the test by more than ``test_points``.

    Then the model was still changing under further training on its own data (stopped early, or
    trained with other losses or fewer images than the correction uses), and the test moves
    whatever the failures do: measured on Fashion-MNIST (benchmarks/README.md, Defuse), an edge
    trained with the correction's losses on all its images kept the control within about a point.
    """
    control = next((r for r in rows if r["lambda"] == 0), None)
    if control is None or abs(control["test_top1_change_points"]) <= test_points:
        return None
    return (f"the fine-tuning without failures (lambda 0) already moves the test top-1 by "
            f"{control['test_top1_change_points']:+.2f} pts: the model is still changing under further training; "
            f"train it longer (or with --metric 0 --val-fraction 0, the losses and images the correction uses) "
            f"before correcting")


_RULE = "highest held-out failure accuracy among lambdas > 0 whose test top-1 moves by at most {} point(s)"
