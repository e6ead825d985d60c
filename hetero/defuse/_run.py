"""Defuse end to end: find, group, show and correct the inputs a model gets wrong (issue 18).

``find_failures``: train (or reuse) the VAE on the training split, perturb the codes of a seeded
sample of training images, decode, keep the variations the candidate mishandles, group their codes.
``correct_failures``: the lambda sweep of :mod:`hetero.defuse._correct` on those failures.
``write_defuse``: ``defuse.json``, ``flips.html`` (the groups as image grids), ``defuse_map.png``
(t-SNE of the codes) and, after a correction, ``defuse_correction.png``.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from hetero._io import write_json, write_text
from hetero.data import Split
from hetero.defuse._correct import CorrectionSettings, best_lambda, correction_sweep
from hetero.defuse._generate import Generated, encode, perturb_decode
from hetero.defuse._groups import LatentGroups, group_codes
from hetero.defuse._judge import Judgement, judge
from hetero.defuse._map import latent_map
from hetero.defuse._plot import correction_plot
from hetero.defuse._vae import VAEConfig, cached_vae
from hetero.errors import UserError
from hetero.models import CloudModel, EdgeModel, EmbeddingModel, save_edge

__all__ = ["DefuseSettings", "DefuseRun", "find_failures", "correct_failures", "write_defuse", "check_inputs"]


@dataclass(frozen=True)
class DefuseSettings:
    """What to generate and how to group it.

    Attributes:
        sources: training images perturbed (a seeded sample; all if fewer).
        samples: variations decoded per source image.
        noise: standard deviation of the noise added to a code (the VAE's prior has 1).
        max_groups: components of the Dirichlet-process mixture (the most groups found).
        holdout: share of the source images whose failures are held out of the correction and
            score it.
        vae: the VAE's settings.
        active_variance: a latent dimension is *active* where its encoder means vary over the
            training images by more than this (the others collapsed onto the prior: the decoder
            ignores them, and their noise would only blur the groups); groups and the map use the
            active dimensions.
    """

    sources: int = 400
    samples: int = 8
    noise: float = 0.3
    max_groups: int = 10
    holdout: float = 0.5
    vae: VAEConfig = field(default_factory=VAEConfig)
    active_variance: float = 0.1

    def __post_init__(self) -> None:
        if self.sources < 2:
            raise UserError(f"--sources {self.sources} must be at least 2")
        if not 0.0 < self.holdout < 1.0:
            raise UserError(f"--holdout {self.holdout} must lie strictly between 0 and 1")


@dataclass
class DefuseRun:
    """The generated failures of one model against its reference.

    Attributes:
        kind: ``edge-vs-cloud`` or ``update``.
        reference, candidate: names of the two searches (``cloud -> cloud``, ``edge -> cloud``...).
        generated: every decoded variation (``sources`` index the training split).
        judgement: both searches' decisions on them and the failures kept.
        failures: the kept variations.
        groups: the groups of ``failures`` (``groups.labels[i]`` is the group of failure ``i``).
        active: ``[latent_dim]`` the active latent dimensions (what groups and the map use).
        held: ``[len(failures)]`` which failures come from held-out source images.
        gallery: ``[N, D]`` the reference's embeddings of the training images.
        record: what ``defuse.json`` holds (without the correction).
    """

    kind: str
    reference: str
    candidate: str
    generated: Generated
    judgement: Judgement
    failures: Generated
    groups: LatentGroups
    active: np.ndarray
    held: np.ndarray
    gallery: np.ndarray
    record: dict


def _kind(reference: EmbeddingModel, candidate: EmbeddingModel) -> tuple[str, str, str]:
    if isinstance(candidate, EdgeModel) and isinstance(reference, CloudModel) and candidate.cloud_fingerprint == reference.fingerprint:
        return "edge-vs-cloud", "cloud -> cloud", "edge -> cloud"
    return "update", "old -> old", "new -> old"


def check_inputs(reference: EmbeddingModel, candidate: EmbeddingModel, split: Split) -> None:
    """Refuse data and models Defuse cannot judge, in one line each."""
    channels = split.train.images.shape[1]
    for name, model in (("--cloud", reference), ("--model", candidate)):
        if model.preprocess.channels != channels:
            raise UserError(f"data {split.train.spec} has {channels} channel(s) but the {name} model takes "
                            f"{model.preprocess.channels}; pass the data the models were trained on")
    if reference.embed_dim != candidate.embed_dim:
        raise UserError(f"--model embeds in {candidate.embed_dim} dims but --cloud in {reference.embed_dim}; "
                        "pass the model's own cloud (or the old model it updates)")
    if split.train.images.shape[-1] != split.train.images.shape[-2]:
        raise UserError(f"data {split.train.spec} has non-square images {split.train.images.shape[-2:]}; load it at a square size")
    if np.unique(split.train.labels).size < 2:
        raise UserError(f"data {split.train.spec} has one class only (unlabelled images?): Defuse needs labelled "
                        "images of 2 or more classes to judge a model")


def _group_record(run_failures: Generated, features: np.ndarray, groups: LatentGroups, group: int, held: np.ndarray) -> dict:
    members = groups.ordered_members(group, features)
    return {
        "group": group + 1,
        "size": int(len(members)),
        "share": float(len(members) / max(len(run_failures), 1)),
        "weight": float(groups.weights[group]),
        "held_out": int(held[members].sum()),
        "classes": {str(c): n for c, n in Counter(run_failures.labels[members].tolist()).most_common()},
        "members": members.tolist(),
        "sources": run_failures.sources[members].tolist(),
    }


def find_failures(reference: EmbeddingModel, candidate: EmbeddingModel, split: Split, out_dir: str | os.PathLike[str],
                  settings: DefuseSettings | None = None, seed: int = 0) -> DefuseRun:
    """Generate variations of training images and keep, group and describe the ones the candidate fails.

    Args:
        reference: the cloud model (or the old model of an update): its gallery and its own
            search on the variations.
        candidate: the edge model (or the new model) whose queries search that gallery.
        split: the data; its training images train the VAE, are perturbed and form the gallery.
        out_dir: the run's folder (the VAE is cached there).
        settings: what to generate.
        seed: fixes the VAE, the sample of sources, the noise, the grouping and the hold-out.
    """
    settings = settings or DefuseSettings()
    check_inputs(reference, candidate, split)
    kind, ref_name, cand_name = _kind(reference, candidate)
    train = split.train
    vae, vae_path, trained_now = cached_vae(train.images, out_dir, settings.vae, seed)
    rng = np.random.default_rng(seed)
    source_index = np.sort(rng.permutation(len(train.labels))[: settings.sources])
    made = perturb_decode(vae, train.images[source_index], train.labels[source_index], settings.samples,
                          settings.noise, seed)
    generated = Generated(made.images, made.codes, source_index[made.sources], made.labels)
    gallery = reference.embed(train.images)
    judgement = judge(reference, candidate, generated.images, generated.labels, generated.sources, gallery, train.labels)
    failures = generated.subset(judgement.kept)
    spread = encode(vae, train.images).var(0)
    active = spread > settings.active_variance
    if not active.any():  # a fully collapsed VAE: every dimension is as good as another
        active[:] = True
    features = failures.codes[:, active]
    groups = group_codes(features, settings.max_groups, seed)
    held_sources = source_index[rng.random(len(source_index)) < settings.holdout]
    held = np.isin(failures.sources, held_sources)
    record = {
        "kind": kind,
        "reference": ref_name,
        "candidate": cand_name,
        "rule": f"kept: the {ref_name} search is right at top-1 and the {cand_name} search wrong (a negative flip), "
                "each generated image a query against the reference's gallery of training images, its source left out",
        "data": split.describe(),
        "vae": {"file": vae_path.name, "trained_now": trained_now, **asdict(settings.vae),
                "active_dims": int(active.sum()), "active_variance": settings.active_variance},
        "generation": {"sources": int(len(source_index)), "samples_per_source": settings.samples,
                       "noise": settings.noise, "generated": int(len(generated))},
        "decisions": judgement.summary,
        "kept": int(judgement.kept.sum()),
        "kept_share": float(judgement.kept.mean()) if len(generated) else 0.0,
        "clustering": {"method": "BayesianGaussianMixture (Dirichlet-process prior, diagonal covariances) on the "
                                 "failures' latent codes (active dimensions)", "max_groups": settings.max_groups, "k": groups.k,
                       "converged": groups.converged},
        "holdout": {"share": settings.holdout, "held_out_sources": int(len(held_sources)),
                    "held_out_failures": int(held.sum()), "fit_failures": int((~held).sum())},
        "groups": [_group_record(failures, features, groups, g, held) for g in range(groups.k)],
    }
    return DefuseRun(kind, ref_name, cand_name, generated, judgement, failures, groups, active, held, gallery, record)


def correct_failures(run: DefuseRun, reference: EmbeddingModel, candidate: EmbeddingModel, split: Split,
                     settings: CorrectionSettings | None = None, seed: int = 0,
                     out_dir: str | os.PathLike[str] | None = None) -> dict:
    """Fine-tune ``candidate`` on the failures of the training sources at each lambda; score on the held-out ones.

    Writes the fine-tuned edge model of the chosen lambda to ``out_dir/corrected/edge.pt`` where
    the candidate is an edge model and one lambda keeps the test within a point.

    Returns:
        ``rows`` (one per lambda, the control 0 first), ``best`` (:func:`best_lambda`), the
        ``settings`` and ``corrected`` (the written model, or ``None``).
    """
    settings = settings or CorrectionSettings()
    fit = run.failures.subset(~run.held)
    held = run.failures.subset(run.held)
    rows, models = correction_sweep(candidate, reference, split.train, fit, held, run.groups.labels[run.held],
                                    run.groups.k, run.gallery, split.test, settings, seed)
    best = best_lambda(rows)
    corrected = None
    if out_dir is not None and best["lambda"] is not None and isinstance(candidate, EdgeModel):
        model = models[best["lambda"]]
        assert isinstance(model, EdgeModel)
        model.meta = {**candidate.meta, "defuse": {"lambda": best["lambda"], "failures_trained": int(len(fit))}}
        corrected = str(save_edge(model, Path(out_dir) / "corrected"))
    return {"settings": {**asdict(settings), "lambdas": settings.swept}, "rows": rows, "best": best,
            "corrected": corrected}


def write_defuse(run: DefuseRun, split: Split, out_dir: str | os.PathLike[str], correction: dict | None = None,
                 examples: int = 8, seed: int = 0) -> dict[str, Path]:
    """Write ``defuse.json``, ``flips.html``, ``defuse_map.png`` and (with a correction) ``defuse_correction.png``."""
    from hetero.flips._page import generated_page

    out = Path(out_dir)
    data = split.train.spec.rsplit("/", 1)[-1]  # a file's name, not its whole path, fits a title
    paths = {"map": latent_map(run.generated.codes[:, run.active], run.judgement.kept, run.groups.labels, out / "defuse_map.png", seed,
                               f"{run.candidate} failures among generated variations ({data})")}
    record = {**run.record, "map": paths["map"].name}
    if correction is not None:
        paths["plot"] = correction_plot(correction["rows"], out / "defuse_correction.png",
                                        f"Defuse correction of {run.candidate} ({data})")
        record["correction"] = {**correction, "plot": paths["plot"].name}
    paths["json"] = write_json(out / "defuse.json", record)
    page = generated_page(record, run.failures.images, split.train.images, split.train.labels,
                          paths["map"], paths.get("plot"), examples)
    paths["html"] = write_text(out / "flips.html", page)
    return paths
