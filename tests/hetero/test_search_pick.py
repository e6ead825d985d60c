"""How the search picks and scores: the final-phase choice, the default as a finalist, alignment.

No training here: rows and scores are made by hand, or come from a tiny untrained network.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch


def _trial(number, cross, alignment):
    return {"number": number, "cross_map": cross, "alignment": alignment}


def test_choose_best_takes_the_best_cross_map_and_breaks_exact_ties_by_alignment():
    from hetero.search._choice import choose_best

    # A higher alignment does not outweigh a higher cross mAP, however small the gap.
    assert choose_best([_trial(0, 0.996, 0.80), _trial(1, 0.997, 0.70), _trial(2, 0.990, 0.95)])["number"] == 1
    # An exact tie (a saturated validation part) goes to the better aligned, then to the earliest.
    assert choose_best([_trial(0, 0.996, 0.80), _trial(1, 0.996, 0.90), _trial(2, 0.9, 0.99)])["number"] == 1
    assert choose_best([_trial(0, 0.9, None), _trial(1, 0.9, None), _trial(2, 0.9, 0.5)])["number"] == 2
    assert choose_best([_trial(3, 0.9, None), _trial(4, 0.9, None)])["number"] == 3
    with pytest.raises(ValueError):
        choose_best([])


def _scored(number, ap, alignment=0.9):
    from hetero.search._choice import encode_scores

    return {"number": number, "cross_map": float(np.mean(ap)), "alignment": alignment, "val_ap": encode_scores(ap)}


def test_per_query_scores_round_trip_compactly():
    from hetero.search._choice import decode_scores, encode_scores

    scores = np.array([0.0, 1.0, 0.123456789, np.nan, 0.5])
    text = encode_scores(scores)
    assert isinstance(text, str) and len(text) <= 4 * len(scores)
    back = decode_scores(text)
    assert np.isnan(back[3]) and np.allclose(np.delete(back, 3), np.delete(scores, 3), atol=1 / 65534)
    assert len(encode_scores(np.random.default_rng(0).uniform(size=10_000))) < 27_000
    with pytest.raises(ValueError):
        encode_scores(np.array([1.5]))
    assert np.array_equal(decode_scores([0.25, None]), np.array([0.25, np.nan]), equal_nan=True)


def test_choose_pick_replaces_the_reference_only_with_a_model_surely_better():
    from hetero.search import describe_choice
    from hetero.search._choice import choose_pick

    rng = np.random.default_rng(0)
    ref_ap = rng.uniform(0.7, 0.85, 250)
    reference = _scored(0, ref_ap)
    lucky = _scored(1, ref_ap + np.where(np.arange(250) % 2, 0.1, -0.09))  # ahead by 0.005 on average, by noise
    better = _scored(2, ref_ap + 0.004)  # a little ahead on every query
    assert lucky["cross_map"] > better["cross_map"] > reference["cross_map"]

    pick, choice = choose_pick([reference, lucky], 0, 0.95)
    assert pick is reference and choice["challenger"] == 1 and choice["confidence"] < 0.95
    assert "kept because no fine-tuned model surely beats it; the closest, final trial 1" in describe_choice(
        {"final_trial": 0, "search_trial": 0, "choice": choice})
    # The best on validation among those that clear the bar: not the lucky one, the surely better one.
    pick, choice = choose_pick([reference, lucky, better], 0, 0.95)
    assert pick is better and choice == {"rule": "best on validation that surely beats the reference", "required": 0.95,
                                         "challenger": 2, "confidence": 1.0}
    # Without the bar, or without a reference (the default over the budget), the best on validation.
    assert choose_pick([reference, lucky, better], 0, 0.0)[0] is lucky
    assert choose_pick([lucky, better], None, 0.95)[0] is lucky
    # A reference that is itself the best is the pick; a trial without per-query scores cannot challenge.
    worse = _scored(3, ref_ap - 0.01)
    assert choose_pick([reference, worse], 0, 0.95)[0] is reference
    unscored = {**better, "number": 4, "val_ap": None, "cross_map": 0.999}
    pick, choice = choose_pick([reference, unscored], 0, 0.95)
    assert pick is reference and "challenger" not in choice


def _row(number, cross, macs, feasible=True, reference=None):
    return {"number": number, "state": "COMPLETE", "arch": {"space": "s", "n": number}, "cross_map": cross, "macs": macs,
            "feasible": feasible, "reference": reference, "knobs": {}, "homogeneous_map": cross}


def test_the_default_joins_the_finalists_when_under_budget():
    from hetero.search._final import _finalists
    from hetero.search._results import default_row

    class Study:  # the two methods _finalists uses, in memory
        user_attrs: dict = {}

        def set_user_attr(self, key, value):
            self.user_attrs = {**self.user_attrs, key: value}

    class Run:
        class config:
            finalists = 2
            strategy = "standalone"  # no reranking (tested end to end in test_search.py)
            rerank_candidates = 6

        class costs:
            unit = "macs"

    rows = [_row(0, 0.5, 300, reference="default"), _row(1, 0.9, 100), _row(2, 0.8, 50), _row(3, 0.95, 900, feasible=False)]
    assert default_row(rows)["number"] == 0
    assert [r["number"] for r in _finalists(Run, Study(), rows)] == [1, 2, 0]
    # Already among the best: not added twice. Over the budget: not added.
    rows[0]["cross_map"] = 0.99
    assert [r["number"] for r in _finalists(Run, Study(), rows)] == [0, 1]
    rows[0]["feasible"] = False
    assert default_row(rows) is None and [r["number"] for r in _finalists(Run, Study(), rows)] == [1, 2]


def test_scores_include_alignment_and_one_batch_calibration():
    from types import SimpleNamespace

    from hetero.search import SearchData

    rng = np.random.default_rng(0)
    gallery = rng.normal(size=(40, 8)).astype(np.float32)
    labels = np.repeat(np.arange(4), 10)
    data = SearchData(split=None, fit=None, val=SimpleNamespace(labels=labels), cloud=None, targets=None, gallery=gallery)
    perfect = data.score(gallery * 3.0)  # a scaled copy of the cloud's embeddings is perfectly aligned
    assert perfect["alignment"] == pytest.approx(1.0, abs=1e-6)
    noisy = data.score(gallery + rng.normal(size=gallery.shape).astype(np.float32))
    assert 0 < noisy["alignment"] < perfect["alignment"] and set(noisy) == {"cross_map", "homogeneous_map", "alignment"}
    data._cache[("fit", 8)] = torch.zeros(300, 1, 8, 8)
    batches = data.calibration_batches(8, 256)
    assert [len(b) for b in batches] == [256]  # one batch: exact statistics, one forward pass
    assert [len(b) for b in data.calibration_batches(8, 256, batch_size=100)] == [100, 100, 56]


def test_costs_counted_on_the_meta_device_equal_the_built_network():
    from hetero.cost import count_cost
    from hetero.devices import load_profile
    from hetero.search import CostModel
    from hetero.search_spaces import get_space

    space = get_space("mobilenet_v3")
    costs = CostModel(space, load_profile("x86-server"), "macs", None, 32, 1)
    for arch in (space.smallest_arch(), space.default_arch(), space.random_arch(np.random.default_rng(1))):
        r = int(arch["resolution"])
        real = count_cost(space.build(arch, 32, 1), (1, r, r))
        assert {k: costs.measure(arch)[k] for k in ("macs", "params")} == real


def test_open_set_validation_classes_are_disjoint_and_a_saturated_cloud_is_flagged():
    from hetero.data import Dataset, split_dataset
    from hetero.search import SearchData, describe_validation

    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(12), 6)
    dataset = Dataset(rng.normal(size=(len(labels), 1, 8, 8)).astype(np.float32), labels, "synthetic")
    split = split_dataset(dataset, protocol="open", seed=0)
    parts = split_dataset(split.train, protocol=split.protocol, seed=1, test_fraction=0.25)  # as SearchData.prepare cuts it
    centres = rng.normal(size=(12, 8)).astype(np.float32)
    data = SearchData(split=split, fit=parts.train, val=parts.test, cloud=None, targets=None, gallery=centres[parts.test.labels])
    check = data.validation_check()
    assert check["shared_classes"] == 0 and check["val_classes"] == parts.test.num_classes >= 2
    # The cloud's embeddings are its class centres here: a perfect ceiling, flagged as saturated.
    assert check["cloud_val_map"] == pytest.approx(1.0) and check["saturated"]
    assert "does not train on" in describe_validation(check) and "saturated" in describe_validation(check)
    # A handful of open-set classes is flagged with the fix; closed-set validation is not judged by its classes.
    assert check["few_classes"] and "--val-fraction" in describe_validation(check)
    closed = split_dataset(dataset, protocol="closed", seed=0)
    closed_parts = split_dataset(closed.train, protocol=closed.protocol, seed=1, test_fraction=0.25)
    closed_data = SearchData(split=closed, fit=closed_parts.train, val=closed_parts.test, cloud=None, targets=None,
                             gallery=centres[closed_parts.test.labels])
    assert not closed_data.validation_check()["few_classes"] and "noisily" not in describe_validation(closed_data.validation_check())
    data.gallery = rng.normal(size=data.gallery.shape).astype(np.float32)  # a cloud that cannot tell the classes apart
    check = data.validation_check()
    assert check["cloud_val_map"] < 0.9 and not check["saturated"] and "saturated" not in describe_validation(check)


def test_finalist_ranking_compares_search_and_fine_tuned_order():
    from hetero.search import describe_ranking, finalist_ranking, kendall_tau, kendall_tau_interval

    finalists = [{"number": 3, "cross_map": 0.9}, {"number": 5, "cross_map": 0.7}, {"number": 0, "cross_map": 0.5}]
    trials = [{"finalist": 3, "cross_map": 0.80, "first_try": True}, {"finalist": 3, "cross_map": 0.99, "first_try": False},
              {"finalist": 5, "cross_map": 0.85, "first_try": True}, {"finalist": 0, "cross_map": 0.60, "first_try": True}]
    ranking = finalist_ranking(finalists, trials)
    # Each finalist's first try (its own knobs) is its fine-tuned score: 3 and 5 swap places, 0 stays last.
    assert [p["fine_tuned"] for p in ranking["pairs"]] == [0.80, 0.85, 0.60]
    assert ranking["kendall_tau"] == pytest.approx(1 / 3)
    assert "Kendall tau +0.33" in describe_ranking(ranking, "oneshot") and "inherited-weight" in describe_ranking(ranking, "oneshot")
    assert kendall_tau([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0) and kendall_tau([1], [1]) is None
    assert kendall_tau([1, 1, 1], [1, 2, 3]) is None
    # The bootstrap interval: a perfect order stays perfect, a noisy one straddles its own tau.
    assert kendall_tau_interval([1, 2, 3, 4], [2, 4, 6, 8]) == pytest.approx((1.0, 1.0))
    rng = np.random.default_rng(0)
    a = rng.normal(size=30)
    b = a + rng.normal(size=30)
    low, high = kendall_tau_interval(a, b)
    assert -1 <= low < kendall_tau(a, b) < high <= 1 and kendall_tau_interval(a, b) == (low, high)
    assert kendall_tau_interval([1, 2], [1, 2]) is None
    assert finalist_ranking(finalists[:1], trials)["kendall_tau"] is None


def test_rerank_trains_each_candidate_once_and_a_resumed_run_reads_what_it_saved(tmp_path):
    from hetero.search._rerank import describe_rerank, rerank_candidates
    from hetero.training import EDGE_DEFAULTS

    class Run:
        run_dir = tmp_path
        study_name = "s"
        base = EDGE_DEFAULTS

        class config:
            strategy = "oneshot"
            rerank_candidates = 3
            rerank_epochs = None
            final_epochs = 6
            seed = 0

    trained = []

    def train_short(arch, epochs):
        trained.append((arch["n"], epochs))
        if len(trained) == 2 and not (tmp_path / "killed").exists():
            (tmp_path / "killed").touch()
            raise KeyboardInterrupt  # killed after the first candidate finished
        return {"cross_map": 1.0 - arch["n"] / 10}

    rows = [_row(1, 0.9, 100), _row(2, 0.8, 50), _row(3, 0.7, 30)]
    with pytest.raises(KeyboardInterrupt):
        rerank_candidates(Run, rows, train_short)
    assert trained == [(1, 2), (2, 2)]  # a third of the 6 fine-tuning epochs
    out = rerank_candidates(Run, rows, train_short)
    assert trained[2:] == [(2, 2), (3, 2)]  # the first was read back, not trained again
    assert [r["cross_map"] for r in out] == [0.9, 0.8, 0.7] and [r["search_cross_map"] for r in out] == [0.9, 0.8, 0.7]
    assert describe_rerank(out)["kendall_tau_search_vs_rerank"] == pytest.approx(1.0)
    rerank_candidates(Run, rows, train_short)
    assert len(trained) == 4  # everything saved


def test_the_rerank_shares_the_final_phase_of_a_time_budget():
    from hetero.search import SearchConfig
    from hetero.search._budget import fine_tunings

    assert fine_tunings(SearchConfig(strategy="oneshot", rerank_candidates=6), 5) == 7
    assert fine_tunings(SearchConfig(strategy="oneshot", rerank_candidates=0), 5) == 5
    assert fine_tunings(SearchConfig(strategy="standalone"), 5) == 5


def test_the_test_gain_is_a_paired_comparison_on_the_test_queries():
    from hetero.search import describe_test_gain, test_gain

    rng = np.random.default_rng(0)
    reference = rng.uniform(0.2, 0.6, 400)
    reference[:5] = np.nan  # queries with no positive in the gallery do not count
    better = test_gain(reference + 0.03, reference)
    assert better is not None and better["cross_map_gain"] == pytest.approx(3.0) and better["confidence"] == 1.0 and better["queries"] == 395
    noisy = test_gain(reference + rng.normal(0.0, 0.3, 400), reference)
    assert noisy is not None and 0.0 < noisy["confidence"] < 1.0
    assert test_gain(reference, reference.copy()) is None  # the pick is the reference's model
    line = describe_test_gain(better, "default architecture")
    assert line.startswith("on the test queries: the pick +3.00 points of cross mAP against the default architecture, 100.0% sure")
