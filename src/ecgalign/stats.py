"""Uncertainty of test figures: a seeded bootstrap over test records, vectorised over resamples.

A bootstrap resample is stored as multiplicities: counts[b, i] = how often test record i is drawn in resample b
(B x N, each row summing to N). Every figure that is a mean over records (recall@k, mAP, alignment loss) is then
`counts @ per_record / N`, and ROC-AUC is the weighted Mann-Whitney statistic, computed for all resamples at once
from one sort of the scores: O(B * N) per class, no Python loop over resamples.

Intervals are percentile intervals (2.5 %, 97.5 % for 95 %), as the PTB-XL benchmark reports them. A resample in
which a class has no positive or no negative record has no AUC for that class (NaN); a macro AUC is the mean over
the classes defined in that resample.
"""
from __future__ import annotations

import warnings

import numpy as np

N_BOOT = 1000
LEVEL = 0.95


def bootstrap_counts(n: int, n_boot: int = N_BOOT, seed: int = 0) -> np.ndarray:
    """B x n float32 multiplicities of n records in n_boot resamples drawn with replacement (seeded)."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_boot, n))
    rows = np.repeat(np.arange(n_boot), n)
    return np.bincount(rows * n + idx.ravel(), minlength=n_boot * n).reshape(n_boot, n).astype(np.float32)


def weighted_auc(y: np.ndarray, scores: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """ROC-AUC of `scores` against bool labels `y` (both length N) under each row of `weights` (B x N record
    multiplicities; a single row of ones gives the ordinary AUC). Ties count one half. NaN where a row weighs no
    positive or no negative. Returns B float64 values."""
    y = np.asarray(y, dtype=bool)
    scores = np.asarray(scores, dtype=np.float64)
    weights = np.atleast_2d(weights)
    neg_rows, pos_rows = np.flatnonzero(~y), np.flatnonzero(y)
    neg_sorted = neg_rows[np.argsort(scores[neg_rows], kind="stable")]
    s_neg = scores[neg_sorted]
    # for each positive: how many sorted negatives score below it, and how many tie with it
    below = np.searchsorted(s_neg, scores[pos_rows], side="left")
    upto = np.searchsorted(s_neg, scores[pos_rows], side="right")
    # cumulative negative weight, B x (n_neg + 1); float32 is exact for integer multiplicities below 2**24
    cneg = np.zeros((len(weights), len(neg_sorted) + 1), dtype=np.float32)
    np.cumsum(weights[:, neg_sorted], axis=1, dtype=np.float32, out=cneg[:, 1:])
    w_pos = weights[:, pos_rows].astype(np.float32)
    lower = cneg[:, below]
    half_ties = 0.5 * (cneg[:, upto] - lower)
    num = np.einsum("bp,bp->b", w_pos, lower + half_ties, dtype=np.float64)
    n_pos, n_neg = w_pos.sum(axis=1, dtype=np.float64), cneg[:, -1].astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((n_pos > 0) & (n_neg > 0), num / (n_pos * n_neg), np.nan)


def auc_columns(labels: np.ndarray, scores: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """B x C AUCs of scores[:, c] against labels[:, c] for every column (weights: B x N, default one row of ones)."""
    labels, scores = np.asarray(labels, dtype=bool), np.asarray(scores)
    if weights is None:
        weights = np.ones((1, len(labels)))
    return np.stack([weighted_auc(labels[:, c], scores[:, c], weights) for c in range(labels.shape[1])], axis=1)


def interval(values: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """Percentile interval of the finite values (NaN, NaN if none)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if not len(v):
        return float("nan"), float("nan")
    lo, hi = np.quantile(v, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def mean_interval(per_record: np.ndarray, counts: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """Interval of the mean of a per-record figure (e.g. hit@k of each query) over the resamples in `counts`."""
    per_record = np.asarray(per_record, dtype=np.float64)
    return interval(counts @ per_record / counts.shape[1], level)


def macro_auc_interval(labels: np.ndarray, scores: np.ndarray, counts: np.ndarray,
                       level: float = LEVEL) -> tuple[float, float]:
    """Interval of the macro AUC (mean over the classes defined in each resample)."""
    per = auc_columns(labels, scores, counts)
    with warnings.catch_warnings():   # a resample with no class defined: nanmean of nothing is NaN, dropped
        warnings.simplefilter("ignore", RuntimeWarning)
        return interval(np.nanmean(per, axis=1), level)


def auc_summary(labels: np.ndarray, scores: np.ndarray, counts: np.ndarray, level: float = LEVEL) -> dict:
    """Point AUC per class and macro, with percentile intervals over the resamples in `counts` (B x N), from one
    pass over the classes: {"auc": C array, "ci": C x 2, "macro": float, "macro_ci": (low, high)}."""
    point = auc_columns(labels, scores)[0]
    boot = auc_columns(labels, scores, counts)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        macro_boot = np.nanmean(boot, axis=1)
    return {"auc": point, "ci": np.array([interval(boot[:, c], level) for c in range(boot.shape[1])]),
            "macro": float(np.mean(point)), "macro_ci": interval(macro_boot, level)}
