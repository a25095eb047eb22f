"""Transfer tasks the text never names: sex and age, from PTB-XL's own table, probed on the encoder's features z at
each label fraction (evaluate.label_fractions) for the trained model and the untrained baseline alike.

Why: on PTB-XL every benchmark task is the pretraining text's own vocabulary (the reports are built from the same SCP
codes), so the six tasks cannot tell "language-informed pretraining makes a better ECG model" from "the model has
seen the labels". Sex and age are in no report: how well z predicts them is the label-free test.

    sex  logistic probe (probe.probe: L2 strength C chosen on the validation rows by AUC), test AUC
    age  ridge regression on standardised z (L2 strength chosen on the validation rows by MAE), test MAE in years
         and R² (1 - residual / total sum of squares around the test mean: 0 = predicting the mean)

With `counts` (the test records' bootstrap resamples, B x test rows, as retrieval's), the sex AUC and the age MAE
get percentile intervals at `level` and kept resamples (ecgalign.resamples): a resample weighs each test record with
the value by its multiplicity.

Records without the value are left out of that task (`transfer_<task>_n_test` counts the test records scored).
PTB-XL's documentation sets ages above 89 to 300 for de-identification; such a value is no age, so it counts as
unknown (the v1.0.1 table has none: ages 2-95, 89 records without one). Subsamples of the label pool: sex stratified by sex (probe.label_fraction), age a seeded random share; the
same rows for every model (both depend only on the records and evaluate.seed).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from . import probe as pr
from . import stats
from .resamples import add_interval

ALPHAS = (0.1, 1.0, 10.0, 100.0, 1000.0, 10000.0)   # ridge L2 strengths tried (on standardised z, summed squares)
AGE_UNKNOWN = 300                                  # PTB-XL's de-identified age (older than 89): unknown


def demographics(database_csv, ecg_ids) -> tuple[np.ndarray, np.ndarray]:
    """(sex, age) float arrays row-aligned with ecg_ids, NaN where the table has no value (or no such column, or no
    table: the pipeline's data/raw always holds it, a hand-made test folder may not); sex
    0 male, 1 female (PTB-XL's coding); ages of 300 (above 89) are NaN."""
    if not Path(database_csv).exists():   # a data folder with the statements table only: no transfer figures
        return np.full(len(ecg_ids), np.nan), np.full(len(ecg_ids), np.nan)
    table = pd.read_csv(database_csv, usecols=lambda c: c in ("ecg_id", "age", "sex"), index_col="ecg_id")
    table = table.reindex(columns=["age", "sex"]).reindex(list(ecg_ids))   # a table without a column: all NaN
    sex = np.array(pd.to_numeric(table["sex"], errors="coerce"), dtype=float)
    sex[~np.isin(sex, (0.0, 1.0))] = np.nan
    age = np.array(pd.to_numeric(table["age"], errors="coerce"), dtype=float)
    age[age >= AGE_UNKNOWN] = np.nan
    return sex, age


def ridge(x_train, y_train, x_val, y_val, x_test, alphas=ALPHAS) -> dict:
    """Ridge regression on z standardised by the training rows, the intercept unpenalised; the alpha with the lowest
    validation MAE is kept. {"pred": test predictions, "alpha", "val_mae"}. One eigendecomposition of the Gram
    matrix serves every alpha (a choice at either end of the grid tries further decades, probe.past_the_edge); many
    features and fewer rows (MiniRocket's) are first taken into the rows' span
    (probe.row_space: exact for ridge too, its weights lie there)."""
    xt, xv, xs = (t.numpy() for t in pr.row_space(*pr.standardise(x_train, x_val, x_test, dtype=np.float64)))
    y = np.asarray(y_train, dtype=np.float64)
    mean = y.mean()
    evals, evecs = np.linalg.eigh(xt.T @ xt)
    rhs = evecs.T @ (xt.T @ (y - mean))

    def fit_score(alpha):   # minus the validation MAE: higher is better
        w = evecs @ (rhs / (evals + alpha))
        return (-float(np.mean(np.abs(xv @ w + mean - y_val))) if len(y_val) else float("nan")), w
    grid = sorted(alphas)
    tried = [fit_score(alpha) for alpha in grid]
    best = max(range(len(grid)), key=lambda i: (tried[i][0] if np.isfinite(tried[i][0]) else -np.inf, -i))
    score, alpha, w = (pr.past_the_edge(grid, best, tried[best][0], fit_score)
                       or (tried[best][0], grid[best], tried[best][1]))
    return {"pred": xs @ w + mean, "alpha": float(alpha), "val_mae": -score}


def _subsample(known: np.ndarray, fraction: float, seed: int, y=None) -> np.ndarray:
    """Positions (into the known training rows) of the `fraction` subsample: stratified by y if given."""
    if fraction >= 1.0:
        return np.arange(len(known))
    if y is not None:
        return pr.label_fraction(y[:, None], fraction, seed)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(len(known), max(2, int(round(fraction * len(known)))), replace=False))


def transfer_figures(z: dict, sex: np.ndarray, age: np.ndarray, rows: dict, fractions, seed: int, c_grid,
                     prefix: str = "", counts: np.ndarray | None = None, level: float = stats.LEVEL) -> dict:
    """Every transfer figure of one model. z = {"train"|"val"|"test": features} row-aligned with
    rows = {"train"|"val"|"test": record indices}; sex, age: full-length arrays (demographics); counts: None, or
    resample multiplicities of the test rows (B x len(rows["test"])) for intervals."""
    m = {}
    for name, values in (("sex", sex), ("age", age)):
        known = {s: np.flatnonzero(np.isfinite(values[r])) for s, r in rows.items()}
        y = {s: values[rows[s]][known[s]] for s in rows}
        if min(len(y["train"]), len(y["test"])) < 2 or (name == "sex" and len(np.unique(y["test"])) < 2):
            continue   # too few records with the value (e.g. a table without the column)
        m[f"{prefix}transfer_{name}_n_test"] = int(len(y["test"]))
        for f in fractions:
            pick = _subsample(known["train"], f, seed, y["train"].astype(bool) if name == "sex" else None)
            x_train, y_train = z["train"][known["train"][pick]], y["train"][pick]
            x_val, x_test = z["val"][known["val"]], z["test"][known["test"]]
            key = f"{prefix}transfer_{name}_{pr.fraction_key(f)}"
            m[f"{key}_n_train"] = int(len(pick))
            if name == "sex":
                fit = pr.probe(x_train, y_train[:, None], x_val, y["val"][:, None], x_test, c_grid)
                ok = np.isfinite(fit["scores"][:, 0])
                y_test, scores = y["test"][:, None].astype(bool), fit["scores"][:, :1]
                m[f"{key}_auc"] = float(stats.auc_columns(y_test, scores)[0][0]) if ok.all() else None
                if ok.all() and counts is not None:
                    boot = stats.auc_columns(y_test, scores, counts[:, known["test"]])[:, 0]
                    add_interval(m, f"{key}_auc", stats.interval(boot, level), boot)
                m[f"{key}_c"] = fit["c"]
            else:
                fit = ridge(x_train, y_train, x_val, y["val"], x_test)
                err = fit["pred"] - y["test"]
                m[f"{key}_mae"] = float(np.mean(np.abs(err)))
                if counts is not None:
                    w = counts[:, known["test"]].astype(np.float64)
                    boot = w @ np.abs(err) / w.sum(axis=1)
                    add_interval(m, f"{key}_mae", stats.interval(boot, level), boot)
                m[f"{key}_r2"] = float(1 - np.sum(err ** 2) / np.sum((y["test"] - y["test"].mean()) ** 2))
                m[f"{key}_alpha"] = fit["alpha"]
    return m
