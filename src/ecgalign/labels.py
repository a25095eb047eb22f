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
