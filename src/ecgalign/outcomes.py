"""A user's own outcomes: the CSV a cohort brings, its validation, the Cox partial likelihood and Harrell's C-index.

Two layouts (one row per ECG, extra columns are ignored):

    ecg_id,time,event     survival: time >= 0 (any unit), event 1 (the outcome happened at `time`) or 0 (censored)
    ecg_id,label          binary: label 0 or 1

A bad row (ecg_id not an integer or not in the dataset, a second row for one ecg_id, time missing, non-numeric,
negative or infinite, event or label other than 0/1) raises OutcomeError naming the file, line and ecg_id; with
on_error="skip" it is left out and counted instead. Records without a row are simply not part of the cohort; the
cohort is split by strat_fold like everything else.

The C-index is scikit-survival's `concordance_index_censored` (Harrell's; ties in risk count one half), applied to
each bootstrap resample (`stats.bootstrap_counts` multiplicities) for the interval: ~20 ms a resample at 2,000 test
records (1,000 resamples ~20 s), measured, so no hand-written version.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .errors import OutcomeError  # noqa: F401 (re-exported: raised here)

SURVIVAL, BINARY = ("time", "event"), ("label",)


@dataclass
class Outcomes:
    """A validated outcome table: `rows` index the dataset (reports.jsonl order); `target` is N x 2 (time, event)
    for survival, N x 1 (label) for binary, float32, aligned with `rows`."""
    kind: str                     # "survival" | "binary"
    rows: np.ndarray
    target: np.ndarray
    n_skipped: int = 0
    skipped: list = field(default_factory=list)   # first 100 "line N (ecg_id X): reason"


def _zero_one(value) -> float | None:
    v = _number(value)
    return v if v in (0.0, 1.0) else None


def _number(value) -> float | None:
    try:
        v = float(str(value).strip())
    except ValueError:
        return None
    return v if math.isfinite(v) else None


def read_outcomes(path, ecg_ids, on_error: str = "raise") -> Outcomes:
    """Validate the outcome CSV at `path` against the dataset's ecg_ids (reports.jsonl order)."""
    path = Path(path)
    if not path.is_file():
        raise OutcomeError(f"finetune.outcomes = {str(path)!r}: no such file (a CSV with columns ecg_id,time,event "
                           f"or ecg_id,label; '' for none)")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise OutcomeError(f"{path}: not a readable CSV ({type(e).__name__}: {str(e)[:200]})") from None
    df.columns = [str(c).strip() for c in df.columns]
    cols = set(df.columns)
    if "ecg_id" not in cols or not (set(SURVIVAL) <= cols or set(BINARY) <= cols):
        raise OutcomeError(f"{path}: columns {list(df.columns)}; need ecg_id,time,event (survival) or ecg_id,label "
                           f"(binary)")
    if set(SURVIVAL) <= cols and "label" in cols:
        raise OutcomeError(f"{path}: has both time,event and label columns: keep one layout")
    kind = "survival" if set(SURVIVAL) <= cols else "binary"
    if len(df) == 0:
        raise OutcomeError(f"{path}: no rows")
    row_of = {int(e): i for i, e in enumerate(ecg_ids)}
    seen: dict[int, int] = {}
    rows, target, skipped = [], [], []
    for n, rec in enumerate(df.to_dict("records"), start=2):   # line 1 is the header
        raw_id = str(rec["ecg_id"]).strip()
        ecg_id = _number(raw_id)
        problem = None
        if ecg_id is None or ecg_id != int(ecg_id):
            problem = f"ecg_id {raw_id!r} is not an integer"
        elif int(ecg_id) not in row_of:
            problem = "ecg_id is not in the dataset (data/reports.jsonl)"
        elif int(ecg_id) in seen:
            problem = f"a second row for this ecg_id (first on line {seen[int(ecg_id)]})"
        elif kind == "survival":
            t, e = _number(rec["time"]), _zero_one(rec["event"])
            if t is None or t < 0:
                problem = f"time {rec['time']!r} is not a number >= 0"
            elif e is None:
                problem = f"event {rec['event']!r} is not 0 or 1"
        elif _zero_one(rec["label"]) is None:
            problem = f"label {rec['label']!r} is not 0 or 1"
        where = f"line {n} (ecg_id {raw_id})"
        if problem:
            if on_error != "skip":
                raise OutcomeError(f"{path}: {where}: {problem}; fix the row, or set finetune.on_error: skip")
            skipped.append(f"{where}: {problem}")
            continue
        seen[int(ecg_id)] = n
        rows.append(row_of[int(ecg_id)])
        target.append((float(rec["time"]), float(rec["event"])) if kind == "survival" else (float(rec["label"]),))
    if not rows:
        raise OutcomeError(f"{path}: no usable row ({len(skipped)} skipped, first: {skipped[:1]})")
    order = np.argsort(rows, kind="stable")
    return Outcomes(kind, np.asarray(rows, dtype=np.int64)[order], np.asarray(target, dtype=np.float32)[order],
                    len(skipped), skipped[:100])


def cox_loss(risk: torch.Tensor, time: torch.Tensor, event: torch.Tensor) -> torch.Tensor:
    """Negative Cox partial log-likelihood with Breslow's ties, averaged over events: for each event i,
    -(risk_i - log sum_{j: time_j >= time_i} exp(risk_j)). Risk sets are those of the batch given; a batch without
    an event gives 0 (with a graph, so that every DDP rank calls backward)."""
    order = torch.argsort(time, descending=True, stable=True)
    risk, time, event = risk[order], time[order], event[order]
    log_cum = torch.logcumsumexp(risk, dim=0)
    # Breslow: tied times share one risk set, i.e. the cumulative sum up to the *last* of the tie group
    last = torch.searchsorted(-time.contiguous(), -time.contiguous(), right=True) - 1
    n_events = event.sum()
    if n_events == 0:
        return risk.sum() * 0.0
    return -((risk - log_cum[last]) * event).sum() / n_events


def c_index(time, event, risk) -> float:
    """Harrell's C-index of `risk` (higher = earlier event) against (time, event); NaN without a comparable pair."""
    from sksurv.metrics import concordance_index_censored

    time, event, risk = np.asarray(time, float), np.asarray(event) > 0, np.asarray(risk, float)
    if not event.any():
        return float("nan")
    try:
        return float(concordance_index_censored(event, time, risk)[0])
    except (ValueError, ZeroDivisionError):   # no comparable pair
        return float("nan")


def c_index_resamples(time, event, risk, counts: np.ndarray) -> np.ndarray:
    """The C-index under each bootstrap resample (rows of `counts`, B x N multiplicities)."""
    idx = np.arange(len(time))
    out = np.empty(len(counts))
    for b, c in enumerate(counts):
        drawn = np.repeat(idx, c.astype(np.int64))
        out[b] = c_index(np.asarray(time)[drawn], np.asarray(event)[drawn], np.asarray(risk)[drawn])
    return out
