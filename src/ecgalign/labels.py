"""The label sets of the PTB-XL benchmark (Strodthoff et al., "Deep learning for ECG analysis: benchmarks and
insights from PTB-XL", IEEE JBHI 2021; code: helme/ecg_ptbxl_benchmarking, `utils.compute_label_aggregations` and
`select_data` with min_samples=0), built from scp_statements.csv exactly as that benchmark builds them:

    task             classes (full PTB-XL)   a record's labels
    superdiagnostic   5   diagnostic_class    of its codes with diagnostic == 1
    subdiagnostic    23   diagnostic_subclass of its codes with diagnostic == 1
    diagnostic       44   its codes with diagnostic == 1
    form             19   its codes with form == 1
    rhythm           12   its codes with rhythm == 1
    all              71   all its codes

Rules (the benchmark's): every code of `scp_codes` counts, whatever its likelihood (0.0 included: form and rhythm
codes carry 0.0, "no likelihood given"); a class is every value that occurs in the records given (a statement no
record carries is no class); records with no label of the task are left out of that task (`keep` mask). Evaluation
then drops, per split, classes with no positive (or no negative) test record: their AUC is undefined.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .errors import ParamsError

TASKS = ("superdiagnostic", "subdiagnostic", "diagnostic", "form", "rhythm", "all")
SUPERCLASSES = ("NORM", "MI", "STTC", "CD", "HYP")   # the benchmark's order for the superdiagnostic task


def _flag(statements: pd.DataFrame, column: str) -> pd.Series:
    if column not in statements.columns:
        raise ValueError(f"scp_statements.csv has no column {column!r}: use the table of the PTB-XL release")
    return pd.to_numeric(statements[column], errors="coerce").fillna(0.0) == 1.0


def code_classes(statements: pd.DataFrame, task: str) -> dict[str, str]:
    """code -> the class it labels in `task` (codes that label nothing in the task are absent)."""
    if task not in TASKS:
        raise ValueError(f"unknown benchmark task {task!r}; the tasks are {', '.join(TASKS)}")
    codes = statements.index.astype(str)
    if task == "all":
        return {c: c for c in codes}
    if task in ("form", "rhythm"):
        return {c: c for c, f in zip(codes, _flag(statements, task)) if f}
    diagnostic = _flag(statements, "diagnostic")
    column = {"superdiagnostic": "diagnostic_class", "subdiagnostic": "diagnostic_subclass",
              "diagnostic": None}[task]
    if column is not None and column not in statements.columns:
        raise ValueError(f"scp_statements.csv has no column {column!r}, which the {task} task is built from: "
                         f"use the table of the PTB-XL release")
    values = codes if column is None else statements[column]
    return {c: str(v) for c, v, d in zip(codes, values, diagnostic) if d and isinstance(v, str) and v}


def task_labels(scp_codes: list[dict], statements: pd.DataFrame, task: str):
    """(Y, classes, keep): Y is N x C bool (record i has class c), classes the task's classes in a fixed order
    (superdiagnostic: NORM, MI, STTC, CD, HYP; otherwise sorted), keep the N-bool mask of records with at least one
    label of the task. A class is in `classes` only if some record given carries it."""
    mapping = code_classes(statements, task)
    present = {mapping[c] for codes in scp_codes for c in codes if c in mapping}
    if task == "superdiagnostic":
        classes = [c for c in SUPERCLASSES if c in present] + sorted(present - set(SUPERCLASSES))
    else:
        classes = sorted(present)
    column = {c: j for j, c in enumerate(classes)}
    y = np.zeros((len(scp_codes), len(classes)), dtype=bool)
    for i, codes in enumerate(scp_codes):
        for code in codes:
            if code in mapping:
                y[i, column[mapping[code]]] = True
    return y, classes, y.any(axis=1)


def class_statements(statements: pd.DataFrame, task: str) -> dict[str, list[str]]:
    """class -> the codes whose text makes up its zero-shot prompt (the statement itself, or for super- and
    subclasses the ensemble of their diagnostic statements), in scp_statements.csv order."""
    out: dict[str, list[str]] = {}
    for code, cls in code_classes(statements, task).items():
        out.setdefault(cls, []).append(code)
    return out


def supervised_targets(scp_codes: list[dict], statements: pd.DataFrame, rows) -> tuple[np.ndarray, list[str]]:
    """The supervised control's targets: the `all` task's labels (every code of scp_codes is positive, whatever its
    likelihood, as for the benchmark labels above) over the codes with a positive among `rows` (the pretraining
    pool), as an N x C float32 0/1 matrix for every record, and those codes."""
    y, classes, _ = task_labels(scp_codes, statements, "all")
    present = y[np.asarray(rows)].any(axis=0)
    if not present.any():
        raise ValueError(f"no SCP code on the {len(rows)} pretraining record(s): nothing to supervise")
    return y[:, present].astype(np.float32), [c for c, p in zip(classes, present) if p]


def label_pool(folds, split) -> np.ndarray:
    """Rows (ascending) whose labels linear probes and fine-tuning may use: split.label_folds (params.Split: the
    training folds minus split.pretrain_folds under the disjoint protocol, all training folds otherwise).
    ParamsError when they select no record."""
    folds = np.asarray(folds)
    rows = np.flatnonzero(np.isin(folds, split.label_folds))
    if len(rows) == 0:
        what = (f"split.train_folds {list(split.train_folds)} minus split.pretrain_folds {list(split.pretrain_folds)}"
                if split.disjoint else f"split.train_folds {list(split.train_folds)}")
        raise ParamsError(f"the label pool is empty: {what} = folds {split.label_folds} hold no record "
                          f"(strat_fold values present: {sorted(set(folds.tolist()))}); set split.pretrain_folds to "
                          f"fewer folds, or null")
    return rows
