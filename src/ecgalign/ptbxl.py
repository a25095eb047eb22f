"""PTB-XL's layout: the two tables, the record files, and `data/raw/dataset.json`, the manifest that tells later
stages where the records of the chosen source live.

Layout of a PTB-XL folder (any release, the synthetic one included):
    ptbxl_database.csv   one row per ECG: ecg_id, scp_codes (a dict literal), strat_fold, filename_lr, filename_hr, ...
    scp_statements.csv   one row per SCP code (index column), with 'Statement Category',
                         'SCP-ECG Statement Description', diagnostic_class, ...
    records100/NNNNN/NNNNN_lr.{hea,dat}   100 Hz, 12 leads x 1,000 samples
    records500/NNNNN/NNNNN_hr.{hea,dat}   500 Hz, 12 leads x 5,000 samples
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pandas as pd

from .artifacts import RAW
from .errors import DataError

DATABASE = "ptbxl_database.csv"
STATEMENTS = "scp_statements.csv"
MANIFEST = "dataset.json"
LEADS = ("I", "II", "III", "AVR", "AVL", "AVF", "V1", "V2", "V3", "V4", "V5", "V6")
SAMPLES = {100: 1000, 500: 5000}
DATABASE_COLUMNS = ("ecg_id", "scp_codes", "strat_fold", "filename_lr", "filename_hr")
STATEMENT_COLUMNS = ("Statement Category", "SCP-ECG Statement Description", "diagnostic", "form", "rhythm",
                     "diagnostic_class")
SUPERCLASSES = ("NORM", "MI", "STTC", "CD", "HYP")


def filename_column(sampling_rate: int) -> str:
    return {100: "filename_lr", 500: "filename_hr"}[sampling_rate]


def _read_csv(path: Path, what: str, **kwargs) -> pd.DataFrame:
    if not path.exists():
        raise DataError(f"{path}: {what} not found")
    try:
        return pd.read_csv(path, encoding="utf-8", **kwargs)
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty") from None
    except pd.errors.ParserError as e:
        raise DataError(f"{path}: not a readable CSV table ({e})") from None


def read_database(root: str | Path) -> pd.DataFrame:
    """ptbxl_database.csv, checked: required columns, unique integer ecg_id, strat_fold in 1-10. Sorted by ecg_id."""
    path = Path(root) / DATABASE
    df = _read_csv(path, "the PTB-XL record table", dtype={"scp_codes": str, "filename_lr": str, "filename_hr": str})
    missing = [c for c in DATABASE_COLUMNS if c not in df.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; a PTB-XL table has {list(DATABASE_COLUMNS)}")
    if df.empty:
        raise DataError(f"{path}: the table has no records")
    ids = pd.to_numeric(df["ecg_id"], errors="coerce")
    bad = df.loc[ids.isna() | (ids != ids.round()), "ecg_id"]
    if len(bad):
        raise DataError(f"{path}: ecg_id {bad.iloc[0]!r} (row {bad.index[0] + 2}) is not an integer")
    df["ecg_id"] = ids.astype(int)
    dup = df.loc[df["ecg_id"].duplicated(), "ecg_id"]
    if len(dup):
        raise DataError(f"{path}: ecg_id {dup.iloc[0]} is listed more than once ({len(dup)} duplicate row(s))")
    folds = pd.to_numeric(df["strat_fold"], errors="coerce")
    bad = df.loc[~folds.isin(range(1, 11)), ["ecg_id", "strat_fold"]]
    if len(bad):
        ecg_id, fold = bad.iloc[0].tolist()
        raise DataError(f"{path}: ecg_id {ecg_id}: strat_fold {fold!r} is outside 1-10")
    df["strat_fold"] = folds.astype(int)
    for col in ("filename_lr", "filename_hr"):
        names = df[col].str.strip()
        empty = df.loc[names.isna() | (names == ""), "ecg_id"]
        if len(empty):
            raise DataError(f"{path}: ecg_id {empty.iloc[0]}: {col} is empty ({len(empty)} record(s))")
        twice = df.loc[names.duplicated(keep=False), ["ecg_id", col]]
        if len(twice):  # PTB-XL never does this: it means a broken table, and two rows would share one signal
            name = twice[col].iloc[0]
            ids = twice.loc[twice[col] == name, "ecg_id"].tolist()
            raise DataError(f"{path}: ecg_id {' and ecg_id '.join(map(str, ids))} both name {name} in {col} "
                            f"({twice[col].nunique()} file name(s) listed more than once)")
    return df.sort_values("ecg_id").reset_index(drop=True)


def read_statements(root: str | Path) -> pd.DataFrame:
    """scp_statements.csv indexed by SCP code."""
    path = Path(root) / STATEMENTS
    df = _read_csv(path, "the SCP statements table", index_col=0)
    missing = [c for c in STATEMENT_COLUMNS if c not in df.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}")
    df.index = df.index.astype(str)
    return df


def record_files(record: str) -> tuple[str, str]:
    """The two files of a WFDB record path (as in filename_lr): header and signal."""
    return record + ".hea", record + ".dat"


def missing_records(root: str | Path, records: list[str], limit: int = 10) -> tuple[int, list[str]]:
    """How many of `records` lack a .hea or .dat file under root, and the first `limit` of them."""
    root = Path(root)
    missing = [r for r in records if not all((root / f).is_file() for f in record_files(r))]
    return len(missing), missing[:limit]


def check_records(root: str | Path, db: pd.DataFrame, sampling_rate: int) -> None:
    """Raise DataError listing the first missing records of the chosen rate."""
    col = filename_column(sampling_rate)
    records = db[col].tolist()
    n, first = missing_records(root, records)
    if n:
        raise DataError(f"{root}: {n} of {len(records)} records at {sampling_rate} Hz lack their .hea/.dat files, "
                        f"first: {', '.join(first)}")


def fingerprint(root: str | Path, records: list[str]) -> str:
    """A cheap digest of the record files (path, size, mtime): changes when any record file changes."""
    h = hashlib.sha256()
    root = Path(root)
    for r in records:
        for f in record_files(r):
            st = os.stat(root / f)
            h.update(f"{f}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def dataset_identity(raw_dir: str | Path, **fields) -> dict:
    """What metrics/data.json says of the dataset a run used: `fields` (source, sampling rate, record count) and the
    sha256 of its two tables. Two runs with the same table checksum and record count ran on the same records with the
    same labels, whatever folder they were read from: the grid keeps results of different datasets apart by it."""
    raw_dir = Path(raw_dir)
    sums = {name: hashlib.sha256((raw_dir / name).read_bytes()).hexdigest() for name in (DATABASE, STATEMENTS)}
    return {**fields, "database_sha256": sums[DATABASE], "statements_sha256": sums[STATEMENTS],
            "dataset": f"{sums[DATABASE][:12]}-{fields.get('n_records')}"}


def write_manifest(raw_dir: str | Path, **fields) -> None:
    from .atomic import write_json
    write_json(Path(raw_dir) / MANIFEST, fields)


def records_root(raw_dir: str | Path = RAW) -> Path:
    """Where the WFDB records of data/raw's dataset live (data/raw itself, or a local/downloaded PTB-XL folder)."""
    path = Path(raw_dir) / MANIFEST
    if not path.exists():
        raise DataError(f"{path} not found: run the download stage first (dvc repro download)")
    root = Path(json.loads(path.read_text(encoding="utf-8"))["records_root"])
    root = root if root.is_absolute() else Path(raw_dir) / root
    if not root.is_dir():
        raise DataError(f"{path}: records_root {root} is not a folder (moved or deleted since the download stage "
                        f"ran?): restore it, or point data.path at the PTB-XL copy and rerun dvc repro download")
    return root
