"""benchmarks/search_efficiency.py reuses recorded fine-tunings only for the run they were measured in."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest


@pytest.fixture
def search_efficiency(benchmark_script):
    return benchmark_script("search_efficiency")


def _args(tmp_path: Path, **changes) -> argparse.Namespace:
    values = {"data": "omniglot:/data/omniglot", "space": "mobilenet_v3", "seed": 0, "supernet_seed": 0,
              "supernet_epochs": 24, "tau_subnets": 2, "tau_epochs": 6, "tau_sample": "space", "tau_on": "test",
              "tau_seeds": 2, "tau_reuse": str(tmp_path / "rows.json")}
    return argparse.Namespace(**{**values, **changes})


def _row(**changes) -> dict:
    row = {"data": "omniglot", "space": "mobilenet_v3", "strategy": "oneshot", "supernet_epochs": 24, "tau_subnets": 2,
           "tau_epochs": 6, "tau_sample": "space", "tau_on": "test", "tau_seeds": 2, "tau_macs": [10, 20],
           "tau_inherited": [0.2, 0.3], "tau_fine_tuned": [[0.31, 0.32], [0.35, 0.36]]}
    return {**row, **changes}


def test_the_matching_oneshot_row_is_reused(search_efficiency, tmp_path) -> None:
    wanted = _row(supernet_seed=2)
    rows = [_row(), wanted, _row(supernet_seed=2, tau_subnets=40), {**_row(supernet_seed=2), "strategy": "default"}]
    (tmp_path / "rows.json").write_text(json.dumps({"rows": rows}))
    assert search_efficiency._reused_fine_tunings(_args(tmp_path, supernet_seed=2)) == wanted
    # A row without supernet_seed was trained with --seed.
    assert search_efficiency._reused_fine_tunings(_args(tmp_path)) == rows[0]


def test_no_reuse_without_the_option(search_efficiency, tmp_path) -> None:
    assert search_efficiency._reused_fine_tunings(_args(tmp_path, tau_reuse=None)) is None


@pytest.mark.parametrize("changes", [{"supernet_seed": 1}, {"tau_epochs": 3}, {"tau_on": "val"}, {"supernet_epochs": None}])
def test_a_row_of_other_settings_is_refused_with_one_line(search_efficiency, tmp_path, changes) -> None:
    (tmp_path / "rows.json").write_text(json.dumps({"rows": [_row()]}))
    with pytest.raises(SystemExit, match="no oneshot row with .*; run without --tau-reuse"):
        search_efficiency._reused_fine_tunings(_args(tmp_path, **changes))


def test_a_file_without_rows_is_refused_with_one_line(search_efficiency, tmp_path) -> None:
    (tmp_path / "rows.json").write_text("[1, 2]")
    with pytest.raises(SystemExit, match="not a results file with rows"):
        search_efficiency._reused_fine_tunings(_args(tmp_path))
