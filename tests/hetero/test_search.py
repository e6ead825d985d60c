"""hetero search and hetero report: the study helpers, both strategies end to end, and real processes.

A tiny cloud model (the smallest mobilenet_v3 at 24 px, 1 epoch) and 300 digits images keep every
search here to seconds; the figures are meaningless, the files and the bookkeeping are not. The
process tests run `python -m hetero search` workers: two on one study (the default journal file,
and a real PostgreSQL server where this machine has one, started on a temporary folder), and one
killed with SIGKILL half-way, then resumed.
"""

from __future__ import annotations

import base64
import glob
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch

from hetero.cli import main
from hetero.errors import UserError

TINY = ["--resolutions", "24", "--batch-size", "64", "--bn-images", "64", "--quiet"]
FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
ENV = {**os.environ, "HETERO_THREADS": "1", "PYTHONWARNINGS": "ignore"}


def _search(root, data, out, *extra) -> list[str]:
    return ["search", "--cloud", str(root / "cloud"), "--data", data, "--device", "x86-server", "--out", str(out), *TINY, *extra]


def _journal(out: Path):
    from hetero.search import open_storage

    return open_storage(None, out)[0]


def _study(out: Path, name: str = "hetero-search") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=_journal(out))


# --- results and study helpers (no training) -------------------------------------------------


def _row(number, cross, macs, feasible=True, state="COMPLETE"):
    arch = {"space": "s", "resolution": 24, "n": number}
    return {"number": number, "state": state, "arch": arch, "cross_map": cross, "macs": macs, "feasible": feasible, "seconds": 1.0}


def test_pareto_front_keeps_exactly_the_non_dominated_trials():
    from hetero.search import best_feasible, pareto_front

    rows = [_row(0, 0.5, 100), _row(1, 0.6, 200), _row(2, 0.55, 300), _row(3, 0.7, 400, feasible=False),
            _row(4, 0.9, 50, state="PRUNED"), _row(5, 0.5, 150)]
    front = pareto_front(rows)
    assert [r["number"] for r in front] == [0, 1, 3]  # 2 is beaten by 1, 5 by 0; pruned trials are not scored
    for r in rows:
        if r["state"] == "COMPLETE" and r not in front:
            assert any(f["cross_map"] >= r["cross_map"] and f["macs"] <= r["macs"] for f in front)
    # Finalists by Pareto rank among the trials under budget (3 is over): the first front best
    # first (1, 0), then the second front's best (2 beats 5 on cross mAP).
    assert [r["number"] for r in best_feasible(rows, 3)] == [1, 0, 2]


def test_config_rejects_bad_values_with_the_flag_named():
    from hetero.search import SearchConfig

    for kwargs, flag in (({"strategy": "grid"}, "--strategy"), ({"trials": 0}, "--trials"), ({"max_macs": -5}, "--max-macs"),
                         ({"max_macs": "lots"}, "--max-macs"), ({"val_fraction": 0.9}, "--val-fraction")):
        with pytest.raises(UserError, match=flag):
            SearchConfig(**kwargs)
    assert SearchConfig(strategy="standalone").directions == ["maximize"]  # pruning needs one objective
    assert SearchConfig(strategy="standalone", pruner="none").directions == ["maximize", "minimize"]
    assert SearchConfig(strategy="oneshot").directions == ["maximize", "minimize"]


def test_run_trials_reaches_n_resumes_and_retries_a_dead_workers_trial(tmp_path):
    from hetero.search import open_storage, open_study, run_trials

    storage, _ = open_storage(None, tmp_path)
    study = open_study(storage, "s", ["maximize"], optuna.samplers.RandomSampler(seed=0), optuna.pruners.NopPruner(), {"a": 1})

    def objective(trial):
        x = trial.suggest_float("x", 0, 1)
        if trial.number == 1:
            raise optuna.TrialPruned()
        return x

    assert run_trials(study, objective, 3, "t") == 3
    # A trial left RUNNING by a process that no longer exists (pid 2**22 + 1 is above Linux's pid_max).
    orphan = study.ask()
    x = orphan.suggest_float("x", 0, 1)
    orphan.set_user_attr("worker", f"{os.uname().nodename}:{2**22 + 1}:12345")
    assert run_trials(study, objective, 5, "t") == 2
    trials = study.get_trials()
    states = [t.state for t in trials]
    assert states.count(optuna.trial.TrialState.FAIL) == 1 and trials[orphan.number].state == optuna.trial.TrialState.FAIL
    retry = [t for t in trials if t.system_attrs.get("failed_trial") == orphan.number]
    assert len(retry) == 1 and retry[0].params["x"] == x and retry[0].state == optuna.trial.TrialState.COMPLETE
    assert sum(s in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED) for s in states) == 5
    assert run_trials(study, objective, 5, "t") == 0  # nothing left to do: a re-run returns at once
    with pytest.raises(UserError, match="other settings"):
        open_study(storage, "s", ["maximize"], None, None, {"a": 2})
    with pytest.raises(UserError, match="objectives"):
        open_study(storage, "s", ["maximize", "minimize"], None, None, {"a": 1})


def test_the_first_process_of_a_run_folder_samples_with_the_seed_itself(tmp_path):
    """A lone search draws the same trials whatever its process id; later workers draw others."""
    from hetero.search._storage import worker_seed

    firsts = [worker_seed(3, tmp_path / name, shared_storage=False) for name in ("a", "b")]
    assert firsts[0] == firsts[1] == worker_seed(3, tmp_path / "c", shared_storage=False)
    assert worker_seed(4, tmp_path / "d", shared_storage=False) != firsts[0]
    later = [worker_seed(3, tmp_path / "a", shared_storage=False) for _ in range(3)]
    assert len({firsts[0], *later}) == 4  # the second, third and fourth worker of run folder a
    # Workers of a storage the user gave may share a worker number on other machines: their identity enters.
    assert worker_seed(3, tmp_path / "e", shared_storage=True) != firsts[0]


def test_storage_url_errors_are_one_line():
    from hetero.search import open_storage

    with pytest.raises(UserError, match=r"cannot be opened.*server is up"):
        open_storage("postgresql://u:secret@127.0.0.1:1/db", None)
    try:
        open_storage("postgresql://u:secret@127.0.0.1:1/db", None)
    except UserError as exc:
        assert "secret" not in str(exc)


def test_costs_and_budget_constraints():
    from hetero.devices import load_profile
    from hetero.search import CostModel
    from hetero.search_spaces import get_space

    space = get_space("mobilenet_v3")
    costs = CostModel(space, load_profile("pixel-8"), "macs", 2_000_000, 128, 1)
    small, default = costs.measure(space.smallest_arch()), costs.measure(space.default_arch())
    assert small["macs"] < 2_000_000 < default["macs"]
    assert small["artifact_bytes"] == 2 * small["params"]  # pixel-8 is fp16
    assert costs.budgets == {"macs": 2_000_000, "params": 1_000_000, "artifact_bytes": 4_000_000}
    assert costs.constraints(default)["macs"] == pytest.approx(default["macs"] / 2e6 - 1)
    assert all(v <= 0 for v in costs.constraints(small).values())
    with pytest.raises(UserError, match=r"jetson-orin-nano's tensorrt .* not available here.*--objective macs"):
        CostModel(space, load_profile("jetson-orin-nano"), "latency", None, 128, 1)


# --- end to end ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def oneshot(search_setup):
    root, data = search_setup
    out = root / "oneshot"
    args = _search(root, data, out, "--strategy", "oneshot", "--trials", "6", "--supernet-epochs", "1", "--finalists", "2",
                   "--final-trials", "2", "--final-epochs", "1", "--max-macs", "3000000")
    assert main(args) == 0
    return root, data, out, args


def test_oneshot_writes_pareto_best_and_summary(oneshot):
    from hetero.models import load_edge
    from hetero.search_spaces import get_space, load_arch

    _, _, out, _ = oneshot
    summary = json.loads((out / "search.json").read_text())
    rows = summary["trials"]
    assert len(rows) == 6 and all(r["state"] == "COMPLETE" for r in rows)
    assert rows[0]["reference"] == "default" and rows[0]["arch"] == get_space("mobilenet_v3", resolutions=(24,)).default_arch()
    assert summary["supernet"]["trained_now"] and summary["supernet"]["epochs"] == 1
    front = json.loads((out / "pareto.json").read_text())["front"]
    assert [f["trial"] for f in front] == summary["pareto"] and front
    for f in front:
        assert set(f) >= {"arch", "macs", "params", "cross_map", "homogeneous_map", "latency_ms"}
    pick = summary["pick"]
    assert pick["under_budget"] and pick["macs"] <= 3_000_000
    # The best candidates under the budget by inherited weights (all 6 here: the default of 6 asked
    # for) were each fine-tuned briefly (a third of --final-epochs 1: one epoch), and the finalists
    # chosen by that score: the best of it first.
    from hetero.search import best_feasible

    rerank = pick["rerank"]
    assert rerank["epochs"] == 1 and rerank["seconds"] > 0
    assert [c["search_trial"] for c in rerank["candidates"]] == [r["number"] for r in best_feasible(rows, 6)]
    assert all(c["search"] == next(r["cross_map"] for r in rows if r["number"] == c["search_trial"]) for c in rerank["candidates"])
    best = max(rerank["candidates"], key=lambda c: c["rerank"])
    assert pick["finalists"][0] == best["search_trial"] and pick["search_trial"] in pick["finalists"]
    assert len(list((out / "rerank").glob("trial-*.json"))) == len(rerank["candidates"])
    # The default (under the budget) is always a finalist, tried first by reusing the reference, so
    # the pick is at least as good on validation.
    assert 0 in pick["finalists"] and len(pick["finalists"]) == 2 + (0 not in pick["finalists"][:2])
    first = pick["final_trials"][0]
    assert first["reused"] == "reference" and first["cross_map"] == summary["reference"]["val"]["cross_map"]
    assert pick["val"]["cross_map"] >= summary["reference"]["val"]["cross_map"]
    # Each fine-tuned finalist's search score against its fine-tuned one (the default's: the reference's).
    pairs = {p["search_trial"]: p for p in pick["ranking"]["pairs"]}
    assert pairs[0]["fine_tuned"] == summary["reference"]["val"]["cross_map"] and pairs[0]["search"] == rows[0]["cross_map"]
    assert (pick["ranking"]["kendall_tau"] is None) == (len(pairs) < 2) or len(set(p["search"] for p in pairs.values())) == 1
    assert summary["validation"]["cloud_val_map"] == summary["paragon"]["val_map"]
    # A fine-tuned model replaces the reference only when the bootstrap is 95% sure it is better.
    choice = pick["choice"]
    assert choice["required"] == 0.95
    if pick["final_trial"] == first["number"]:
        assert choice["rule"] in ("kept the reference: no trial surely beats it", "the reference is the best on validation")
        assert choice.get("confidence", 0.0) < 0.95
    else:
        assert choice["challenger"] == pick["final_trial"] and choice["confidence"] >= 0.95
    from hetero.search._choice import decode_scores

    final = _study(out, "hetero-search.final").get_trials()
    complete = [t for t in final if t.state.name == "COMPLETE"]
    assert all(len(decode_scores(t.user_attrs["val_ap"])) == summary["data"]["val_images"] for t in complete)
    # The per-query APs average to the trial's validation cross mAP.
    assert all(np.nanmean(decode_scores(t.user_attrs["val_ap"])) == pytest.approx(t.value, abs=1e-4) for t in complete)
    assert len(decode_scores(summary["reference"]["val_ap"])) == summary["data"]["val_images"]
    edge = load_edge(out / "best")
    assert edge.arch == pick["arch"] == load_arch(out / "best" / "arch.json")
    assert edge.meta["evaluation"]["cross_torch"]["map"] == pytest.approx(pick["test"]["cross_torch"]["map"])
    assert 0 <= summary["reference"]["test"]["cross_torch"]["map"] <= 1
    assert summary["speed"]["oneshot_seconds_per_arch"] > 0 and summary["speed"]["speedup"] > 0
    assert summary["data"]["val_images"] > 0 and summary["data"]["fit_images"] + summary["data"]["val_images"] == summary["data"]["train_images"]


def test_rerun_resumes_the_study_and_reuses_the_supernet(oneshot):
    _, _, out, args = oneshot
    before = {t.number: (t.params, t.values) for t in _study(out).get_trials()}
    mtime = (out / "supernet.pt").stat().st_mtime_ns
    trials_at = args.index("--trials") + 1
    assert main([*args[:trials_at], "8", *args[trials_at + 1:]]) == 0
    after = {t.number: (t.params, t.values) for t in _study(out).get_trials()}
    assert len(after) == 8 and all(after[n] == before[n] for n in before)
    assert (out / "supernet.pt").stat().st_mtime_ns == mtime
    assert not json.loads((out / "search.json").read_text())["supernet"]["trained_now"]
    # Another cloud model, data or strategy on the same study is refused, naming the difference.
    changed = [*args[:trials_at], "8", *args[trials_at + 1:], "--val-fraction", "0.3"]
    assert main(changed) == 2


def test_subnet_scored_in_the_supernet_is_the_extracted_network(search_setup):
    from dataclasses import replace

    from hetero.data import load_split
    from hetero.models import load_cloud
    from hetero.search import SearchData, evaluate_subnet, train_supernet
    from hetero.search_spaces import get_space
    from hetero.training import EDGE_DEFAULTS

    root, data = search_setup
    cloud = load_cloud(root / "cloud")
    search_data = SearchData.prepare(cloud, load_split(data), 0.2, 0, 0.0625)
    space = get_space("mobilenet_v3", resolutions=(24,))
    supernet = space.supernet(cloud.embed_dim, 1)
    history = train_supernet(supernet, search_data, replace(EDGE_DEFAULTS, epochs=1, batch_size=64), 1, torch.device("cpu"))
    assert len(history) == 1 and history[0]["alignment"] > 0
    arch = space.random_arch(np.random.default_rng(3))
    scores = evaluate_subnet(supernet, arch, search_data, 64)
    extracted = supernet.extract(arch).eval()
    q = search_data.embed_val(extracted, 24)
    assert np.abs(q - search_data.embed_val(supernet, 24)).max() < 1e-5
    assert search_data.score(q) == pytest.approx(scores)


def test_supernet_trains_the_largest_first_sorts_channels_then_distils_in_place(search_setup, monkeypatch):
    from dataclasses import replace

    from hetero.data import load_split
    from hetero.models import load_cloud
    from hetero.search import SearchData, train_supernet
    from hetero.search._oneshot import warmup_epochs
    from hetero.search_spaces import Supernet, get_space
    from hetero.training import EDGE_DEFAULTS

    root, data = search_setup
    cloud = load_cloud(root / "cloud")
    search_data = SearchData.prepare(cloud, load_split(data), 0.2, 0, 0.0625)
    supernet = get_space("mobilenet_v3", resolutions=(24,)).supernet(cloud.embed_dim, 1)
    sorts: list[dict] = []
    sort = Supernet.sort_channels

    def spy(self) -> None:
        sorts.append(self.active_arch)  # the warm-up trained the largest subnet: it is still active
        sort(self)

    monkeypatch.setattr(Supernet, "sort_channels", spy)
    history = train_supernet(supernet, search_data, replace(EDGE_DEFAULTS, epochs=4, batch_size=64), 1, torch.device("cpu"))
    assert warmup_epochs(4) == 1 and warmup_epochs(3) == 0 and warmup_epochs(20) == 5
    assert [r["phase"] for r in history] == ["largest", "sandwich", "sandwich", "sandwich"]
    assert sorts == [supernet.space.largest_arch()]
    assert "inplace" not in history[0] and all(r["inplace"] > 0 for r in history[1:])


def test_report_draws_the_front_and_tables(oneshot):
    _, _, out, _ = oneshot
    assert main(["report", str(out)]) == 0
    md = (out / "report.md").read_text()
    summary = json.loads((out / "search.json").read_text())
    assert "![Pareto front](pareto.png)" in md and "## Chosen architecture" in md and "optuna-dashboard" in md
    assert f"Chosen: final trial {summary['pick']['final_trial']} (search trial {summary['pick']['search_trial']})" in md
    assert len(re.findall(r"^\| \d+ \| COMPLETE", md, flags=re.M)) == len(summary["trials"])
    assert f"the cloud's own validation mAP {summary['validation']['cloud_val_map']:.4f}" in md and "Ranking: " in md
    html = (out / "report.html").read_text()
    png = base64.b64decode(re.search(r"data:image/png;base64,([A-Za-z0-9+/=]+)", html).group(1))
    assert png.startswith(b"\x89PNG") and png == (out / "pareto.png").read_bytes()
    assert main(["report", str(out / "missing")]) == 2


def test_best_model_exports_to_onnx(oneshot):
    root, data, out, _ = oneshot
    assert main(["export", "--model", str(out / "best"), "--device", "x86-server", "--data", data, "--out", str(out / "onnx"),
                 "--cloud", str(root / "cloud"), "--quiet"]) == 0
    manifest = json.loads((out / "onnx" / "manifest.json").read_text())
    assert manifest["format"] == "onnx" and manifest["parity_passed"]


def test_standalone_prunes_architectures_over_budget(search_setup, capsys):
    root, data = search_setup
    out = root / "standalone-tiny-budget"
    assert main(_search(root, data, out, "--strategy", "standalone", "--trials", "3", "--epochs", "1", "--max-macs", "1000",
                        "--final-epochs", "1")) == 0
    summary = json.loads((out / "search.json").read_text())
    assert [r["state"] for r in summary["trials"]] == ["PRUNED"] * 3
    assert all(r["pruned_because"] == "over the device budget" for r in summary["trials"])
    assert "pick" not in summary and "no architecture met the budgets" in capsys.readouterr().out


def test_latency_objective_times_each_candidate_on_the_device_runtime(search_setup):
    """--objective latency minimises the p50 latency measured on the profile's runtime (ONNX Runtime
    for x86-server), budgets it, and the front is non-dominated in (cross mAP, latency)."""
    root, data = search_setup
    out = root / "latency"
    # Two trials (each candidate is exported and timed): the default architecture and one sampled.
    assert main(_search(root, data, out, "--strategy", "oneshot", "--trials", "2", "--supernet-epochs", "1", "--final-trials", "0",
                        "--objective", "latency")) == 0
    pareto = json.loads((out / "pareto.json").read_text())
    assert pareto["objective"] == "latency_ms" and pareto["budgets"]["latency_ms"] > 0
    trials = [t for t in _study(out).get_trials() if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(trials) == 2
    for t in trials:  # the second objective is the measured latency, not the MACs
        assert t.user_attrs["latency_runner"] == "OnnxRunner" and t.values[1] == t.user_attrs["latency_ms"] > 0
        assert t.values[1] != t.user_attrs["macs"]
    front = pareto["front"]
    assert front and all(f["latency_ms"] > 0 for f in front)
    for f in front:
        for g in trials:
            better = g.values[0] >= f["cross_map"] and g.values[1] <= f["latency_ms"]
            assert not (better and (g.values[0] > f["cross_map"] or g.values[1] < f["latency_ms"])), "a front entry is dominated"


# --- real processes on one study -------------------------------------------------------------


def _command(root: Path, data: str, out: Path, trials: int, *extra: str) -> list[str]:
    return [sys.executable, "-m", "hetero", "search", "--cloud", str(root / "cloud"), "--data", data, "--device", "x86-server",
            "--out", str(out), "--strategy", "standalone", "--trials", str(trials), "--resolutions", "24", "--batch-size", "32",
            "--epochs", "1", "--final-trials", "0", "--quiet", *extra]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_url():
    """A throwaway PostgreSQL server on a loopback port, or a skip saying what is missing."""
    pytest.importorskip("psycopg", reason="psycopg is not installed (pip install 'psycopg[binary]', in hetero[search])")
    bindirs = sorted(glob.glob("/usr/lib/postgresql/*/bin")) or ([str(Path(shutil.which("initdb")).parent)] if shutil.which("initdb") else [])
    if not bindirs:
        pytest.skip(reason="no PostgreSQL server binaries (initdb, pg_ctl) here: apt-get install postgresql")
    bindir = Path(bindirs[-1])
    as_user: list[str] = []
    folder = Path(tempfile.mkdtemp(prefix="hetero-pg-"))
    if os.geteuid() == 0:  # initdb refuses to run as root
        import pwd

        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip(reason="running as root and there is no 'postgres' user to run the server as")
        os.chown(folder, user.pw_uid, user.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    port = _free_port()
    run = lambda *cmd: subprocess.run([*as_user, *cmd], check=True, capture_output=True, timeout=120)  # noqa: E731
    try:
        run(str(bindir / "initdb"), "-D", str(folder / "data"), "-A", "trust", "-U", "postgres")
        run(str(bindir / "pg_ctl"), "-D", str(folder / "data"), "-l", str(folder / "log"), "-w", "start",
            "-o", f"-p {port} -k {folder} -c listen_addresses=127.0.0.1")
    except subprocess.CalledProcessError as exc:
        shutil.rmtree(folder, ignore_errors=True)
        pytest.skip(reason=f"could not start a PostgreSQL server: {exc.stderr.decode(errors='replace').strip()[-300:]}")
    run(str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "hetero")
    yield f"postgresql://postgres@127.0.0.1:{port}/hetero"
    subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(folder / "data"), "-m", "immediate", "stop"], capture_output=True, timeout=60)
    shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.parametrize("kind", ["journal", "postgresql"])
def test_two_processes_finish_n_trials_together(search_setup, kind, request):
    root, data = search_setup
    n = 6
    if kind == "journal":
        outs = [root / "shared"] * 2  # two workers on one run folder and its journal
        extra: list[str] = []
    else:
        url = request.getfixturevalue("postgres_url")
        outs = [root / "pg-a", root / "pg-b"]  # as if on two machines: only the database is shared
        extra = ["--storage", url]
    workers = [subprocess.Popen(_command(root, data, out, n, *extra), env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
               for out in outs]
    results = [w.communicate(timeout=300) for w in workers]
    for w, (out, err) in zip(workers, results):
        assert w.returncode == 0, err.decode()[-2000:]
        assert b"standalone search:" in out
    study = optuna.load_study(study_name="hetero-search", storage=_journal(outs[0]) if kind == "journal" else extra[1])
    trials = study.get_trials()
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers)) == len(trials)
    finished = [t for t in trials if t.state in FINISHED]
    # Exactly n, but for the rare race of both workers starting the last trial at the same moment.
    assert n <= len(finished) <= n + 1
    assert not [t for t in trials if t.state == optuna.trial.TrialState.RUNNING]
    assert len({t.user_attrs["worker"] for t in trials}) == 2, "both workers ran trials"
    for t in finished:  # standalone reports validation cross mAP after each epoch, for the median pruner
        if t.state == optuna.trial.TrialState.COMPLETE:
            # (the value is the trained model's score: its batch norms are re-estimated after the last report)
            assert set(t.intermediate_values) == {0} and t.value == t.user_attrs["cross_map"]
            # An epoch's seconds apart from the trial's: the cost and the last scoring are not training.
            assert 0 < t.user_attrs["epoch_seconds"] < t.user_attrs["seconds"]


def test_kill_9_then_resume_reaches_n_with_no_trial_lost(search_setup, kill_9_at):
    root, data = search_setup
    n = 4
    out = root / "killed"
    command = _command(root, data, out, n, "--pruner", "none")
    # Killed as its third trial starts training (its parameters drawn): two trials finished, one running.
    kill_9_at(command[3:], HETERO_STOP_TRIAL="2")
    before = {t.number: t for t in _study(out).get_trials()}
    done_before = {k: t for k, t in before.items() if t.state in FINISHED}
    running = [k for k, t in before.items() if t.state == optuna.trial.TrialState.RUNNING]
    assert len(done_before) == 2 and running == [2]

    resumed = subprocess.run(command, env=ENV, capture_output=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr.decode()[-2000:]
    after = {t.number: t for t in _study(out).get_trials()}
    for k, t in done_before.items():  # nothing finished before the kill is lost or changed
        assert after[k].state == t.state and after[k].params == t.params and after[k].values == t.values
    assert sum(t.state in FINISHED for t in after.values()) == n
    assert not [t for t in after.values() if t.state == optuna.trial.TrialState.RUNNING]
    for k in running:  # the trial the kill interrupted failed cleanly and ran again with its parameters
        assert after[k].state == optuna.trial.TrialState.FAIL
        retries = [t for t in after.values() if t.system_attrs.get("failed_trial") == k]
        assert len(retries) == 1 and after[k].params == retries[0].params and retries[0].state in FINISHED
