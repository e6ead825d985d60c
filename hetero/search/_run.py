"""``run_search``: the whole search, from the cloud model and the data to ``RUN/best/edge.pt``.

1. Hold out a validation part of the training split (search decisions never see the test split).
   Time a supernet step, a trial and a training step, and set the lengths not given: from
   ``--time-budget``, or optimizer steps scaled to the data (``hetero.search._budget``; kept in
   ``plan.json``). One "whole search" progress line shows the ETA of all the phases.
2. Open (or resume) the Optuna study; the space's default architecture is its first trial.
3. Oneshot: load or train the supernet. Then run trials until the study holds N finished ones,
   sharing them with any other worker on the same storage.
4. Oneshot: fine-tune the best candidates briefly and choose the finalists by that score
   (``hetero.search._rerank``). Train the hand-picked reference and fine-tune the finalists, the
   default architecture among them when it is under the budget (final phase, its own study; the pick breaks validation
   cross-mAP ties by alignment, see ``hetero.search._final``).
5. Write ``pareto.json``, ``search.json`` and ``best/`` (edge.pt, arch.json, metrics.json), with
   test figures for the pick, the reference and the paragon.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import optuna
import torch

from hetero._io import read_json, write_json
from hetero.cost import count_cost
from hetero.data import Split
from hetero.errors import UserError
from hetero.models import CloudModel, load_edge, save_edge
from hetero.pipeline import evaluate_compat
from hetero.search._choice import test_gain
from hetero.search._config import DEFAULT_MACS, DEFAULT_TRIALS, SearchConfig
from hetero.search._cost import CostModel
from hetero.search._data import SearchData
from hetero.search._final import run_final_phase, train_reference
from hetero.search._knobs import knobs_of
from hetero.search._nets import net_builder, reference_arch, search_space
from hetero.search._progress import SearchProgress
from hetero.search._results import pareto_front, rates, trial_rows
from hetero.search._storage import DEFAULT_STUDY, open_storage, open_study, run_lock, run_trials, worker_seed
from hetero.training import EDGE_DEFAULTS, TrainConfig

__all__ = ["SearchRun", "run_search", "SEARCH_FILE", "PARETO_FILE", "BEST_DIR"]

SEARCH_FILE = "search.json"
PLAN_FILE = "plan.json"
PARETO_FILE = "pareto.json"
BEST_DIR = "best"


@dataclass
class SearchRun:
    """Everything a search's phases share."""

    config: SearchConfig
    run_dir: Path
    space: Any
    data: SearchData
    costs: CostModel
    device: torch.device
    base: TrainConfig
    storage: Any
    storage_label: str
    study_name: str
    sampler_seed: int
    supernet: Any = None
    supernet_info: dict = field(default_factory=dict)


def _space(config: SearchConfig, profile, cloud: CloudModel):
    resolutions = config.resolutions
    fixed = profile.input_resolution
    if fixed is not None:
        if resolutions and set(resolutions) != {fixed}:
            raise UserError(f"device {profile.name} takes {fixed} px inputs; drop --resolutions or pass --resolutions {fixed}")
        resolutions = (fixed,)
    return search_space(config.space, cloud, config.strategy, resolutions)


def _sampler(config: SearchConfig, seed: int) -> optuna.samplers.BaseSampler:
    name = config.sampler
    if name == "auto":
        name = "tpe" if config.prunes else "nsga2"
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    assert config.trials is not None, "set by _lengths before the study is made"
    population = min(50, max(8, config.trials // 4))
    return optuna.samplers.NSGAIISampler(seed=seed, population_size=population)


def _pruner(config: SearchConfig) -> optuna.pruners.BasePruner:
    if not config.prunes:
        return optuna.pruners.NopPruner()
    if config.pruner == "hyperband":
        assert config.epochs is not None, "set by _lengths before the study is made"
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=config.epochs)
    return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1)


def _objective(run: SearchRun):
    if run.config.strategy == "oneshot":
        from hetero.search._oneshot import load_or_train_supernet, oneshot_objective

        assert run.config.supernet_epochs is not None, "set by _lengths before the supernet trains"
        config = replace(run.base, epochs=run.config.supernet_epochs, batch_size=run.config.batch_size)
        run.supernet, run.supernet_info = load_or_train_supernet(
            run.run_dir, run.space, run.data, config, run.config.sandwich_random, run.device, run.config.seed
        )
        return oneshot_objective(run.supernet, run.data, run.costs, run.config.bn_images)
    from hetero.search._standalone import standalone_objective

    return standalone_objective(run.space, run.data, run.costs, run.config, run.base, run.device)


def _check_supernet(study: optuna.Study, run: SearchRun) -> None:
    """Workers of one study must score subnets of the same supernet."""
    from hetero.devices import sha256_file

    if run.supernet is None:
        return
    sha = sha256_file(run.supernet_info["path"])
    recorded = study.user_attrs.get("supernet_sha256")
    if recorded is None:
        study.set_user_attr("supernet_sha256", sha)
    elif recorded != sha:
        raise UserError(
            f"{run.supernet_info['path']} is not the supernet this study's trials were scored with; give every "
            "worker the same run folder (a shared disk) or a copy of the first worker's supernet.pt"
        )


def run_search(cloud: CloudModel, split: Split, profile, config: SearchConfig, run_dir: str | os.PathLike[str],
               storage_url: str | None = None, study_name: str = DEFAULT_STUDY, device: torch.device | None = None,
               base: TrainConfig = EDGE_DEFAULTS) -> dict:
    """Search architectures (and training knobs) for edge models compatible with ``cloud``.

    Args:
        cloud: The frozen cloud model.
        split: The train/test split (the test part only gives the final figures).
        profile: The device profile whose budgets constrain the search.
        config: The search settings.
        run_dir: The run folder (study journal, supernet, results, ``best/``).
        storage_url: An Optuna storage URL; a journal file in ``run_dir`` by default.
        study_name: The study's name in the storage.
        device: Where to train.
        base: Training settings the knobs start from (and the reference uses).

    Returns:
        The summary written to ``run_dir/search.json``.
    """
    started = time.perf_counter()
    space = _space(config, profile, cloud)  # an impossible space or strategy is refused before --out is written
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    device = device or torch.device("cpu")
    data = SearchData.prepare(cloud, split, config.val_fraction, config.seed, base.prototype_temperature)
    build = net_builder(space, cloud, data.channels)
    if config.max_macs == DEFAULT_MACS:  # no costlier than the architecture the pick competes with
        macs = CostModel(space, profile, "macs", None, cloud.embed_dim, data.channels, build=build).measure(reference_arch(space))["macs"]
        config = replace(config, max_macs=macs)
    assert not isinstance(config.max_macs, str), "SearchConfig admits one word, resolved above"
    costs = CostModel(space, profile, config.objective, config.max_macs, cloud.embed_dim, data.channels,
                      calibration=lambda r: data.inputs("fit", r)[:256].numpy(), build=build)
    config, plan = _lengths(config, space, data, costs, run_dir, device, time.perf_counter() - started)
    storage, label = open_storage(storage_url, run_dir)
    run = SearchRun(config, run_dir, space, data, costs, device, base, storage, label, study_name,
                    sampler_seed=worker_seed(config.seed, run_dir, shared_storage=bool(storage_url)))
    settings = {**config.study_key(), "cloud": cloud.fingerprint, "data": split.train.spec, "protocol": split.protocol,
                "device": profile.name, "budgets": costs.budgets}
    study = open_study(storage, study_name, config.directions, _sampler(config, run.sampler_seed), _pruner(config), settings,
                       ["val cross mAP", costs.unit])
    default = {k: v for k, v in space.default_arch().items() if k != "space"}
    if config.strategy == "standalone":
        default.update(knobs_of(base))
    study.enqueue_trial(default, user_attrs={"reference": "default"}, skip_if_exists=True)
    bar = SearchProgress({"supernet": plan.get("supernet_s", 0.0), "trials": plan["trials_s"], "final": plan.get("final_s", 0.0),
                          "test": plan.get("test_s", 0.0)})
    try:
        return _phases(run, study, plan, bar, started)
    finally:
        bar.close()


def _phases(run: SearchRun, study: optuna.Study, plan: dict, bar: SearchProgress, started: float) -> dict:
    """The search's phases, each advancing the whole search's progress line."""
    space, data, costs, run_dir = run.space, run.data, run.costs, run.run_dir
    split, cloud = data.split, data.cloud
    with bar.phase("supernet"):
        objective = _objective(run)
    _check_supernet(study, run)
    start = time.perf_counter()
    with bar.phase("trials"):
        ran = _search_trials(run, study, objective, plan, started)
    config = run.config
    rows = trial_rows(study, space)
    summary: dict[str, Any] = {
        "format": "hetero.search/1",
        "config": config.to_dict(),
        "plan": plan,
        "study": run.study_name,
        "storage": run.storage_label,
        "device": costs.describe(),
        "data": {"spec": split.train.spec, **data.describe()},
        "cloud": {"fingerprint": cloud.fingerprint, **count_cost(cloud.net, (cloud.preprocess.channels, cloud.preprocess.size, cloud.preprocess.size))},
        "paragon": {"val_map": data.paragon()},
        "validation": data.validation_check(),
        "supernet": {k: v for k, v in run.supernet_info.items() if k != "path"},
        "search": {"seconds_here": time.perf_counter() - start, "trials_here": ran, "rates": rates(rows)},
        "trials": rows,
        "pareto": [r["number"] for r in pareto_front(rows, costs.unit)],
    }
    pick = None
    if config.final_trials:
        _adapt_final(run, plan, rows, started)
        config = run.config
        summary["config"] = config.to_dict()
        with bar.phase("final"):
            summary["reference"] = train_reference(run)
            pick = run_final_phase(run, rows, summary["reference"])
        if pick is None:
            summary["no_pick"] = "no architecture met the budgets; raise --max-macs or choose a larger device"
    summary["speed"] = _speed(summary, config)
    with bar.phase("test"), run_lock(run_dir / ".outputs.lock"):
        _write_outputs(run, summary, rows, pick)
    return summary


def _search_trials(run: SearchRun, study: optuna.Study, objective, plan: dict, started: float) -> int:
    """Run the search's trials; under a time budget that sized them, as many as the time left allows.

    The plan's count comes from one architecture timed before the search, which is not the
    trials' pace (see :class:`~hetero.search._budget.TrialPace`): after each trial the count is
    set again from the recent trials' pace and the time left beside the final phase's share.
    The count is kept in ``plan.json``: a resumed run aims at the same number.
    """
    from hetero.search._budget import MIN_STANDALONE_TRIALS, MIN_TRIALS, TrialPace, adapted_trials

    desc = f"{run.config.strategy} trials"
    assert run.config.trials is not None, "set by _lengths"
    if not plan.get("adapt_trials") or plan.get("trials_adapted"):
        return run_trials(study, objective, run.config.trials, desc=desc)
    assert run.config.time_budget is not None, "a plan adapts trials only under a time budget"
    pace = TrialPace(plan["trials_s"] / run.config.trials)
    fewest = MIN_TRIALS if run.config.strategy == "oneshot" else MIN_STANDALONE_TRIALS

    def recount(finished: int) -> int:
        pace.tick()
        n = adapted_trials(finished, pace.seconds_per_trial, _seconds_left(run, plan, started), plan.get("final_s", 0.0), fewest)
        if n != run.config.trials or not plan.get("trials_adapted"):
            _save_plan(run, plan, trials=n, trials_adapted=True)
        return n

    return run_trials(study, objective, run.config.trials, desc=desc, recount=recount)


def _adapt_final(run: SearchRun, plan: dict, rows: list[dict], started: float) -> None:
    """Under a time budget that sized the fine-tuning, set its epochs from the time left (once per run folder).

    An epoch's seconds: a standalone search's finalists were trained in its trials, whose
    seconds per epoch say what theirs cost here (a cloud_pruned search's narrow finalists train
    faster than the default the plan timed); otherwise the plan's measurement of the default,
    times how much slower than measured the supernet's training ran.
    """
    from hetero.search._budget import adapted_final_epochs, fine_tunings
    from hetero.search._final import searched_finalists

    if not plan.get("adapt_final") or plan.get("final_adapted"):
        return
    costs = plan["costs"]
    assert run.config.time_budget is not None, "a plan adapts the fine-tuning only under a time budget"
    slowdown, train_epoch = 1.0, costs["train_epoch"]
    info = run.supernet_info
    if info.get("trained_now") and info.get("seconds"):  # how much slower than measured training ran here
        slowdown = info["seconds"] / (run.config.supernet_epochs * costs["steps_per_epoch"] * costs["supernet_step"])
    if run.config.strategy == "standalone":
        timed = [r["epoch_seconds"] for r in searched_finalists(rows, run.config.finalists, run.costs.unit) if r.get("epoch_seconds")]
        if timed:
            train_epoch = plan["finalists_epoch_s"] = sum(timed) / len(timed)
    left = _seconds_left(run, plan, started)
    epochs = adapted_final_epochs(left, fine_tunings(run.config, run.config.final_trials), train_epoch, slowdown,
                                  costs.get("reference_epoch", 0.0))  # a plan.json from before it has none
    _save_plan(run, plan, final_epochs=epochs, final_adapted=True, slowdown=slowdown)


def _seconds_left(run: SearchRun, plan: dict, started: float) -> float:
    """Seconds of the planned part of the time budget still free, the test figures' share kept for them."""
    from hetero.search._budget import PLANNED

    assert run.config.time_budget is not None, "only a time budget leaves seconds"
    return run.config.time_budget * PLANNED - plan.get("test_s", 0.0) - (time.perf_counter() - started)


def _save_plan(run: SearchRun, plan: dict, **changes) -> None:
    """Record a length decided while the search runs, in ``plan.json`` and the run's config."""
    lengths = {k: v for k, v in changes.items() if k in plan["lengths"]}
    plan["lengths"].update(lengths)
    plan.update({k: v for k, v in changes.items() if k not in lengths})
    run.config = replace(run.config, **lengths)
    with run_lock(run.run_dir / ".plan.lock"):
        saved = read_json(run.run_dir / PLAN_FILE)
        write_json(run.run_dir / PLAN_FILE, {**saved, "plan": plan})


def _lengths(config: SearchConfig, space, data: SearchData, costs: CostModel, run_dir: Path, device: torch.device,
             spent: float) -> tuple[SearchConfig, dict]:
    """Every length set (from ``--time-budget`` or from optimizer steps) and the seconds each phase should take.

    ``spent``: seconds this run took before (preparing the data), which the budget no longer has.

    The costs are measured once per run folder and kept in ``plan.json`` with the lengths they
    gave, so that a resumed run (or another worker) keeps the lengths its study recorded.
    """
    from hetero.search._budget import plan_budget, resolve_lengths
    from hetero.search._measure import measure_costs

    asked = {k: getattr(config, k) for k in ("trials", "epochs", "supernet_epochs", "final_epochs", "final_trials")}
    key = {"asked": asked, "time_budget": config.time_budget, "strategy": config.strategy, "space": space.name,
           "resolutions": list(space.resolutions), "data": data.describe(), "batch_size": config.batch_size,
           "sandwich_random": config.sandwich_random, "finalists": config.finalists,
           "rerank": [config.rerank_candidates, config.rerank_epochs]}
    with run_lock(run_dir / ".plan.lock"):
        saved = read_json(run_dir / PLAN_FILE) if (run_dir / PLAN_FILE).exists() else None
        if saved is not None and saved.get("key") == key:
            return replace(config, **saved["plan"]["lengths"]), saved["plan"]
        start = time.perf_counter()
        measured = measure_costs(space, data, costs, config.batch_size, config.sandwich_random, config.bn_images, device,
                                 oneshot=config.strategy == "oneshot")
        flags = {}
        if config.time_budget:
            left = config.time_budget - spent - (time.perf_counter() - start)
            config, first = plan_budget(config, max(left, 0.1 * config.time_budget), measured)
            flags = {k: v for k, v in first.items() if k.startswith("adapt_")}
        resolved = resolve_lengths(config, len(data.fit.labels))
        resolved = replace(resolved, trials=resolved.trials or DEFAULT_TRIALS)
        config, plan = plan_budget(resolved, config.time_budget or 0.0, measured)  # every length set: the seconds they take
        plan.update(flags)
        write_json(run_dir / PLAN_FILE, {"key": key, "plan": plan})
    return config, plan


def _speed(summary: dict, config: SearchConfig) -> dict:
    """Seconds per architecture: a oneshot evaluation against a standalone training (``config.epochs``)."""
    mean = summary["search"]["rates"].get("seconds_per_complete")
    out: dict[str, Any] = {}
    if config.strategy == "standalone":
        out["standalone_seconds_per_arch"] = mean
        out["standalone_how"] = "mean duration of the complete standalone trials"
        return out
    out["oneshot_seconds_per_arch"] = mean
    reference = summary.get("reference")
    if reference:
        out["standalone_seconds_per_arch"] = reference["seconds_per_epoch"] * config.epochs
        out["standalone_how"] = (f"the default architecture's measured training time per epoch x {config.epochs} epochs "
                                 "(the length of a standalone trial)")
        if mean:
            out["speedup"] = out["standalone_seconds_per_arch"] / mean
    return out


def _write_outputs(run: SearchRun, summary: dict, rows: list[dict], pick: dict | None) -> None:
    """``pareto.json``, ``best/`` and ``search.json``, with the test figures of the pick and the reference."""
    from hetero.search_spaces import save_arch

    split, cloud = run.data.split, run.data.cloud
    unit = run.costs.unit
    keys = ("number", "arch", "macs", "params", "artifact_bytes", "latency_ms", "cross_map", "homogeneous_map", "feasible", "knobs")
    front = [{("trial" if k == "number" else k): r.get(k) for k in keys} for r in pareto_front(rows, unit)]
    write_json(run.run_dir / PARETO_FILE, {"objective": unit, "budgets": run.costs.budgets, "scores": "validation part of the training split",
                                           "front": front})
    # The cloud embeds the test split once for both models, and not at all when neither was trained.
    gallery = cloud.embed(split.test.images) if "reference" in summary or pick is not None else None
    reference_eval = None
    if "reference" in summary:
        reference = summary["reference"]
        reference_eval = evaluate_compat(cloud, load_edge(reference["path"]), split.test, gallery)
        reference["test"] = reference_eval.summary()
        summary["paragon"]["test"] = reference["test"]["paragon"]
    if pick is not None:
        edge = pick.pop("model")
        pick_eval = evaluate_compat(cloud, edge, split.test, gallery)
        evaluation = pick_eval.summary()
        pick.update(run.costs.measure(pick["arch"]), test=evaluation)
        if reference_eval is not None:
            pick["test_vs_reference"] = test_gain(pick_eval.results["cross_torch"].average_precision,
                                                  reference_eval.results["cross_torch"].average_precision)
        pick["under_budget"] = all(c <= 0 for c in run.costs.constraints(pick).values())
        edge.meta.update(split=split.describe(), evaluation=evaluation,
                         search={k: pick[k] for k in ("final_trial", "search_trial", "knobs", "val")} | {"study": run.study_name})
        best = run.run_dir / BEST_DIR
        save_edge(edge, best / "edge.pt")
        save_arch(pick["arch"], best / "arch.json", space=run.space if pick["arch"]["space"] == run.space.name else None)
        write_json(best / "metrics.json", evaluation)
        summary["pick"] = pick
    write_json(run.run_dir / SEARCH_FILE, summary)
