"""The vectorised bootstrap against sklearn and a loop over explicit resamples."""
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from ecgalign import stats


def test_counts_are_resample_multiplicities():
    counts = stats.bootstrap_counts(7, n_boot=50, seed=3)
    assert counts.shape == (50, 7) and (counts.sum(axis=1) == 7).all()
    assert np.array_equal(counts, stats.bootstrap_counts(7, n_boot=50, seed=3))
    assert not np.array_equal(counts, stats.bootstrap_counts(7, n_boot=50, seed=4))


def test_weighted_auc_with_unit_weights_is_sklearns_auc_with_ties():
    rng = np.random.default_rng(0)
    y = rng.random(200) < 0.3
    s = np.round(rng.normal(size=200), 1)      # many ties
    assert stats.weighted_auc(y, s, np.ones(200))[0] == pytest.approx(roc_auc_score(y, s), abs=1e-12)


def test_weighted_auc_equals_auc_of_the_explicit_resample():
    rng = np.random.default_rng(1)
    y = rng.random(60) < 0.4
    s = np.round(rng.normal(size=60), 1)
    idx = rng.integers(0, 60, size=(20, 60))
    counts = np.stack([np.bincount(i, minlength=60) for i in idx])
    got = stats.weighted_auc(y, s, counts)
    want = [roc_auc_score(y[i], s[i]) for i in idx]
    assert got == pytest.approx(want, abs=1e-12)


def test_auc_is_nan_without_positives_or_negatives():
    assert np.isnan(stats.weighted_auc(np.array([1, 1, 1], bool), np.array([0.1, 0.2, 0.3]), np.ones(3))[0])
    w = np.array([[1.0, 1.0, 0.0, 0.0]])       # the resample holds only the two positives
    assert np.isnan(stats.weighted_auc(np.array([1, 1, 0, 0], bool), np.arange(4.0), w)[0])


def test_hand_computed_auc():
    # positives 0.8, 0.4; negatives 0.4, 0.1: pairs (0.8>0.4) (0.8>0.1) (0.4=0.4 -> 1/2) (0.4>0.1) -> 3.5 / 4
    y = np.array([1, 1, 0, 0], bool)
    assert stats.weighted_auc(y, np.array([0.8, 0.4, 0.4, 0.1]), np.ones(4))[0] == 0.875


def test_mean_interval_covers_the_mean_and_is_seeded():
    rng = np.random.default_rng(2)
    hits = (rng.random(500) < 0.3).astype(float)
    counts = stats.bootstrap_counts(500, seed=0)
    lo, hi = stats.mean_interval(hits, counts)
    assert lo < hits.mean() < hi and hi - lo == pytest.approx(2 * 1.96 * np.sqrt(0.3 * 0.7 / 500), rel=0.15)
    assert (lo, hi) == stats.mean_interval(hits, stats.bootstrap_counts(500, seed=0))


def test_macro_interval_brackets_the_macro_auc():
    rng = np.random.default_rng(3)
    y = rng.random((300, 3)) < 0.3
    s = y + rng.normal(size=(300, 3))
    macro = np.mean([roc_auc_score(y[:, c], s[:, c]) for c in range(3)])
    lo, hi = stats.macro_auc_interval(y, s, stats.bootstrap_counts(300, n_boot=300, seed=0))
    assert lo < macro < hi


def test_auc_summary_per_class_and_macro():
    rng = np.random.default_rng(4)
    y = rng.random((200, 2)) < 0.4
    s = y + rng.normal(size=(200, 2))
    out = stats.auc_summary(y, s, stats.bootstrap_counts(200, n_boot=200, seed=1))
    want = [roc_auc_score(y[:, c], s[:, c]) for c in range(2)]
    assert out["auc"] == pytest.approx(want, abs=1e-12) and out["macro"] == pytest.approx(np.mean(want))
    assert all(lo < a < hi for a, (lo, hi) in zip(want, out["ci"])) and out["macro_ci"][0] < out["macro"]


def _rare_class_case(n=200):
    """Class 0: common, perfectly ranked (AUC 1). Class 1: one positive, ranked in the middle (AUC ~0.5)."""
    y = np.zeros((n, 2), bool)
    y[: n // 2, 0] = True
    y[7, 1] = True
    s = np.stack([y[:, 0] + 0.0, np.linspace(0, 1, n)], axis=1)
    s[7, 1] = 0.5
    return y, s


def test_class_complete_resamples_hold_every_class_and_count_the_rejections():
    y, _ = _rare_class_case()
    counts, rejected = stats.class_complete_counts(y, n_boot=400, seed=0)
    pos = counts @ y
    assert counts.shape == (400, 200) and (counts.sum(axis=1) == 200).all()
    assert ((pos > 0) & (pos < 200)).all()
    # the rare positive is missing from a resample with probability (1 - 1/200)**200 = 0.367:
    # 400 accepted draws cost about 400 * 0.367 / 0.633 = 232 rejected ones
    assert 180 < rejected < 290
    again = stats.class_complete_counts(y, n_boot=400, seed=0)
    assert np.array_equal(counts, again[0]) and rejected == again[1]


def test_class_complete_counts_without_rare_classes_are_the_plain_bootstrap():
    y = np.arange(50)[:, None] % 2 == 0
    counts, rejected = stats.class_complete_counts(y, n_boot=30, seed=5)
    assert rejected == 0 and np.array_equal(counts, stats.bootstrap_counts(50, 30, seed=5))


def test_class_complete_counts_stop_after_max_draws():
    y = np.zeros((400, 1), bool)
    y[0] = True          # one positive in 400: (1 - 1/400)**400 = 37 % of resamples miss it
    counts, rejected = stats.class_complete_counts(y, n_boot=10, seed=0, max_draws=1)
    assert len(counts) + rejected == 10 and 0 < len(counts) < 10


def test_macro_interval_of_the_old_way_is_biased_and_the_class_complete_one_is_not():
    y, s = _rare_class_case()
    point = np.mean([roc_auc_score(y[:, c], s[:, c]) for c in range(2)])
    assert point == pytest.approx(0.75, abs=0.01)
    # the old way: each resample averages the classes it happens to hold; 37 % of them lose the rare class (AUC ~0.5)
    # and score 1.0, so the resampled macro sits far above the point and the interval's top is 1.0
    old = np.nanmean(stats.auc_columns(y, s, stats.bootstrap_counts(200, 400, seed=0)), axis=1)
    assert np.mean(old) > 0.82 and np.quantile(old, 0.975) == 1.0
    counts, _ = stats.class_complete_counts(y, n_boot=400, seed=0)
    lo, hi = stats.macro_auc_interval(y, s, counts)
    new = np.mean(stats.auc_columns(y, s, counts), axis=1)
    assert lo < point < hi < 0.8 and abs(np.median(new) - point) < 0.01
    # plain resamples are not averaged over fewer classes either: a resample missing a class is left out
    lo_plain, hi_plain = stats.macro_auc_interval(y, s, stats.bootstrap_counts(200, 400, seed=0))
    assert hi_plain < 0.8


def test_interval_level_sets_the_quantiles():
    v = np.arange(101.0)
    assert stats.interval(v) == pytest.approx((2.5, 97.5)) and stats.interval(v, 0.9) == pytest.approx((5.0, 95.0))
