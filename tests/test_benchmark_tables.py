"""benchmarks/README.md's marked tables are what benchmarks/tables.py renders from benchmarks/results/."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def tables(benchmark_script):
    return benchmark_script("tables")


def test_the_readme_tables_are_rendered_from_the_recorded_results(tables) -> None:
    text = (ROOT / "benchmarks" / "README.md").read_text()
    assert tables.MARKER.search(text), "benchmarks/README.md has no generated table"
    assert tables.rendered_readme(text) == text, "run `python benchmarks/tables.py` after recording results"


def test_every_benchmark_shows_its_latest_run_as_a_rendered_table(tables) -> None:
    """Each benchmarks/*.py has recorded rows and at least one table rendered from them (not hand-copied)."""
    text = (ROOT / "benchmarks" / "README.md").read_text()
    shown = {m["name"] for m in tables.MARKER.finditer(text)}
    shown |= {tables.DERIVED_TABLES[name][0] for name in shown if name in tables.DERIVED_TABLES}
    scripts = {p.stem for p in (ROOT / "benchmarks").glob("*.py")} - {"tables"}
    assert scripts - shown == set(), "benchmarks without a rendered table in benchmarks/README.md"
    assert all(tables.load(name) for name in scripts), "benchmarks without recorded rows in benchmarks/results/"


def test_recording_replaces_a_row_with_the_same_key_and_keeps_the_others(tables, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(tables, "RESULTS", tmp_path)
    row = {"set": "s", "method": "m", "paragon": 0.5, "homogeneous": 0.2, "cross": 0.3, "cross_over_paragon": 0.6,
           "macs_ratio": 8.4, "compatible": True, "collapsed": False, "steps": 10, "edge_seconds": 60.0}
    arch = tmp_path / "arch.json"
    arch.write_text(json.dumps({"space": "cloud_pruned", "keep": 0.37, "resolution": 48}))
    for cross, method in ((0.3, "m"), (0.4, "m"), (0.1, "other")):
        run = tmp_path / "run.json"
        run.write_text(json.dumps([{**row, "cross": cross, "method": method}]))
        tables.record("real_data", run, arch)
    rows = tables.load("real_data")
    assert [(r["method"], r["cross"]) for r in rows] == [("m", 0.4), ("other", 0.1)]
    table = tables.render("real_data", rows, {"method": "m"})
    assert "| s | m | cloud_pruned keep 0.37 @48 px | 8.4x | 0.5000 | 0.2000 | 0.4000 | **0.600** |" in table
    assert table.count("\n") == 3  # header, rule, the one row the filter keeps


def test_a_filter_may_list_alternatives(tables) -> None:
    rows = [{"set": name, "method": "m", "paragon": 0.5, "homogeneous": 0.2, "cross": 0.3, "cross_over_paragon": 0.6,
             "macs_ratio": 8.4, "compatible": True, "collapsed": False, "steps": 10, "edge_seconds": 60.0,
             "machine": "cpu"} for name in ("a", "b", "c")]
    table = tables.render("real_data", rows, {"set": "a,c"})
    assert [line.split(" | ")[0] for line in table.splitlines()[2:]] == ["| a", "| c"]


def test_scale_rows_are_keyed_by_their_index_settings(tables, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(tables, "RESULTS", tmp_path)
    base = {"gallery": "g", "items": 1000, "queries": 10, "method": "ivf", "build_s": 1.0, "search_s": 0.5,
            "queries_per_s": 20.0, "x_exact": 10.0, "recall_at_1": 0.9, "recall_at_10": 0.8, "peak_rss_mib": 100.0}
    run = tmp_path / "rows.jsonl"  # benchmarks/scale.py --out writes JSON lines
    run.write_text("\n".join(json.dumps({**base, "params": {"nlist": 32, "nprobe": p}}) for p in (4, 8)) + "\n")
    tables.record("scale", run, None)
    table = tables.render("scale", tables.load("scale"), {"gallery": "g"})
    assert "| nlist 32, nprobe 4 |" in table and "| nlist 32, nprobe 8 |" in table


def test_a_quoted_filter_value_may_hold_spaces(tables, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(tables, "RESULTS", tmp_path)
    base = {"items": 1000, "queries": 10, "method": "flat", "queries_per_s": 20.0, "machine": "cpu"}
    rows = [{**base, "gallery": "omniglot cloud embeddings"}, {**base, "gallery": "synthetic noise 1.75"}]
    (tmp_path / "scale.json").write_text(json.dumps({"rows": rows}))
    text = '<!-- table scale gallery="synthetic noise 1.75" -->\n<!-- /table -->'
    rendered = tables.rendered_readme(text)
    assert rendered.startswith(text.split("\n")[0]) and "| synthetic noise 1.75 |" in rendered
    assert "omniglot" not in rendered


def test_a_json_lines_file_of_one_row_is_recorded_as_that_row(tables, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(tables, "RESULTS", tmp_path)
    row = {"gallery": "g", "items": 1000, "queries": 1000, "method": "exact", "queries_per_s": 90.0, "map": 0.3}
    run = tmp_path / "one.jsonl"
    run.write_text(json.dumps(row) + "\n")
    tables.record("scale", run, None)
    assert [(r["method"], r["map"]) for r in tables.load("scale")] == [("exact", 0.3)]


def test_the_kendall_tau_table_shows_search_efficiency_rows_with_a_ranking(tables, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(tables, "RESULTS", tmp_path)
    common = {"data": "omniglot", "space": "mobilenet_v3", "minutes": 10.5, "final_epochs": 12, "trial_epochs": 2,
              "paragon": 0.5, "pick_macs": 1000}
    oneshot = {**common, "strategy": "oneshot", "supernet_epochs": 24, "test_cross_map": 0.37, "kendall_tau": 0.2,
               "tau_subnets": 3, "tau_sample": "space", "tau_on": "test", "tau_epochs": 6, "tau_seeds": 2,
               "tau_seed_ceiling": 0.333, "tau_fine_tuned": [[0.30, 0.32], [0.36, 0.34], [0.33, 0.33]],
               "tau_inherited": [0.1, 0.2, 0.3]}
    run = tmp_path / "run.json"
    run.write_text(json.dumps({"rows": [oneshot, {**common, "strategy": "default", "test_cross_map": 0.23}]}))
    tables.record("search_efficiency", run, None)
    text = "<!-- table kendall_tau strategy=oneshot -->\n<!-- /table -->"
    rendered = tables.rendered_readme(text)
    assert "| omniglot | 24 | 3 | the whole space | test classes | 6 x 2 | 0.310-0.350 | **+0.200** |" in rendered
    # Beside the tau, its bootstrap interval over the subnets, from the recorded per-subnet scores.
    assert re.search(r"\*\*\+0\.200\*\* \| [+-][01]\.\d\d to [+-][01]\.\d\d \| \+0\.333 \|", rendered)
    assert "default" not in rendered
    # The main table names the supernet's epochs where the run set them.
    assert "supernet 24 / 12" in tables.render("search_efficiency", tables.load("search_efficiency"), {})
    # A supernet trained with another seed (--supernet-seed) is a row of its own, named by its seed.
    run.write_text(json.dumps({"rows": [{**oneshot, "supernet_seed": 1, "kendall_tau": 0.6}]}))
    tables.record("search_efficiency", run, None)
    rendered = tables.rendered_readme(text)
    assert "| omniglot | 24 | 3 |" in rendered and "| omniglot | 24 (seed 1) | 3 |" in rendered
    assert "**+0.600**" in rendered and "**+0.200**" in rendered
    assert "supernet 24 (seed 1) / 12" in tables.render("search_efficiency", tables.load("search_efficiency"), {})
    # The same settings run on another CPU sit beside the first run, not over it.
    run.write_text(json.dumps({"rows": [{**oneshot, "kendall_tau": 0.5, "machine": "Other CPU, 2 cores"}]}))
    tables.record("search_efficiency", run, None)
    rendered = tables.rendered_readme(text)
    assert "**+0.500**" in rendered and "**+0.200**" in rendered and "Other CPU, 2 cores" in rendered
    run.write_text(json.dumps({"rows": [{**oneshot, "kendall_tau": 0.4, "machine": "Other CPU, 2 cores"}]}))
    tables.record("search_efficiency", run, None)
    assert "**+0.400**" in tables.rendered_readme(text) and "**+0.500**" not in tables.rendered_readme(text)
