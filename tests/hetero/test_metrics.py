"""Retrieval metrics against a brute-force reference written independently, query by query."""

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from hetero.metrics import gap_closed, negative_flip_impact, negative_flip_rate, parity, probability_better, retrieval_metrics


def _reference(q, g, ql, gl, same):
    q = q / np.linalg.norm(q, axis=1, keepdims=True)
    g = g / np.linalg.norm(g, axis=1, keepdims=True)
    top1, top5, aps, aprs = [], [], [], []
    for i in range(len(q)):
        keep = np.arange(len(g)) != i if same else np.ones(len(g), bool)
        s, lab = (g @ q[i])[keep], gl[keep]
        rel = lab == ql[i]
        if not rel.any():
            continue
        order = np.argsort(-s, kind="stable")
        r = rel[order]
        top1.append(r[0])
        top5.append(r[:5].any())
        aps.append(average_precision_score(rel, s))
        R = rel.sum()
        prec = np.cumsum(r[:R]) / np.arange(1, R + 1)
        aprs.append((prec * r[:R]).sum() / R)
    return np.mean(top1), np.mean(top5), np.mean(aps), np.mean(aprs), len(top1), np.array(aps)


@pytest.mark.parametrize("same", [True, False])
@pytest.mark.parametrize("block", [None, 7])
def test_matches_bruteforce(same, block):
    rng = np.random.default_rng(0)
    q = rng.normal(size=(60, 8)).astype(np.float32)
    ql = rng.integers(0, 6, 60)
    if same:
        g, gl = q, ql
    else:
        g = rng.normal(size=(80, 8)).astype(np.float32)
        gl = rng.integers(0, 7, 80)
        ql[0] = 99  # a query whose class is absent from the gallery is skipped
    res = retrieval_metrics(q, g, ql, gl, same_images=same, block_size=block)
    t1, t5, m, mr, n, aps = _reference(q, g, ql, gl, same)
    assert res.queries == n
    assert res.skipped == (0 if same else 1)
    np.testing.assert_allclose([res.top1, res.top5, res.map, res.map_at_r], [t1, t5, m, mr], atol=1e-9)
    # Each query's AP (a skipped query's is NaN), in query order.
    np.testing.assert_allclose(res.average_precision[res.evaluated], aps, atol=1e-9)
    assert np.isnan(res.average_precision[~res.evaluated]).all() and (~res.evaluated).sum() == res.skipped


def test_probability_better_is_a_paired_bootstrap():
    rng = np.random.default_rng(1)
    reference = rng.uniform(0.5, 1.0, 300)
    assert probability_better(reference, reference) == 0.0  # identical: never strictly better
    assert probability_better(reference + 0.01, reference) == 1.0
    # Pairing matters: a shift of 0.002 on every query is certain, although the spread is 100x larger.
    assert probability_better(reference + 0.002, reference) == 1.0
    noisy = reference + rng.normal(0.0, 0.05, 300)
    sure = probability_better(noisy, reference)
    assert 0.0 < sure < 1.0 and sure == probability_better(noisy, reference)  # seeded: the same answer
    # Roughly the normal approximation of the mean difference.
    from scipy.stats import norm

    diff = noisy - reference
    assert sure == pytest.approx(norm.cdf(diff.mean() / (diff.std() / np.sqrt(len(diff)))), abs=0.03)
    with_nan = np.append(noisy, np.nan)
    assert probability_better(with_nan, np.append(reference, 0.0)) == sure  # a query scored for one model only is left out
    with pytest.raises(ValueError):
        probability_better(reference[:5], reference[:6])


def test_self_excluded_and_perfect_embedding():
    labels = np.repeat(np.arange(5), 4)
    emb = np.eye(5)[labels].astype(np.float32) + 0.01 * np.random.default_rng(1).normal(size=(20, 5)).astype(np.float32)
    res = retrieval_metrics(emb, emb, labels, labels, same_images=True)
    assert res.top1 == 1.0 and res.map == pytest.approx(1.0) and res.map_at_r == pytest.approx(1.0)
    # The query's own image never comes back as its first result.
    assert (res.top1_index != np.arange(20)).all()


def test_bad_inputs_are_refused():
    from hetero.errors import UserError

    q = np.ones((4, 3), np.float32)
    with pytest.raises(UserError, match="dim"):
        retrieval_metrics(q, np.ones((4, 5), np.float32), np.zeros(4), np.zeros(4), same_images=False)
    bad = q.copy()
    bad[0, 0] = np.nan
    with pytest.raises(UserError, match="NaN"):
        retrieval_metrics(bad, q, np.zeros(4), np.zeros(4), same_images=True)


def test_flips_gap_and_parity():
    ref = np.array([1, 1, 0, 0, 1], bool)
    cand = np.array([1, 0, 1, 0, 0], bool)
    assert negative_flip_rate(ref, cand) == pytest.approx(2 / 5)
    assert negative_flip_impact(ref, cand) == pytest.approx(2 / 3)
    assert gap_closed(0.8, 0.5, 0.9) == pytest.approx(0.75)
    rng = np.random.default_rng(2)
    a = rng.normal(size=(30, 6)).astype(np.float32)
    p = parity(a, a + 1e-3)
    assert p["cos_min"] > 0.999 and p["max_abs"] == pytest.approx(1e-3, rel=1e-3)
    assert parity(a, -a)["cos_min"] == pytest.approx(-1.0)


def test_parity_top1_agreement_is_the_decision_and_item_agreement_the_image():
    # Gallery: two near-duplicates of class 0 and one item of class 1.
    gallery = np.array([[1.0, 0.0], [0.999, 0.045], [0.0, 1.0]], np.float32)
    labels = np.array([0, 0, 1])
    reference = np.array([[1.0, 0.02], [0.2, 1.0]], np.float32)
    swapped = np.array([[1.0, 0.04], [0.2, 1.0]], np.float32)  # first query now ranks item 1 first
    changed = np.array([[0.1, 1.0], [0.2, 1.0]], np.float32)  # first query now ranks class 1 first
    ref = retrieval_metrics(reference, gallery, np.array([0, 1]), labels, same_images=False)
    swap = retrieval_metrics(swapped, gallery, np.array([0, 1]), labels, same_images=False)
    change = retrieval_metrics(changed, gallery, np.array([0, 1]), labels, same_images=False)
    p = parity(reference, swapped, ref, swap, gallery_labels=labels)
    assert p["top1_item_agreement"] == pytest.approx(0.5) and p["top1_agreement"] == pytest.approx(1.0)
    q = parity(reference, changed, ref, change, gallery_labels=labels)
    assert q["top1_item_agreement"] == pytest.approx(0.5) and q["top1_agreement"] == pytest.approx(0.5)
    assert q["nfr"] == pytest.approx(0.5)  # the changed answer is wrong; the swap is not
    with pytest.raises(ValueError, match="gallery's labels"):
        parity(reference, swapped, ref, swap)
    with pytest.raises(ValueError, match="both"):
        parity(reference, swapped, ref)


def _tied(rng, n: int, distinct: int, dim: int = 4) -> np.ndarray:
    """``n`` embeddings drawn from ``distinct`` vectors: many exact ties in similarity."""
    return rng.normal(size=(distinct, dim)).astype(np.float32)[rng.integers(0, distinct, n)]


@pytest.mark.parametrize("same", [True, False])
def test_ap_with_ties_is_scikit_learns_and_ignores_gallery_order(same):
    rng = np.random.default_rng(3)
    q = _tied(rng, 70, 6)
    ql = rng.integers(0, 4, 70)
    g, gl = (q, ql) if same else (_tied(rng, 90, 5), rng.integers(0, 4, 90))
    got = retrieval_metrics(q, g, ql, gl, same_images=same)
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    gn = g / np.linalg.norm(g, axis=1, keepdims=True)
    aps = []
    for i in range(len(q)):
        keep = np.arange(len(g)) != i if same else np.ones(len(g), bool)
        # float64 similarities, as the metric ranks them, each summed the same way (a matrix
        # product may round identical columns differently); scikit-learn then groups exact ties.
        s = (gn[keep].astype(np.float64) * qn[i].astype(np.float64)).sum(1)
        rel = gl[keep] == ql[i]
        if rel.any():
            aps.append(average_precision_score(rel, s))
    assert got.map == pytest.approx(np.mean(aps), abs=1e-12)
    if not same:  # reordering the gallery changes nothing
        perm = rng.permutation(len(g))
        shuffled = retrieval_metrics(q, g[perm], ql, gl[perm], same_images=False)
        for key in ("top1", "top5", "map", "map_at_r"):
            assert getattr(shuffled, key) == pytest.approx(getattr(got, key), abs=1e-12), key


def test_a_model_that_embeds_everything_alike_scores_chance_whatever_the_order():
    # Before tie-aware AP a class-sorted gallery scored far above chance (the 0.349 vs 0.224).
    labels = np.repeat(np.arange(10), 12)
    x = np.ones((len(labels), 16), np.float32)
    for order in (np.arange(len(labels)), np.random.default_rng(0).permutation(len(labels))):
        r = retrieval_metrics(x[order], x[order], labels[order], labels[order], same_images=True)
        chance = 11 / 119  # positives among the other items
        assert r.map == pytest.approx(chance, abs=1e-12)
        assert r.map_at_r == pytest.approx(chance**2, abs=1e-12)  # each place within R credited the chance precision
        # A tie with a non-matching item is no hit: ties are ranked against the query.
        assert r.top1 == 0.0 and r.top5 == 0.0 and not r.top1_correct.any()
        assert (labels[order][r.top1_index] != labels[order]).all()


def test_ties_within_one_class_still_hit_and_untied_rankings_are_unchanged():
    # Two exact duplicates of the query's class tie at the top: a hit either way.
    q = np.array([[1, 0], [1, 0], [1, 0], [0, 1]], np.float32)
    labels = np.array([0, 0, 0, 1])
    r = retrieval_metrics(q, q, labels, labels, same_images=True)
    assert r.top1_correct.tolist() == [True, True, True, False] and r.average_precision[:3].tolist() == [1.0, 1.0, 1.0]
    # A query tied between one right and one wrong item: the wrong one ranks first, AP credits the group.
    q2 = np.array([[1, 0]], np.float32)
    g2 = np.array([[0, 1], [1, 0], [1, 0]], np.float32)
    r2 = retrieval_metrics(q2, g2, np.array([0]), np.array([0, 1, 0]), same_images=False)
    # the tied pair {1, 2} holds one positive of two (precision 1/2), the last positive comes third (2/3).
    assert r2.top1 == 0.0 and r2.top1_index[0] == 1 and r2.map == pytest.approx((1 / 2 + 2 / 3) / 2) and r2.top5 == 1.0
