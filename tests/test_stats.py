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
