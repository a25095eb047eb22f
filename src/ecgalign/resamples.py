"""Figures under bootstrap resamples of the test records: their percentile interval, and their values under the
first STORED resamples, kept for the grid's paired two-level bootstrap (`grid.two_level`).

The resamples are model-free and seeded by evaluate.seed (`benchmark.prepared`), so every run of one seed (an aligned
model, the supervised control, the untrained baseline, MiniRocket) scores the same resampled test records: the
difference of two runs' figures under resample b is a paired draw. A stage keeps them as `<key>_kept` in its
figures; `split_resamples` moves them out of its metrics file (metrics/eval.json, metrics/minirocket.json) into the
file beside it (`resamples_path`: metrics/eval_resamples.json, metrics/minirocket_resamples.json).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from . import stats
from .atomic import write_json, write_text

STORED = 200               # resamples of each figure kept (of evaluate.bootstrap)
RESAMPLED = "_kept"   # the key suffix of a figure's values under the kept resamples (a list)


def add_interval(m: dict, key: str, ci, resampled=None) -> None:
    """<key>_ci_low/_ci_high from ci, and <key>_kept: the figure under the first STORED resamples (5 decimals,
    None where undefined) when `resampled` gives them."""
    m[f"{key}_ci_low"], m[f"{key}_ci_high"] = float(ci[0]), float(ci[1])
    if resampled is not None:
        m[key + RESAMPLED] = [round(float(v), 5) if np.isfinite(v) else None for v in np.asarray(resampled)[:STORED]]


def add_mean_interval(m: dict, key: str, per_record: np.ndarray, counts: np.ndarray, level: float) -> None:
    """The interval (and kept resamples) of the mean of a per-record figure over the resamples in counts."""
    per_record = np.asarray(per_record, dtype=np.float64)
    add_interval(m, key, stats.mean_interval(per_record, counts, level),
                 counts[:STORED] @ per_record / counts.shape[1])


def split_resamples(m: dict) -> tuple[dict, dict]:
    """(the metrics without the kept resamples, {key: values under the kept resamples})."""
    moved = {k for k, v in m.items() if k.endswith(RESAMPLED) and (v is None or isinstance(v, list))}
    kept = {k[:-len(RESAMPLED)]: v for k, v in m.items() if k in moved and v is not None}   # in m's order
    return {k: v for k, v in m.items() if k not in moved}, kept


SUFFIX = "_resamples"   # metrics/eval.json -> metrics/eval_resamples.json


def resamples_path(metrics_path: str | Path) -> Path:
    """Where the kept resamples of a metrics file's figures go: metrics/eval.json -> metrics/eval_resamples.json."""
    path = Path(metrics_path)
    return path.with_name(f"{path.stem}{SUFFIX}.json")


def is_resamples_file(path: str | Path) -> bool:
    """Whether a metrics file holds kept resamples (a `resamples_path`)."""
    return Path(path).stem.endswith(SUFFIX)


def write_resamples(path: str | Path, kept: dict, seed: int, n_boot: int) -> None:
    """{"seed", "bootstrap", "kept", "figures": {key: values}} at path, one figure a line."""
    lines = [f"  {json.dumps(k)}: {json.dumps(v, separators=(',', ':'))}" for k, v in kept.items()]
    head = {"seed": seed, "bootstrap": n_boot, "kept": min(STORED, n_boot)}
    write_text(path, json.dumps(head)[:-1] + ', "figures": {\n' + ",\n".join(lines) + "\n}}\n")


def write_metrics(path: str | Path, metrics: dict, seed: int, n_boot: int) -> dict:
    """Write a stage's metrics file without the kept resamples, and those beside it (`resamples_path`); returns
    the metrics as written."""
    metrics, kept = split_resamples(metrics)
    write_json(path, metrics)
    write_resamples(resamples_path(path), kept, seed, n_boot)
    return metrics
