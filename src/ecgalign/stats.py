"""Uncertainty of test figures: a seeded bootstrap over test records, vectorised over resamples.

A bootstrap resample is stored as multiplicities: counts[b, i] = how often test record i is drawn in resample b
(B x N, each row summing to N). Every figure that is a mean over records (recall@k, mAP, alignment loss) is then
`counts @ per_record / N`, and ROC-AUC is the weighted Mann-Whitney statistic, computed for all resamples at once
from one sort of the scores: O(B * N) per class, no Python loop over resamples.

Intervals are percentile intervals: the (1 - level) / 2 and (1 + level) / 2 quantiles of the resampled figure, so
2.5 % and 97.5 % at the default level 0.95 (`evaluate.ci_level`); the PTB-XL benchmark reports 5 % and 95 %, which
is level 0.9.

Macro AUCs use class-complete resamples (`class_complete_counts`), as the benchmark's
`get_appropriate_bootstrap_samples` does: a resample in which a scored class has no positive (or no negative) record
is rejected and drawn again, so every resample averages the same classes as the point estimate. Averaging only the
classes a resample happens to hold mixes estimands (a rare class that drops out takes its AUC with it) and shifts
the interval; the number of rejected draws is reported beside the figures.
"""
from __future__ import annotations

import numpy as np

N_BOOT = 1000
LEVEL = 0.95
MAX_DRAWS = 100   # class_complete_counts draws at most MAX_DRAWS * n_boot resamples


def bootstrap_counts(n: int, n_boot: int = N_BOOT, seed: int = 0) -> np.ndarray:
    """B x n float32 multiplicities of n records in n_boot resamples drawn with replacement (seeded)."""
    return _draw(np.random.default_rng(seed), n, n_boot)


def _draw(rng: np.random.Generator, n: int, n_boot: int) -> np.ndarray:
    idx = rng.integers(0, n, size=(n_boot, n))
    rows = np.repeat(np.arange(n_boot), n)
    return np.bincount(rows * n + idx.ravel(), minlength=n_boot * n).reshape(n_boot, n).astype(np.float32)


def class_complete_counts(y: np.ndarray, n_boot: int = N_BOOT, seed=0,
                          max_draws: int = MAX_DRAWS) -> tuple[np.ndarray, int]:
    """(counts, rejected): n_boot resamples (B x n multiplicities, as `bootstrap_counts`) of the n rows of the
    bool label matrix y (n x C) in which every column holds at least one positive and one negative, and how many
    drawn resamples were rejected for missing one. Columns with a single label value in y itself are ignored
    (no resample can score them). Resamples are drawn n_boot at a time from one seeded generator, the first batch
    being exactly `bootstrap_counts(n, n_boot, seed)`; after max_draws * n_boot draws the accepted ones are
    returned (fewer than n_boot rows: a label too rare to bootstrap; the caller sees it in the row count)."""
    y = np.asarray(y, dtype=bool)
    n = len(y)
    y = y[:, y.any(axis=0) & ~y.all(axis=0)].astype(np.float32)
    rng = np.random.default_rng(seed)
    kept, n_kept, rejected = [], 0, 0
    for _ in range(max_draws):
        counts = _draw(rng, n, n_boot)
        pos = counts @ y                        # B x C weighted positives (exact in float32 below 2**24)
        ok = ((pos > 0) & (pos < n)).all(axis=1)
        need = n_boot - n_kept
        take = np.flatnonzero(ok)[:need]
        examined = take[-1] + 1 if len(take) == need else n_boot   # draws looked at in this batch
        rejected += int(examined - len(take))
        kept.append(counts[take])
        n_kept += len(take)
        if n_kept == n_boot:
            break
    return np.concatenate(kept), rejected


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
    """Interval of the macro AUC over the resamples in `counts` in which every class is defined (pass
    `class_complete_counts` so that none is dropped); a resample missing a class is left out, never averaged over
    fewer classes."""
    return interval(np.mean(auc_columns(labels, scores, counts), axis=1), level)


def auc_summary(labels: np.ndarray, scores: np.ndarray, counts: np.ndarray, level: float = LEVEL) -> dict:
    """Point AUC per class and macro, with percentile intervals at `level` over the resamples in `counts` (B x N;
    `class_complete_counts` for the macro), from one pass over the classes: {"auc": C array, "ci": C x 2,
    "macro": float, "macro_ci": (low, high), "macro_boot": B array (the macro under each resample)}. A resample in which a class is undefined (no positive or no negative)
    is left out of that class's interval and of the macro's."""
    point = auc_columns(labels, scores)[0]
    boot = auc_columns(labels, scores, counts)
    macro_boot = np.mean(boot, axis=1)
    return {"auc": point, "ci": np.array([interval(boot[:, c], level) for c in range(boot.shape[1])]),
            "macro": float(np.mean(point)), "macro_ci": interval(macro_boot, level), "macro_boot": macro_boot}
