"""The final phase: fine-tune the best architectures under the budget, and the hand-picked reference.

The final phase is an Optuna study of its own (``<study>.final``, same storage): a trial picks one
of the finalists (architectures under the budget, best by Pareto rank then by validation cross
mAP, so that they spread over the costs the budget allows) and samples the training knobs, then
trains it for ``final_epochs`` (oneshot: starting from the weights the subnet inherits from the
supernet; standalone: from scratch), reporting validation cross mAP per epoch to a median pruner.
Each finalist is first tried with its own knobs (standalone: those of its search trial; oneshot:
the defaults), so the knobs of the oneshot search are tuned here, in this small second phase, not
in the architecture trials.

The reference is the hand-picked default architecture (``hetero.search._nets.reference_arch``)
trained the same way with the default knobs. When it is the space's default and under the budget
it is always a finalist too (its search trial is the study's first), and its first final trial
*is* the reference (the same training, so the reference's model and per-epoch scores are reused,
not trained again): the searched architectures compete with the hand-picked one on the same
footing, and the pick is at least as good as the default on validation by construction. A
``cloud_pruned`` search's reference is mobilenet_v3's default, what ``hetero train`` builds (from
scratch: that space has no supernet); it competes from outside the final study, and is the pick
when no fine-tuned model surely beats it.

The pick is the best final trial on validation that a paired bootstrap over the validation
queries is ``--confidence`` sure beats the reference; where none is, the reference itself (see
``hetero.search._choice``). Each final trial records its per-query validation AP for that test.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import replace
from pathlib import Path

import optuna

from hetero._io import read_json, write_json
from hetero.models import load_edge, save_edge
from hetero.search._choice import choose_pick, encode_scores
from hetero.search._first_tries import FirstTriesSampler
from hetero.search._knobs import KNOBS, knobs_of, sample_knobs
from hetero.search._nets import reference_arch
from hetero.search._ranking import finalist_ranking
from hetero.search._rerank import RERANK_SEED_OFFSET, describe_rerank
from hetero.search._standalone import train_scored
from hetero.search._storage import open_study, run_lock, run_trials
from hetero.training import EpochCheckpoint

__all__ = ["FINAL_DIR", "REFERENCE_DIR", "initial_net", "train_reference", "run_final_phase"]

FINAL_DIR = "final"
REFERENCE_DIR = "reference"
#: The number the reference goes by in the pick's choice where it is no final trial of its own.
_REFERENCE_APART = -1


def initial_net(run, arch: dict):
    """Where fine-tuning starts: the subnet with inherited weights (oneshot), or ``None`` (fresh)."""
    if run.supernet is None:
        return None
    from hetero.search._oneshot import evaluate_subnet

    evaluate_subnet(run.supernet, arch, run.data, run.config.bn_images)  # activates it and re-estimates batch norm
    return run.supernet.extract(arch)


def _final_config(run, knobs: dict):
    return replace(run.base, epochs=run.config.final_epochs, batch_size=run.config.batch_size, **knobs)


def train_reference(run) -> dict:
    """Train the hand-picked default architecture with the default knobs, as the final phase trains.

    Trained once per run folder (workers wait for it) and kept in ``reference/``.

    Returns:
        Its architecture, cost, validation scores, training seconds and model path.
    """
    folder = run.run_dir / REFERENCE_DIR
    arch = reference_arch(run.space)
    key = {"study": run.study_name, "arch": arch, "final_epochs": run.config.final_epochs, "knobs": knobs_of(run.base)}
    with run_lock(run.run_dir / ".reference.lock"):
        if (folder / "reference.json").exists() and (folder / "edge.pt").exists():
            info = read_json(folder / "reference.json")
            if info.get("key") == key:
                return info
        start = time.perf_counter()
        checkpoint = EpochCheckpoint.in_folder(folder, {**key, "seed": run.config.seed})
        edge, scores = train_scored(arch, _final_config(run, knobs_of(run.base)), run.data, run.device, run.config.seed,
                                    net=initial_net(run, arch), checkpoint=checkpoint)
        seconds = checkpoint.seconds_since(start)
        save_edge(edge, folder / "edge.pt")
        info = {"key": key, "arch": arch, **run.costs.measure(arch), "val": scores, "val_ap": _val_ap(run, edge.net, arch),
                "val_history": [record["val"] for record in edge.meta["history"]], "seconds": seconds,
                "seconds_per_epoch": seconds / run.config.final_epochs, "path": str(folder / "edge.pt")}
        write_json(folder / "reference.json", info)
        checkpoint.discard()
    return info


def _finalists(run, study: optuna.Study, rows: list[dict]) -> list[dict]:
    """The finalists of the final study: chosen once from the search, then kept (a resume reuses them).

    The best ``finalists`` architectures under the budget, plus the default architecture's search
    trial when it is under the budget and not among them already. A oneshot search first fine-tunes
    its best ``rerank_candidates`` briefly and chooses among them by that score
    (``hetero.search._rerank``); the finalists' rows then carry both scores.
    """
    from hetero.search._rerank import rerank_candidates, rerank_epochs
    from hetero.search._results import best_feasible

    by_number = {r["number"]: r for r in rows}
    numbers = study.user_attrs.get("finalists")
    if numbers is None:
        reranked: list[dict] = []
        if rerank_epochs(run.config):
            candidates = best_feasible(rows, run.config.rerank_candidates, run.costs.unit)
            reranked = rerank_candidates(run, candidates, lambda arch, epochs: _train_short(run, arch, epochs))
            by_number.update({r["number"]: r for r in reranked})
            chosen = searched_finalists(reranked, run.config.finalists, run.costs.unit, rows)
        else:
            chosen = searched_finalists(rows, run.config.finalists, run.costs.unit)
        numbers = [r["number"] for r in chosen]
        study.set_user_attr("finalists", numbers)
        study.set_user_attr("reranked", reranked)
    rescored = {r["number"]: r for r in study.user_attrs.get("reranked", [])}
    return [rescored.get(n, by_number[n]) for n in numbers]


def searched_finalists(scored: list[dict], k: int, unit: str, rows: list[dict] | None = None) -> list[dict]:
    """The best ``k`` of ``scored`` under the budget, and the default architecture's trial among ``rows``
    (``scored`` where not given) where it is under the budget and not among them."""
    from hetero.search._results import best_feasible, default_row

    chosen = best_feasible(scored, k, unit)
    default = default_row(rows if rows is not None else scored, unit)
    if default is not None and all(r["arch"] != default["arch"] for r in chosen):
        chosen.append(default)
    return chosen


def _train_short(run, arch: dict, epochs: int) -> dict:
    """Validation scores of ``arch`` fine-tuned ``epochs`` epochs from its inherited weights, default knobs."""
    config = replace(_final_config(run, knobs_of(run.base)), epochs=epochs)
    _, scores = train_scored(arch, config, run.data, run.device, run.config.seed + RERANK_SEED_OFFSET, net=initial_net(run, arch))
    return scores


def _reuse_reference(run, reference: dict | None, arch: dict, knobs: dict, trial: optuna.Trial, on_score) -> dict | None:
    """The reference's scores, replayed into ``trial``, when the trial trains exactly the reference."""
    if not reference or reference.get("arch") != arch or knobs != knobs_of(run.base) or not reference.get("val_history"):
        return None
    for epoch, scores in enumerate(reference["val_history"]):
        on_score(epoch, scores)
    path = _model_path(run, trial.number)
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(reference["path"], path)
    trial.set_user_attr("reused", "reference")
    trial.set_user_attr("val_ap", reference.get("val_ap") or _val_ap(run, load_edge(path).net, arch))
    return reference["val"]  # the trained model's scores (the history's last epoch may precede a recalibration)


def _competes_apart(run, reference: dict | None) -> bool:
    """Whether the reference, trained apart from the final trials, competes with them for the pick: an
    architecture of another space (a cloud_pruned search's) under the budget. Over the budget it
    cannot be the pick, and the pick is then the best on validation."""
    if not reference or reference.get("val_ap") is None or reference["arch"]["space"] == run.space.name:
        return False
    return all(c <= 0 for c in run.costs.constraints(reference).values())


def _model_path(run, number: int) -> Path:
    return run.run_dir / FINAL_DIR / f"trial-{number}" / "edge.pt"


def _val_ap(run, net, arch: dict) -> str:
    """Per-query validation AP of ``net`` against the cloud gallery, as a trial attribute."""
    return encode_scores(run.data.cross_average_precision(run.data.embed_val(net, int(arch["resolution"]))))


def _trial_checkpoint(run, arch: dict, knobs: dict) -> EpochCheckpoint:
    """The epoch checkpoint of a final trial, named by what it trains, not by the trial's number.

    A trial killed mid-way is retried as a new trial with the same parameters (see
    ``hetero.search._storage``); naming the file by the parameters lets the retry, in whichever
    process on this machine takes it, resume after the last epoch the killed one finished.
    """
    key = {"study": run.study_name, "arch": arch, "knobs": knobs, "final_epochs": run.config.final_epochs, "seed": run.config.seed}
    return EpochCheckpoint.named_by_key(run.run_dir / FINAL_DIR / "partial", key)


def run_final_phase(run, rows: list[dict], reference: dict | None = None) -> dict | None:
    """Fine-tune the finalists with ``final_trials`` trials and return the pick.

    Args:
        run: The search run.
        rows: The search study's trial rows.
        reference: What :func:`train_reference` returned; the final trial of the default
            architecture with the default knobs reuses it instead of training it again.

    Returns:
        ``None`` when no architecture meets the budget; else the pick: final trial number, search
        trial number, architecture, knobs, validation scores and the path of its model.
    """
    import optuna.pruners as pruners

    pruner = pruners.MedianPruner(n_startup_trials=run.config.finalists + 1, n_warmup_steps=max(1, run.config.final_epochs // 2))
    settings = {"search_study": run.study_name, "final_epochs": run.config.final_epochs}
    tpe = optuna.samplers.TPESampler(seed=run.sampler_seed)
    study = open_study(run.storage, f"{run.study_name}.final", ["maximize"], tpe, pruner, settings, ["val cross mAP"])
    finalists = _finalists(run, study, rows)
    if not finalists:
        return None
    choices = [f["number"] for f in finalists]
    by_number = {f["number"]: f for f in finalists}
    # Each finalist is first tried with its own knobs, the default's trial first: it reuses the
    # reference (no training), so it is never left out when there are fewer final trials than
    # finalists. The sampler hands these out (not Optuna's queue), so that the retry of a killed
    # trial runs before them on a resume (see hetero.search._first_tries).
    first = [{"finalist": f["number"], **(f["knobs"] if set(f["knobs"]) == set(KNOBS) else knobs_of(run.base))}
             for f in sorted(finalists, key=lambda f: f.get("reference") != "default")]
    study.sampler = FirstTriesSampler(tpe, first)

    def objective(trial: optuna.Trial) -> float:
        start = time.perf_counter()
        finalist = by_number[trial.suggest_categorical("finalist", choices)]
        config = sample_knobs(trial, _final_config(run, {}))
        knobs = {k: trial.params[k] for k in KNOBS}

        def on_score(epoch: int, scores: dict) -> None:
            for key, value in scores.items():
                trial.set_user_attr(key, value)
            trial.report(scores["cross_map"], epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()

        scores = _reuse_reference(run, reference, finalist["arch"], knobs, trial, on_score)
        if scores is None:
            checkpoint = _trial_checkpoint(run, finalist["arch"], knobs)
            try:
                edge, scores = train_scored(finalist["arch"], config, run.data, run.device, run.config.seed,
                                            net=initial_net(run, finalist["arch"]), on_score=on_score, checkpoint=checkpoint)
            except optuna.TrialPruned:
                checkpoint.discard()
                raise
            save_edge(edge, _model_path(run, trial.number))
            checkpoint.discard()
            trial.set_user_attr("val_ap", _val_ap(run, edge.net, finalist["arch"]))
        for key, value in scores.items():  # the model's own scores, which the last epoch's report may precede
            trial.set_user_attr(key, value)
        trial.set_user_attr("seconds", time.perf_counter() - start)
        return scores["cross_map"]

    run_trials(study, objective, run.config.final_trials, desc="fine-tune")
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    candidates = [{"number": t.number, "cross_map": t.value, "alignment": t.user_attrs.get("alignment"), "val_ap": t.user_attrs.get("val_ap")}
                  for t in complete]
    reference_trial = next((t.number for t in complete if t.user_attrs.get("reused") == "reference"), None)
    if reference_trial is None and _competes_apart(run, reference):
        assert reference is not None
        candidates.append({"number": _REFERENCE_APART, "cross_map": reference["val"]["cross_map"],
                           "alignment": reference["val"].get("alignment"), "val_ap": reference["val_ap"]})
        reference_trial = _REFERENCE_APART
    chosen, choice = choose_pick(candidates, reference_trial, run.config.confidence)
    common = {
        "choice": choice,
        "finalists": choices,
        "rerank": describe_rerank(list(study.user_attrs.get("reranked", []))),
        "ranking": finalist_ranking(finalists, [{"finalist": t.params["finalist"], "cross_map": t.value, "first_try": t.params in first}
                                                for t in complete]),
        "final_trials": [
            {"number": t.number, "state": t.state.name, "finalist": t.params.get("finalist"), "cross_map": t.user_attrs.get("cross_map"),
             "alignment": t.user_attrs.get("alignment"), "seconds": t.user_attrs.get("seconds"), "reused": t.user_attrs.get("reused")}
            for t in study.get_trials(deepcopy=False)
        ],
    }
    if chosen["number"] == _REFERENCE_APART:
        assert reference is not None
        return {**common, "final_trial": None, "search_trial": None, "arch": reference["arch"], "knobs": knobs_of(run.base),
                "val": reference["val"], "search_val": None, "model": load_edge(reference["path"])}
    best = next(t for t in complete if t.number == chosen["number"])
    finalist = by_number[best.params["finalist"]]
    knobs = {k: best.params[k] for k in KNOBS}
    path = _model_path(run, best.number)
    if not path.exists():  # trained by a worker on another machine: train it again here, same seed
        edge, _ = train_scored(finalist["arch"], _final_config(run, knobs), run.data, run.device, run.config.seed,
                               net=initial_net(run, finalist["arch"]))
        save_edge(edge, path)
    return {
        **common,
        "final_trial": best.number,
        "search_trial": finalist["number"],
        "arch": finalist["arch"],
        "knobs": knobs,
        "val": {"cross_map": best.value, "homogeneous_map": best.user_attrs.get("homogeneous_map"),
                "alignment": best.user_attrs.get("alignment")},
        "search_val": {"cross_map": finalist["cross_map"], "homogeneous_map": finalist["homogeneous_map"]},
        "model": load_edge(path),
    }
