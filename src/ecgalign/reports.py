"""Structured reports: each record's SCP codes and likelihoods, one line per code, in the reference code's format

    {Statement Category}: {SCP-ECG Statement Description}, Confidence score: {likelihood}

e.g. `Myocardial Infarction: inferior myocardial infarction, Confidence score: 15.0`, in the order of the record's
`scp_codes` dict. data/reports.jsonl holds one JSON object per record in ecg_id order; every later array is
row-aligned with it.

Beside it (`add_free_text`), each record carries PTB-XL's own free-text report: `report_de`, the original as written
(mostly German), and `report_en`, its English translation (ecgalign.translate). A record without a usable free text
(the table has no `report` column, the cell is empty, or holds nothing but numbers) gets "" as report_en and is counted:
that is the documented fallback, never an error.
"""
from __future__ import annotations

import ast
import json
import math
from pathlib import Path

import pandas as pd

from .atomic import atomic_path
from .artifacts import load_reports as read_reports  # noqa: F401 (re-export: the reader of data/reports.jsonl)
from .errors import ReportError

LINE = "{category}: {description}, Confidence score: {likelihood}"


def parse_scp_codes(text, ecg_id) -> dict[str, float]:
    """`"{'NORM': 100.0, 'SR': 0.0}"` -> {"NORM": 100.0, "SR": 0.0}, checked: a dict of code -> likelihood in 0-100."""
    where = f"ecg_id {ecg_id}: scp_codes"
    if not isinstance(text, str):
        raise ReportError(f"{where} is empty")
    try:
        codes = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        raise ReportError(f"{where} {text[:80]!r} is not a Python dict literal") from None
    if not isinstance(codes, dict):
        raise ReportError(f"{where} {text[:80]!r} is a {type(codes).__name__}, not a dict")
    if not codes:
        raise ReportError(f"{where} is an empty dict: the record has no statement to report")
    out = {}
    for code, likelihood in codes.items():
        if not isinstance(code, str):
            raise ReportError(f"{where}: code {code!r} is not a string")
        if isinstance(likelihood, bool) or not isinstance(likelihood, (int, float)) or not math.isfinite(likelihood):
            raise ReportError(f"{where}: likelihood of {code} is {likelihood!r}, not a number")
        if not 0 <= likelihood <= 100:
            raise ReportError(f"{where}: likelihood of {code} is {likelihood}, outside 0-100")
        out[code] = float(likelihood)
    return out


def statement_lookup(statements: pd.DataFrame) -> dict[str, tuple[str, str]]:
    """code -> (Statement Category, SCP-ECG Statement Description) from scp_statements.csv."""
    return {code: (row["Statement Category"], row["SCP-ECG Statement Description"])
            for code, row in statements.iterrows()}


def report_lines(codes: dict[str, float], lookup: dict[str, tuple[str, str]], ecg_id) -> list[str]:
    """The report's lines, one per code in dict order; a code absent from scp_statements.csv raises ReportError."""
    lines = []
    for code, likelihood in codes.items():
        if code not in lookup:
            raise ReportError(f"ecg_id {ecg_id}: scp_codes names {code!r}, which scp_statements.csv does not define")
        category, description = lookup[code]
        lines.append(LINE.format(category=category, description=description, likelihood=likelihood))
    return lines


def build_reports(db: pd.DataFrame, statements: pd.DataFrame, on_error: str = "raise"):
    """One dict per row of the (validated, ecg_id-sorted) database table, and the skipped (ecg_id, reason) pairs.

    on_error="raise" stops at the first bad record; "skip" leaves it out, so that the caller can count and log it.
    """
    lookup = statement_lookup(statements)
    records, skipped = [], []
    rows = zip(db["ecg_id"], db["strat_fold"], db["scp_codes"], db["filename_lr"], db["filename_hr"])
    for ecg_id, fold, text, lr, hr in rows:
        ecg_id = int(ecg_id)
        try:
            codes = parse_scp_codes(text, ecg_id)
            lines = report_lines(codes, lookup, ecg_id)
        except ReportError as e:
            if on_error != "skip":
                raise
            skipped.append((ecg_id, str(e)))
            continue
        records.append({"ecg_id": ecg_id, "strat_fold": int(fold), "filename_lr": lr, "filename_hr": hr,
                        "scp_codes": codes, "report": "\n".join(lines)})
    return records, skipped


def add_free_text(records: list[dict], db: pd.DataFrame, translator) -> list:
    """Adds report_de (the original free text, "" when missing) and report_en (its translation, "" when it has no
    word) to each record, in place; returns each record's Translation (ecgalign.translate), in record order.

    A report that is not text (bytes that are not UTF-8, a number) raises ReportError naming the record."""
    free = dict(zip(db["ecg_id"].astype(int), db["report"])) if "report" in db.columns else {}
    out = []
    for r in records:
        original = free.get(r["ecg_id"])
        if original is None or (isinstance(original, float) and math.isnan(original)):
            original = ""
        try:
            t = translator.translate(original)
        except ReportError as e:
            raise ReportError(f"ecg_id {r['ecg_id']}: report: {e}") from None
        r["report_de"] = original.decode("utf-8") if isinstance(original, bytes) else original
        r["report_en"] = t.text if t.n_words else ""
        out.append(t)
    return out


def free_text_lines(record: dict) -> list[str]:
    """The record's free-text report as printed by show_record.py: the original and its translation (none for a
    reports.jsonl written before the fields existed)."""
    if "report_de" not in record:
        return []
    return [f"Free-text report (original): {record['report_de'] or '(none)'}",
            f"Free-text report (English):  {record.get('report_en') or '(none)'}"]


def code_set(codes: dict[str, float], likelihoods: bool = True) -> str:
    """A record's canonical code set: its codes sorted, with their likelihoods ("IMI:15.0 SR:0.0") or without
    ("IMI SR"). Two reports that list the same codes in another line order share it: their text embeddings are
    identical, so training and evaluation treat them as one report."""
    return " ".join(f"{c}:{float(codes[c])}" if likelihoods else c for c in sorted(codes))


def write_reports(path: str | Path, records: list[dict]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
