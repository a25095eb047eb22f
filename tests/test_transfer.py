"""Transfer tasks (sex, age from PTB-XL's table) probed on z: the table read as PTB-XL codes it, the figures exact
where they can be computed by hand, and the probes finding a signal that is there and none that is not."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import PTBXL_METADATA as METADATA
from ecgalign import transfer as tr


def write_table(path, rows):
    path.write_text("ecg_id,patient_id,age,sex,scp_codes\n" + "".join(f"{i},{i},{a},{s},\"{{}}\"\n" for i, a, s in rows))
    return path


def test_demographics_follow_the_table_and_drop_the_de_identified_ages(tmp_path):
    table = write_table(tmp_path / "db.csv", [(1, 56.0, 1), (2, 300.0, 0), (3, "", 1), (4, 89.0, "")])
    sex, age = tr.demographics(table, [4, 1, 2, 3, 99])   # the reports' order; 99 is not in the table
    np.testing.assert_array_equal(sex, [np.nan, 1, 0, 1, np.nan])
    np.testing.assert_array_equal(age, [89, 56, np.nan, np.nan, np.nan])   # 300 = older than 89: not known


def test_a_table_without_the_columns_gives_no_transfer_figures(tmp_path):
    table = tmp_path / "db.csv"
    table.write_text("ecg_id,scp_codes\n1,\"{}\"\n2,\"{}\"\n")
    sex, age = tr.demographics(table, [1, 2])
    assert np.isnan(sex).all() and np.isnan(age).all()
    assert all(np.isnan(a).all() for a in tr.demographics(tmp_path / "absent.csv", [1, 2]))
    z = {s: np.zeros((2, 3)) for s in ("train", "val", "test")}
    assert tr.transfer_figures(z, sex, age, {s: np.arange(2) for s in z}, [1.0], 0, (1.0,)) == {}


@pytest.mark.skipif(not (METADATA / "ptbxl_database.csv").exists(), reason="../shared/ptbxl-metadata is absent")
def test_the_real_table_codes_sex_as_0_1_and_89_records_have_no_age():
    sex, age = tr.demographics(METADATA / "ptbxl_database.csv", [1, 2, 3])
    assert set(np.unique(sex)) <= {0.0, 1.0}
    np.testing.assert_array_equal(age, [56, 19, 37])                       # ecg_ids 1-3 of PTB-XL
    all_sex, all_ages = tr.demographics(METADATA / "ptbxl_database.csv", range(1, 21838))
    assert np.nanmax(all_ages) == 95 and np.isnan(all_ages).sum() == 89 and not np.isnan(all_sex).any()


def make_split(n, seed=0, signal=True):
    rng = np.random.default_rng(seed)
    sex = (rng.random(n) < 0.5).astype(float)
    age = rng.normal(60, 15, n)
    z = rng.normal(size=(n, 8))
    if signal:
        z[:, 0] += 3 * sex
        z[:, 1] += (age - 60) / 5
    rows = {"train": np.arange(0, n // 2), "val": np.arange(n // 2, 3 * n // 4), "test": np.arange(3 * n // 4, n)}
    return {s: z[r] for s, r in rows.items()}, sex, age, rows


def test_the_probes_find_sex_and_age_where_z_carries_them_and_nothing_where_it_does_not():
    z, sex, age, rows = make_split(2000)
    m = tr.transfer_figures(z, sex, age, rows, [0.1, 1.0], 0, (0.01, 0.1, 1.0))
    assert m["transfer_sex_100pct_auc"] > 0.95 and m["transfer_age_100pct_r2"] > 0.8
    assert m["transfer_age_100pct_mae"] < 6 and m["transfer_sex_100pct_n_train"] == 1000
    assert m["transfer_sex_10pct_n_train"] == 100 and m["transfer_age_10pct_n_train"] == 100
    assert m["transfer_sex_n_test"] == 500 and m["transfer_age_n_test"] == 500
    z0, sex0, age0, rows0 = make_split(2000, signal=False)
    null = tr.transfer_figures(z0, sex0, age0, rows0, [1.0], 0, (0.01, 0.1, 1.0), prefix="baseline_")
    assert abs(null["baseline_transfer_sex_100pct_auc"] - 0.5) < 0.07
    assert null["baseline_transfer_age_100pct_r2"] < 0.02      # no better than the test mean


def test_ridge_without_penalty_is_least_squares_and_r2_is_computed_around_the_test_mean():
    x = np.array([[0.0], [1.0], [2.0], [3.0]])
    y = np.array([1.0, 3.0, 5.0, 7.0])                           # y = 2x + 1 exactly
    fit = tr.ridge(x, y, x, y, np.array([[4.0]]), alphas=(1e-12,))
    assert fit["pred"][0] == pytest.approx(9.0) and fit["val_mae"] == pytest.approx(0.0, abs=1e-9)
    z = {"train": x, "val": x, "test": np.array([[0.0], [1.0], [2.0], [3.0]])}
    rows = {"train": np.arange(4), "val": np.arange(4, 8), "test": np.arange(8, 12)}
    age = np.concatenate([y, y, [1.0, 3.0, 5.0, 8.0]])           # the last test age off the line by 1
    sex = np.full(12, np.nan)
    m = tr.transfer_figures(z, sex, age, rows, [1.0], 0, (1.0,))
    # less shrinkage is better on validation all the way down: the grid's smallest alpha, 0.1, is an edge, so three
    # decades further are tried (probe.past_the_edge): 1e-4 on standardised x (sum of squares 4), slope times 4 / 4.0001
    pred = 4 + 4 / 4.0001 * np.array([-3.0, -1.0, 1.0, 3.0])
    err = pred - [1.0, 3.0, 5.0, 8.0]
    assert m["transfer_age_100pct_alpha"] == 0.0001
    assert m["transfer_age_100pct_mae"] == pytest.approx(np.mean(np.abs(err)), abs=1e-9)
    assert m["transfer_age_100pct_r2"] == pytest.approx(1 - np.sum(err ** 2) / 26.75, abs=1e-9)   # around 4.25
    assert "transfer_sex_n_test" not in m                         # no sex known: no sex figures


def test_ridge_in_the_rows_span_matches_the_full_solve(monkeypatch):
    """Many features, fewer rows: the ridge fit in the training rows' span (probe.row_space) predicts as the
    full d x d solve does."""
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(90, 1100)), rng.normal(size=90)
    reduced = tr.ridge(x[:50], y[:50], x[50:70], y[50:70], x[70:])
    monkeypatch.setattr(tr.pr, "ROW_SPACE_MIN_DIM", 10 ** 9)
    full = tr.ridge(x[:50], y[:50], x[50:70], y[50:70], x[70:])
    assert reduced["alpha"] == full["alpha"]
    np.testing.assert_allclose(reduced["pred"], full["pred"], rtol=1e-8, atol=1e-8)


def test_with_resamples_sex_and_age_get_intervals_and_keep_their_resampled_values():
    """counts (B x test rows) weigh each test record; records without the value are left out of the weights."""
    from ecgalign import stats
    from ecgalign.resamples import RESAMPLED, STORED

    z, sex, age, rows = make_split(800)
    age[rows["test"][:5]] = np.nan                              # 5 test records without an age
    counts = stats.bootstrap_counts(len(rows["test"]), 300, seed=1)
    m = tr.transfer_figures(z, sex, age, rows, [1.0], 0, (0.1, 1.0), counts=counts, level=0.9)
    plain = tr.transfer_figures(z, sex, age, rows, [1.0], 0, (0.1, 1.0))
    assert {k: v for k, v in m.items() if k in plain} == plain   # the figures themselves do not move
    known = np.isfinite(age[rows["test"]])
    fit = tr.ridge(z["train"], age[rows["train"]], z["val"], age[rows["val"]], z["test"][known])   # the stage's fit
    err = np.abs(fit["pred"] - age[rows["test"]][known])
    for b in (0, 7):   # resample b's MAE: the multiplicity-weighted mean error over the test records with an age
        w = counts[b, known]
        assert m["transfer_age_100pct_mae" + RESAMPLED][b] == pytest.approx(w @ err / w.sum(), abs=1e-5)
    assert len(m["transfer_sex_100pct_auc" + RESAMPLED]) == min(STORED, 300)
    for key in ("transfer_sex_100pct_auc", "transfer_age_100pct_mae"):
        assert m[f"{key}_ci_low"] < m[key] < m[f"{key}_ci_high"]
        lo, hi = np.quantile(m[key + RESAMPLED], [0.05, 0.95])   # the first 200 of the 300 draws behind the CI
        assert abs(lo - m[f"{key}_ci_low"]) < 0.5 * (hi - lo) and abs(hi - m[f"{key}_ci_high"]) < 0.5 * (hi - lo)
    assert "transfer_age_100pct_r2_ci_low" not in m
