"""The batched logistic-regression probe against scikit-learn, C chosen on validation rows, and the stratified
label-fraction subsamples."""
import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from ecgalign import probe


def toy(n=700, d=12, c=4, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)) * rng.uniform(0.5, 3, size=d) + 2.0
    y = (x @ rng.normal(size=(d, c)) + rng.normal(size=(n, c)) * 3 > 2.0)
    return x, y


def test_batched_fit_matches_sklearn_per_class():
    x, y = toy()
    xt, xs = probe.standardise(x[:500], x[500:])
    w = probe.fit_logistic(xt, __import__("torch").from_numpy(y[:500].astype(np.float32)), 0.05)
    scores = probe.decision(xs, w)
    for c in range(y.shape[1]):
        sk = LogisticRegression(C=0.05, max_iter=5000, tol=1e-10).fit(xt.numpy().astype(np.float64), y[:500, c])
        np.testing.assert_allclose(w[:-1, c].numpy(), sk.coef_[0], atol=2e-3)
        assert w[-1, c].item() == pytest.approx(sk.intercept_[0], abs=2e-3)
        assert roc_auc_score(y[500:, c], scores[:, c]) == pytest.approx(
            roc_auc_score(y[500:, c], sk.decision_function(xs.numpy())), abs=1e-3)


def test_probe_picks_c_on_validation_rows_and_skips_one_valued_classes():
    x, y = toy(seed=1)
    y[:, 3] = False                                     # no positive in training: no fit, NaN scores
    out = probe.probe(x[:400], y[:400], x[400:550], y[400:550], x[550:], c_grid=(10.0, 0.001, 1.0))
    assert out["c"] in (0.001, 1.0, 10.0) and np.isnan(out["scores"][:, 3]).all()
    assert np.isfinite(out["scores"][:, :3]).all()
    # the chosen C is the best of the grid on the validation rows, whatever the test rows say
    best = {}
    for c in (0.001, 1.0, 10.0):
        o = probe.probe(x[:400], y[:400], x[400:550], y[400:550], x[550:], c_grid=(c,))
        best[c] = np.mean([roc_auc_score(y[400:550, j], probe.probe(x[:400], y[:400], x[400:550], y[400:550],
                                                                    x[400:550], c_grid=(c,))["scores"][:, j])
                           for j in range(3)])
        assert o["c"] == c
    assert out["c"] == max(best, key=best.get)
    assert out["val_auc"] == pytest.approx(best[out["c"]], abs=1e-6)


def test_past_the_edge_goes_a_decade_at_a_time_while_validation_improves():
    calls = []

    def peak_at(best):   # a validation score that peaks at `best`
        return lambda v: calls.append(v) or (-abs(np.log10(v) - np.log10(best)), f"fit {v:g}")
    assert probe.past_the_edge([1.0, 10.0, 100.0], 1, 0.0, peak_at(10.0)) is None and calls == []   # interior
    assert probe.past_the_edge([1.0], 0, 0.0, peak_at(0.01)) is None and calls == []           # one value
    assert probe.past_the_edge([1.0, 10.0], 0, float("nan"), peak_at(0.01)) is None and calls == []
    assert probe.past_the_edge([1.0, 10.0], 0, -2.0, peak_at(0.01)) == (0.0, 0.01, "fit 0.01")
    assert calls == [0.1, 0.01, 0.001]                       # 0.001 scores worse than 0.01: the search stops
    calls.clear()
    assert probe.past_the_edge([1.0, 10.0], 1, -9.0, peak_at(1e9))[1] == 1e4 and calls == [100.0, 1000.0, 1e4]
    calls.clear()
    assert probe.past_the_edge([1.0, 10.0], 0, 0.0, peak_at(1.0)) is None and calls == [0.1]   # no better: the edge


def test_a_choice_at_the_grids_edge_is_followed_past_it():
    """Many noisy features, few rows: the probe wants more regularisation than a grid of (1, 10) offers (validation
    AUC falls with C here, measured from 0.001 to 100); it goes below 1 a decade at a time, three at most, and scores
    better on validation than the grid's own best."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(600, 200))
    y = (x[:, :2].sum(axis=1, keepdims=True) + rng.normal(size=(600, 1)) * 1.5 > 0)
    grid_only = probe.probe(x[:100], y[:100], x[100:350], y[100:350], x[350:], c_grid=(1.0,))
    out = probe.probe(x[:100], y[:100], x[100:350], y[100:350], x[350:], c_grid=(1.0, 10.0))
    assert out["c"] == 0.001 and out["val_auc"] > grid_only["val_auc"] + 0.01


def test_probe_without_a_two_valued_class():
    x, y = toy()
    out = probe.probe(x[:50], np.zeros((50, 2), bool), x[50:60], y[50:60, :2], x[60:70])
    assert np.isnan(out["c"]) and np.isnan(out["scores"]).all()


def test_label_fraction_is_stratified_seeded_and_covers_every_class():
    rng = np.random.default_rng(0)
    n = 2000
    y = np.zeros((n, 4), bool)
    y[:, 0] = rng.random(n) < 0.6
    y[:, 1] = rng.random(n) < 0.2
    y[:, 2] = rng.random(n) < 0.05
    y[:3, 3] = True                                    # a class with 3 positives: 1 % would draw none
    rows = probe.label_fraction(y, 0.1, seed=5)
    assert np.array_equal(rows, probe.label_fraction(y, 0.1, seed=5))
    assert not np.array_equal(rows, probe.label_fraction(y, 0.1, seed=6))
    assert 200 <= len(rows) <= 204 and np.array_equal(rows, np.unique(rows))
    share = y[rows].mean(axis=0)
    np.testing.assert_allclose(share[:3], y.mean(axis=0)[:3], atol=0.02)
    small = probe.label_fraction(y, 0.01, seed=0)
    assert y[small].any(axis=0).all() and len(small) <= 20 + 4
    assert probe.label_fraction(y, 1.0, seed=0).tolist() == list(range(n))


def test_every_fit_runs_on_one_thread_and_the_thread_count_is_restored(monkeypatch):
    torch = __import__("torch")
    seen, fit = [], probe.fit_logistic
    monkeypatch.setattr(probe, "fit_logistic", lambda *a, **k: seen.append(torch.get_num_threads()) or fit(*a, **k))
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        # a fit of 20,000 rows x 50 classes (1M label entries, where a size threshold used to switch to all threads):
        # L-BFGS's tiny vector operations stay on one thread however large the fit
        x, y = toy(n=21000, d=3, c=50)
        probe.probe(x[:20000], y[:20000], x[20000:20500], y[20000:20500], x[20500:], c_grid=(0.1, 1.0))
        assert len(seen) >= 2 and set(seen) == {1} and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_many_features_and_few_rows_fit_in_the_rows_span_with_the_full_fits_scores(monkeypatch):
    """probe.row_space is exact: 1,200 features on 60 rows give the scores and C of the fit on all 1,200."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(100, 1200))
    y = (x[:, :3] + rng.normal(size=(100, 3)) > 0)
    reduced = probe.probe(x[:60], y[:60], x[60:80], y[60:80], x[80:], c_grid=(0.01, 1.0))
    basis = probe.row_space(torch.from_numpy(x[:60]).float())[0]
    assert basis.shape == (60, 60)
    monkeypatch.setattr(probe, "ROW_SPACE_MIN_DIM", 10 ** 9)   # the plain fit
    full = probe.probe(x[:60], y[:60], x[60:80], y[60:80], x[80:], c_grid=(0.01, 1.0))
    assert reduced["c"] == full["c"]
    np.testing.assert_allclose(reduced["scores"], full["scores"], atol=2e-3)
