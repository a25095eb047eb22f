"""Linear probes for every benchmark task at once: a batched multi-label logistic regression, its L2 strength chosen
on the validation folds, and the stratified label-fraction subsamples of the training folds (MERL's protocol).

Why batched: 6 tasks x 3 label fractions x 2 models x up to 71 classes x a grid of C values is thousands of
scikit-learn fits, minutes on the full PTB-XL. One-vs-rest logistic regressions are independent per class, so the
sum of their objectives is minimised by one full-batch L-BFGS on a d x C weight matrix: one matrix product per step
for all classes. Each class's objective is scikit-learn's LogisticRegression(C=c) (L2 on the weights, not on the
intercept) divided by c * n, so the solution is the same; fits along the C grid start from the previous solution
(small C first: strong regularisation converges fast and is a good start for the next).
"""
from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import torch

from . import stats

C_GRID = (0.001, 0.01, 0.1, 1.0, 10.0)
EDGE_DECADES = 3   # a choice at either end of a grid tries up to this many decades further, while validation improves


def standardise(x_train: np.ndarray, *others: np.ndarray, dtype=np.float32) -> list[torch.Tensor]:
    """Features scaled by the training rows' mean and std (a constant feature keeps std 1), as float32 tensors
    (float32 with tol 1e-4 moves test AUCs by ~2e-5 against float64 at 1e-7, at a tenth of the time)."""
    x_train = np.asarray(x_train, dtype=np.float64)
    mean, std = x_train.mean(axis=0), x_train.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return [torch.from_numpy(((np.asarray(x, dtype=np.float64) - mean) / std).astype(dtype))
            for x in (x_train, *others)]


def fit_logistic(x: torch.Tensor, y: torch.Tensor, c: float, w0: torch.Tensor | None = None,
                 max_iter: int = 200, tol: float = 1e-4) -> torch.Tensor:
    """(d + 1) x C weights (last row: intercepts) of C independent L2 logistic regressions on the rows of x
    (n x d) against the 0/1 columns of y (n x C): minimises sum_c [mean_i logloss_ic + |w_c|^2 / (2 c n)]."""
    n, d = x.shape
    x1 = torch.cat([x, torch.ones(n, 1, dtype=x.dtype)], dim=1)
    w = (torch.zeros(d + 1, y.shape[1], dtype=x.dtype) if w0 is None else w0.clone()).requires_grad_(True)
    opt = torch.optim.LBFGS([w], lr=1.0, max_iter=max_iter, tolerance_grad=tol, tolerance_change=1e-12,
                            history_size=20, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(x1 @ w, y, reduction="sum") / n
        loss = loss + (w[:-1] ** 2).sum() / (2 * c * n)
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach()


def decision(x: torch.Tensor, w: torch.Tensor) -> np.ndarray:
    """n x C logits of fitted weights."""
    return (x @ w[:-1] + w[-1]).numpy()


def two_valued(y: np.ndarray) -> np.ndarray:
    """C-bool: the columns of y that hold both label values (an AUC or a fit needs both)."""
    y = np.asarray(y, dtype=bool)
    return y.any(axis=0) & ~y.all(axis=0)


def probe(x_train, y_train, x_val, y_val, x_test, c_grid=C_GRID) -> dict:
    """Fit the probe on the training rows for each C of c_grid (ascending, warm-started), keep the C with the best
    macro AUC on the validation rows (classes with both label values there), and score the test rows.

    Returns {"scores": n_test x C logits (NaN in columns with one label value in training), "c": chosen C,
    "val_auc": its validation macro AUC (NaN without a scorable validation class; the C is then the grid's middle
    value)}; no class with both label values in training: all scores and C NaN."""
    y_train = np.asarray(y_train, dtype=bool)
    fit = two_valued(y_train)
    scores = np.full((len(x_test), y_train.shape[1]), np.nan)
    if not fit.any():
        return {"scores": scores, "c": float("nan"), "val_auc": float("nan")}
    with one_thread():
        return _probe(x_train, y_train, x_val, y_val, x_test, c_grid, fit, scores)


@contextmanager
def one_thread():
    """Fit on one torch thread, whatever the size. L-BFGS does ~45 tiny vector operations (dot products of the
    (d + 1) x C weights) per iteration besides the two matrix products, and a multi-threaded torch wakes its thread
    pool for each: measured on the 2-core machine under load, a dot of 129 x 70 floats costs 513 us of CPU on two
    threads against 1.6 us on one, and the full-data `all` probe (the only fit above the former 1M-entry threshold
    for one thread) spent most of the evaluate stage's time there. One thread also makes every fit's arithmetic the
    same whatever the machine's thread count."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


ROW_SPACE_MIN_DIM = 1024   # features at least this many and more than the rows: fit in the rows' span (row_space)


def row_space(xt: torch.Tensor, *others: torch.Tensor) -> list[torch.Tensor]:
    """The rows of xt (n x d) and of `others` in the orthonormal basis of xt's row space (n x r, r = its rank) when
    the features are many (d >= ROW_SPACE_MIN_DIM) and outnumber the rows; otherwise the arrays as they are.
    Exact for the probe: the L2-penalised objective's weights lie in the span of the training rows (any part
    orthogonal to it changes no training logit and adds penalty), and L-BFGS from zero stays there, so the fit in the
    r coordinates has the same logits on every row at a fraction of the cost (a 1 % probe on 9,996 MiniRocket features
    becomes a 171-column problem). Tested against the fit on the full features."""
    if not ROW_SPACE_MIN_DIM <= xt.shape[1] or xt.shape[0] >= xt.shape[1]:
        return [xt, *others]
    _, s, vh = torch.linalg.svd(xt.double(), full_matrices=False)
    basis = vh[s > s[0] * 1e-6].T.to(xt.dtype) if len(s) and s[0] > 0 else vh[:0].T.to(xt.dtype)
    return [x @ basis for x in (xt, *others)]


def _probe(x_train, y_train, x_val, y_val, x_test, c_grid, fit, scores) -> dict:
    xt, xv, xs = row_space(*standardise(x_train, x_val, x_test))
    yt = torch.from_numpy(y_train[:, fit].astype(np.float32))
    val_cols = two_valued(np.asarray(y_val, dtype=bool)[:, fit])
    grid = sorted(c_grid)
    w, results = None, []
    for c in grid:
        w = fit_logistic(xt, yt, c, w0=w)
        auc = np.nan
        if val_cols.any():
            auc = float(np.mean(stats.auc_columns(np.asarray(y_val, bool)[:, fit][:, val_cols],
                                                  decision(xv, w)[:, val_cols])[0]))
        results.append((auc, c, w))
    aucs = np.array([r[0] for r in results])
    best = int(np.nanargmax(aucs)) if np.isfinite(aucs).any() else len(grid) // 2
    start = {"w": results[best][2]}

    def fit_score(c):   # warm-started from the previous fit, as along the grid
        start["w"] = fit_logistic(xt, yt, c, w0=start["w"])
        return float(np.mean(stats.auc_columns(np.asarray(y_val, bool)[:, fit][:, val_cols],
                                               decision(xv, start["w"])[:, val_cols])[0])), start["w"]
    auc, c, w = past_the_edge(grid, best, float(aucs[best]), fit_score) or results[best]
    scores[:, fit] = decision(xs, w)
    return {"scores": scores, "c": float(c), "val_auc": float(auc)}


def past_the_edge(grid, best: int, best_score: float, fit_score):
    """When the best value of the ascending `grid` (index `best`, validation score `best_score`, higher is better) is
    its smallest or largest: the values a decade further out, one at a time (up to EDGE_DECADES), kept while they
    score better. fit_score(value) -> (score, fit). Returns (score, value, fit) of the best found beyond the edge,
    None when the best is interior, the grid has one value, the score is undefined, or going further does not help.

    Why: a choice at the edge says the optimum may lie outside the grid. MiniRocket's 9,996 features chose the
    strongest regularisation of evaluate.probe_c_grid on most tasks: without this, the baseline would be held back by
    a grid set for 64-512-d embeddings. A choice inside the grid is untouched (same fits, same figures)."""
    if len(grid) < 2 or best not in (0, len(grid) - 1) or not np.isfinite(best_score):
        return None
    step, found = (0.1 if best == 0 else 10.0), None
    for k in range(1, EDGE_DECADES + 1):
        value = float(f"{grid[best] * step ** k:.6g}")
        score, fitted = fit_score(value)
        if not score > best_score:
            break
        best_score, found = score, (score, value, fitted)
    return found


def fraction_key(fraction: float) -> str:
    """0.01 -> '1pct', 1.0 -> '100pct', 0.005 -> '0p5pct' (no dot: dvc reads dotted keys as nesting)."""
    return f"{fraction * 100:g}pct".replace(".", "p")


def label_fraction(y: np.ndarray, fraction: float, seed) -> np.ndarray:
    """Sorted row indices of a stratified `fraction` of the rows of y (n x C bool, multi-label).

    Each row's stratum is its rarest label (by frequency in y; rows without a label form one stratum); every stratum
    contributes its share of round(fraction * n) rows (largest remainders get the leftover rows), drawn at random
    (seeded). Then every class still absent from the subsample, but present in y, gets one random positive row
    added, so each class can be probed whenever possible (the subsample may exceed round(fraction * n) by at most
    the number of classes). fraction >= 1 returns every row."""
    y = np.asarray(y, dtype=bool)
    n = len(y)
    if fraction >= 1.0:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    freq = y.sum(axis=0)
    rank = np.where(y, freq[None, :], np.iinfo(np.int64).max)
    stratum = np.where(y.any(axis=1), rank.argmin(axis=1) if y.shape[1] else -1, -1)
    strata, sizes = np.unique(stratum, return_counts=True)
    quota = fraction * sizes
    take = np.floor(quota).astype(int)
    left = int(round(fraction * n)) - int(take.sum())
    if left > 0:   # largest remainders first, ties in random order
        order = np.lexsort((rng.random(len(strata)), -(quota - take)))
        take[order[:left]] += 1
    chosen = np.zeros(n, dtype=bool)
    for s, t in zip(strata, take):
        members = np.flatnonzero(stratum == s)
        chosen[rng.permutation(members)[:t]] = True
    for c in np.argsort(freq, kind="stable"):
        if freq[c] and not y[chosen, c].any():
            chosen[rng.choice(np.flatnonzero(y[:, c]))] = True
    return np.flatnonzero(chosen)
