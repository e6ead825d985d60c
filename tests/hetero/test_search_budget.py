"""Search lengths: optimizer steps scaled to the data, and --time-budget (planned, adapted, resumed)."""

from __future__ import annotations

import json
import time
from dataclasses import replace

import pytest

from hetero.cli import main
from hetero.errors import UserError
from hetero.search import SearchConfig
from hetero.search._budget import (
    DEFAULT_STEPS,
    MIN_STANDALONE_TRIALS,
    MIN_TRIALS,
    PLANNED,
    PhaseCosts,
    TrialPace,
    adapted_final_epochs,
    adapted_trials,
    fine_tunings,
    parse_duration,
    plan_budget,
    resolve_lengths,
)

COSTS = PhaseCosts(supernet_step=0.5, trial=0.2, train_step=0.05, val_pass=0.1, steps_per_epoch=20)


def test_the_test_figures_are_planned_and_the_phases_share_what_they_leave():
    _, without = plan_budget(SearchConfig(), 1800, COSTS)
    _, plan = plan_budget(SearchConfig(), 1800, replace(COSTS, test_figures=300.0))
    assert without["test_s"] == 0.0 and plan["test_s"] == 300.0
    assert plan["planned_s"] <= 1800 * PLANNED  # the test figures inside the planned part, not after it
    assert plan["planned_s"] - plan["test_s"] < without["planned_s"] - 200  # the phases shortened for them


def test_a_reference_trained_apart_from_the_final_trials_is_planned_as_one_training_more():
    _, shared = plan_budget(SearchConfig(), 1800, COSTS)
    apart, plan = plan_budget(SearchConfig(), 1800, replace(COSTS, reference_epoch=COSTS.train_epoch * 2))
    assert apart.final_epochs < shared["lengths"]["final_epochs"]
    # Its seconds in the final phase's: the final trials' epochs plus the reference's, final_epochs each.
    assert plan["final_s"] == pytest.approx(apart.final_epochs * (fine_tunings(apart, apart.final_trials) * COSTS.train_epoch
                                                                  + COSTS.train_epoch * 2))
    assert adapted_final_epochs(100.0, 4, 1.0, 1.0, reference_epoch=1.0) == 20


def test_durations_parse_and_bad_ones_are_one_line_errors(capsys):
    assert parse_duration("30m") == 1800 and parse_duration("2h") == 7200 and parse_duration("1h30m") == 5400
    assert parse_duration("90s") == 90 and parse_duration("45") == 45 * 60 and parse_duration(" 1.5h ") == 5400
    for bad in ("abc", "10x", "30s", "m", "1h 30m", "-5m", "nan"):
        with pytest.raises(UserError, match="--time-budget"):
            parse_duration(bad)
    assert main(["search", "--cloud", "c", "--data", "digits", "--device", "x86-server", "--out", "o", "--time-budget", "soon"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--time-budget 'soon' is not a duration" in err[0]


def test_lengths_not_given_are_optimizer_steps_for_the_data():
    small = resolve_lengths(SearchConfig(batch_size=64), 806)  # digits' fit part: 12 steps an epoch
    assert small.supernet_epochs == round(DEFAULT_STEPS["supernet_epochs"] / 12) and small.final_epochs == small.supernet_epochs
    large = resolve_lengths(SearchConfig(batch_size=64), 12_000)  # 187 steps an epoch: one epoch is already 187 steps
    assert large.supernet_epochs == 1 and large.final_epochs == 1 and large.epochs == 1
    assert resolve_lengths(SearchConfig(supernet_epochs=7, batch_size=64), 12_000).supernet_epochs == 7  # given: kept


def test_a_budget_sets_what_is_not_given_and_a_larger_budget_buys_more():
    short, plan = plan_budget(SearchConfig(), 1800, COSTS)
    assert all(v is not None for v in plan["lengths"].values()) and plan["adapt_trials"] and plan["adapt_final"]
    assert 0.5 * 1800 <= plan["planned_s"] <= 1800
    long, long_plan = plan_budget(SearchConfig(), 7200, COSTS)
    assert long.supernet_epochs > short.supernet_epochs and long.trials > short.trials and long.final_epochs >= short.final_epochs
    assert long_plan["planned_s"] <= 7200
    given, given_plan = plan_budget(SearchConfig(trials=33, supernet_epochs=2), 1800, COSTS)
    assert given.trials == 33 and given.supernet_epochs == 2 and "adapt_trials" not in given_plan
    # Too little time for MIN_FINAL_EPOCHS epochs of every final trial: fewer trials, each longer.
    tight, _ = plan_budget(SearchConfig(final_trials=12, finalists=3), 100, COSTS)
    assert tight.final_trials == 4
    standalone, splan = plan_budget(SearchConfig(strategy="standalone"), 1800, COSTS)
    assert standalone.trials >= 4 and splan["trials_s"] + splan["final_s"] <= 1800
    assert splan["adapt_trials"]  # timed on the default alone: counted again from the trials' pace


def test_adapted_counts_follow_the_measured_rate():
    assert adapted_trials(10, 0.5, 100.0, 40.0) == 10 + 120
    assert adapted_trials(10, 0.5, 30.0, 40.0) == MIN_TRIALS  # late already: no more trials
    assert adapted_final_epochs(100.0, 5, 1.0, 1.0) == 20 and adapted_final_epochs(100.0, 5, 1.0, 2.0) == 10
    assert adapted_final_epochs(1.0, 5, 1.0, 1.0) == 1


def test_a_time_budgeted_search_ends_near_it_and_resumes_with_its_plan(search_setup):
    root, data = search_setup
    out = root / "budget"
    args = ["search", "--cloud", str(root / "cloud"), "--data", data, "--device", "x86-server", "--out", str(out),
            "--resolutions", "24", "--batch-size", "64", "--bn-images", "64", "--quiet", "--time-budget", "1m",
            "--final-trials", "2", "--finalists", "1"]
    start = time.perf_counter()
    assert main(args) == 0
    seconds = time.perf_counter() - start
    assert seconds < 1.6 * 60, f"a 1-minute search took {seconds:.0f} s"
    summary = json.loads((out / "search.json").read_text())
    plan, config = summary["plan"], summary["config"]
    assert plan["budget_s"] == 60 and plan["trials_adapted"] and plan["final_adapted"]
    assert {k: config[k] for k in plan["lengths"]} == plan["lengths"]
    assert sum(r["state"] in ("COMPLETE", "PRUNED") for r in summary["trials"]) == config["trials"] >= MIN_TRIALS
    assert summary["supernet"]["epochs"] == config["supernet_epochs"]
    saved = (out / "plan.json").read_text()
    assert main(args) == 0  # resumed: the same lengths (the study recorded them), no new measurement
    assert (out / "plan.json").read_text() == saved
    assert json.loads((out / "search.json").read_text())["config"] == config


def test_the_trial_pace_follows_the_recent_trials_from_the_plan_s_estimate(monkeypatch):
    clock = iter([0, 0, 10, 20, 30, 90, 150, 210, 270])
    monkeypatch.setattr("hetero.search._budget.time.perf_counter", lambda: float(next(clock)))
    pace = TrialPace(planned_s=10.0, window=4)
    assert pace.seconds_per_trial == 10.0
    pace.tick()  # a trial over the device budget, pruned at once: one quick trial does not set the pace
    assert pace.seconds_per_trial == pytest.approx(7.5)
    for _ in range(2):
        pace.tick()
    assert pace.seconds_per_trial == pytest.approx(7.5)  # 10, 0, 10, 10
    for _ in range(5):  # the sampler now proposes networks that train for a minute: the window is theirs alone
        pace.tick()
    assert pace.seconds_per_trial == pytest.approx(60.0)
    # A standalone search's floor is its own: four trainings, not a oneshot's ten evaluations.
    assert adapted_trials(2, 60.0, 30.0, 0.0, fewest=MIN_STANDALONE_TRIALS) == MIN_STANDALONE_TRIALS


def test_a_standalone_search_sizes_its_fine_tuning_from_its_finalists_trials(tmp_path):
    from types import SimpleNamespace

    from hetero._io import write_json
    from hetero.search._run import PLAN_FILE, _adapt_final

    def row(number, keep, cross_map, seconds, **attrs):
        return {"number": number, "state": "COMPLETE", "arch": {"space": "cloud_pruned", "keep": keep}, "cross_map": cross_map,
                "macs": int(keep * 1e6), "feasible": True, "epoch_seconds": seconds / 2, "epochs_trained": 2, **attrs}

    # The default (keep 0.5, 30 s an epoch) as the plan timed it; the finalists train at 10 s an epoch.
    rows = [row(0, 0.5, 0.30, 60.0, reference="default"), row(1, 0.25, 0.40, 20.0), row(2, 0.2, 0.35, 20.0),
            row(3, 0.3, 0.20, 20.0)]
    plan = {"adapt_final": True, "lengths": {"final_epochs": 1}, "costs": {"train_epoch": 30.0, "reference_epoch": 0.0}}
    write_json(tmp_path / PLAN_FILE, {"plan": plan})
    config = SearchConfig(strategy="standalone", final_trials=3, finalists=2, time_budget=1000.0 / PLANNED)
    run = SimpleNamespace(config=config, supernet_info={}, costs=SimpleNamespace(unit="macs"), run_dir=tmp_path)
    _adapt_final(run, plan, rows, started=time.perf_counter())
    # Finalists 1 and 2 and the default: (10 + 10 + 30) / 3 s an epoch, 3 trainings an epoch, ~1000 s left.
    assert plan["finalists_epoch_s"] == pytest.approx(50 / 3)
    assert plan["final_adapted"] and run.config.final_epochs == 19  # (1000 s less the test's own) / 50 s an epoch
    assert plan["lengths"]["final_epochs"] == 19 > int(1000 / (3 * 30.0))  # the default's pace would allow 11
