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
    # Recorded with two fine-tuning seeds, reused by a run that trains a third.
    assert search_efficiency._reused_fine_tunings(_args(tmp_path, supernet_seed=2, tau_seeds=3)) == wanted
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


def test_a_reused_row_trains_only_the_missing_seeds_and_proxies(search_efficiency, monkeypatch) -> None:
    import hetero.search
    import hetero.search._standalone
    from hetero.training import EDGE_DEFAULTS

    archs = [{"resolution": 24, "width": 1}, {"resolution": 28, "width": 2}]

    class Space:  # draws the two subnets in order
        def __init__(self) -> None:
            self.drawn = iter(archs)

        def random_arch(self, rng):
            return next(self.drawn)

    class Costs:
        def measure(self, arch):
            return {"macs": 10 * arch["width"]}

    class Supernet:
        def extract(self, arch):
            return {"weights of": arch["width"]}

    trained: list[tuple[int, int, int]] = []  # (width, epochs, seed) of every training

    def train_scored(arch, config, data, device, seed, net):
        trained.append((arch["width"], config.epochs, seed))
        return None, {"cross_map": 0.5 + arch["width"] / 10 + seed / 1000 + config.epochs / 100}

    monkeypatch.setattr(hetero.search, "evaluate_subnet", lambda supernet, arch, data, bn_images: {"cross_map": arch["width"] / 10})
    monkeypatch.setattr(hetero.search._standalone, "train_scored", train_scored)
    reused = _row(tau_macs=[10, 20], tau_inherited=[0.1, 0.2],
                  tau_fine_tuned=[[0.31, 0.32], [0.35, 0.36]], tau_proxy={"2": {"scores": [0.25, 0.27], "kendall_tau": 1.0}})
    args = argparse.Namespace(tau_on="val", seed=0, tau_subnets=2, tau_sample="space", max_macs=0, tau_reused=reused,
                              tau_reuse="rows.json", tau_proxy_epochs=[1], tau_epochs=6, batch_size=32, bn_images=8, tau_seeds=3)
    ranking = search_efficiency._ranking(Supernet(), args, Space(), None, Costs(), EDGE_DEFAULTS, "cpu")
    # Seeds 0 and 1 and the 2-epoch proxy were recorded: only seed 2 and the 1-epoch proxy are trained.
    assert trained == [(1, 1, 1000), (1, 6, 2), (2, 1, 1000), (2, 6, 2)]
    assert [r[:2] for r in ranking["fine_tuned_runs"]] == [[0.31, 0.32], [0.35, 0.36]]
    assert [len(r) for r in ranking["fine_tuned_runs"]] == [3, 3]
    assert ranking["proxy"][2]["scores"] == [0.25, 0.27]
    assert set(ranking["proxy"]) == {1, 2}
