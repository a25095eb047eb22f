"""Every artifact of the pipeline in one place: its path (relative to the repository root, where the stages run; the
same paths as in dvc.yaml) and typed loaders that check what later stages rely on.

Every array is row-aligned with data/reports.jsonl: row i of signals.npy, record_embeddings.npy, z_ecg.npy and
e_ecg.npy is the record on line i. `check_rows` is the one check of that; each loader calls it, so an artifact left
over from other inputs fails with one message naming both files, not with a shape error deep in a stage.

This module imports no other ecgalign module but errors: the library modules take their default paths (and the
readers of these artifacts) from here, and a stage that only needs a path depends on nothing more in dvc.yaml. Every
read of a pipeline artifact goes through a loader here; `under(data_dir, X)` is X for a copy of the outputs kept
elsewhere (data_dir instead of data/), so no other module builds a data/ path of its own.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .errors import ArtifactError, MissingArtifactError, ReportError, SignalError

PARAMS = Path("params.yaml")

DATA = Path("data")                                   # every DVC output below lives under it
RAW = DATA / "raw"                                    # download: the PTB-XL tables + dataset.json (+ synthetic records)
REPORTS = DATA / "reports.jsonl"                      # reports: one record per line, in ecg_id order
TEXT = DATA / "text"                                  # text_embeddings
TEXT_STATEMENTS = TEXT / "statements.jsonl"           # one SCP statement per line: code, category, description, text
STATEMENT_EMBEDDINGS = TEXT / "statement_embeddings.npy"   # (statements, d), row-aligned with statements.jsonl
RECORD_EMBEDDINGS = TEXT / "record_embeddings.npy"    # (records, d)
RECORD_IDS = TEXT / "record_ids.npy"                  # (records,) int64: equal ids <=> identical report text
TEXT_STATS = TEXT / "stats.json"
SIGNALS = DATA / "signals"                            # signals
SIGNALS_ARRAY = SIGNALS / "signals.npy"               # (records, 12, T) float32 mV, memory-mappable
SIGNALS_STATS = SIGNALS / "stats.json"                # per-lead mean/std over the training folds, shape, rate
MODEL_DIR = DATA / "model"                            # train
MODEL = MODEL_DIR / "model.pt"
TRAIN_STATE = DATA / "train_state"                    # train: resume state (not a DVC output)
FINETUNE = DATA / "finetune"                          # finetune: the outcome table used, every run's test outputs
FINETUNE_STATE = DATA / "finetune_state"              # finetune: resume state (not a DVC output)
ECG_EMBEDDINGS = DATA / "ecg_embeddings"              # ecg_embeddings
Z_ECG = ECG_EMBEDDINGS / "z_ecg.npy"                  # (records, ecg.embed_dim): the encoder's output
E_ECG = ECG_EMBEDDINGS / "e_ecg.npy"                  # (records, train.proj_dim): projected into the shared space
RECON_ERROR = ECG_EMBEDDINGS / "reconstruction_mse.npy"  # (records, 12): the decoder's MSE per lead (recon_weight > 0 only)
BASELINE = DATA / "baseline"                          # baseline: the untrained reference model's figures
BASELINE_METRICS = BASELINE / "baseline.json"         # baseline_* keys of metrics/eval.json (+ n_test, precision)

METRICS = Path("metrics")
DATA_METRICS = METRICS / "data.json"                  # download: which dataset (source, records, table checksum)
REPORTS_METRICS = METRICS / "reports.json"
TEXT_METRICS = METRICS / "text.json"
TRAIN_METRICS = METRICS / "train.json"
EVAL_METRICS = METRICS / "eval.json"
FINETUNE_METRICS = METRICS / "finetune.json"
PLOTS = Path("plots")                                 # evaluate: loss.png, embedding_map.png, zero_shot_roc.png, ...
FINETUNE_PLOT = PLOTS / "label_efficiency.png"
DVCLIVE = Path("dvclive")                             # train: per-epoch curves (dvclive/plots/metrics/{train,val}/)


def under(data_dir: str | Path, artifact: str | Path) -> Path:
    """An artifact's path when the outputs live in data_dir instead of data/: under("copy", REPORTS) is
    copy/reports.jsonl. under(DATA, X) is X."""
    return Path(data_dir) / Path(artifact).relative_to(DATA)


def require(path: str | Path, stage: str) -> Path:
    """path, or MissingArtifactError naming it and the stage that writes it."""
    path = Path(path)
    if not path.exists():
        raise MissingArtifactError(f"{path} not found: run the {stage} stage first (dvc repro {stage})")
    return path


def check_rows(path: str | Path, n_rows: int, n_records: int, reports: str | Path = REPORTS) -> None:
    """The row-alignment check: an artifact with n_rows rows against the n_records records of reports.jsonl."""
    if n_rows != n_records:
        raise ArtifactError(f"{path} has {n_rows} rows but {reports} has {n_records} records: the artifacts are out "
                            f"of step; rerun dvc repro so that every array is row-aligned with the reports")


def _load_jsonl(path: str | Path, stage: str, error: type[Exception]) -> list[dict]:
    """A JSON-lines artifact of `stage`, one dict a line (blank lines hold nothing); a damaged line raises `error`
    naming the file and the line."""
    path = require(path, stage)
    rows = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except ValueError as e:
                raise error(f"{path} line {n}: not a JSON object ({e}); the file is damaged: "
                            f"rerun the {stage} stage (dvc repro -f {stage})") from None
    return rows


def load_reports(path: str | Path = REPORTS) -> list[dict]:
    """data/reports.jsonl: one dict per record (ecg_id, strat_fold, scp_codes, report, filename_lr/hr)."""
    return _load_jsonl(path, "reports", ReportError)


def record_row(records: list[dict], ecg_id: int, reports: str | Path = REPORTS) -> int:
    """The row of ecg_id among the records of reports.jsonl, which is its row in every row-aligned array; KeyError
    naming the file when it is not there."""
    for row, record in enumerate(records):
        if record.get("ecg_id") == ecg_id:
            return row
    raise KeyError(f"ecg_id {ecg_id} is not in {reports}")


def load_array(path: str | Path, n_records: int, stage: str, reports: str | Path = REPORTS,
               mmap: bool = True) -> np.ndarray:
    """A row-aligned .npy artifact (memory-mapped read-only unless mmap=False), checked against n_records."""
    path = require(path, stage)
    x = np.load(path, mmap_mode="r" if mmap else None)
    check_rows(path, len(x), n_records, reports)
    return x


def load_record_embeddings(n_records: int, path: str | Path = RECORD_EMBEDDINGS,
                           reports: str | Path = REPORTS) -> np.ndarray:
    """data/text/record_embeddings.npy in memory (records, d) float32, row-aligned with the reports."""
    return load_array(path, n_records, "text_embeddings", reports, mmap=False)


def load_statements(folder: str | Path = TEXT) -> tuple[list[dict], np.ndarray]:
    """data/text/statements.jsonl and statement_embeddings.npy, checked to have the same rows."""
    folder = Path(folder)
    path = folder / TEXT_STATEMENTS.name
    statements = _load_jsonl(path, "text_embeddings", ArtifactError)
    emb = np.load(require(folder / STATEMENT_EMBEDDINGS.name, "text_embeddings"))
    check_rows(folder / STATEMENT_EMBEDDINGS.name, len(emb), len(statements), path)
    return statements, emb


def load_text_source(folder: str | Path = TEXT) -> str:
    """text.source the text_embeddings stage embedded the records with (data/text/stats.json's "source"):
    statements | report | both; "statements" for artifacts written before the field existed."""
    path = require(Path(folder) / TEXT_STATS.name, "text_embeddings")
    try:
        source = json.loads(path.read_text(encoding="utf-8")).get("source", "statements")
    except ValueError as e:
        raise ArtifactError(f"{path}: not JSON ({e}); rerun the text_embeddings stage") from None
    if source not in ("statements", "report", "both"):
        raise ArtifactError(f"{path}: source {source!r} is not one of statements, report, both; rerun the "
                            f"text_embeddings stage")
    return source


def load_signals(folder: str | Path = SIGNALS, n_records: int | None = None,
                 reports: str | Path = REPORTS) -> tuple[np.memmap, dict]:
    """data/signals: the array (records, 12, T) float32, memory-mapped read-only, and its stats dict (mean/std per
    lead, shape, ...); checked to be row-aligned with the reports when n_records is given."""
    folder = Path(folder)
    array, stats_file = folder / SIGNALS_ARRAY.name, folder / SIGNALS_STATS.name
    for path in (array, stats_file):
        if not path.is_file():
            raise SignalError(f"{path} not found: run the signals stage first (dvc repro signals)")
    stats = json.loads(stats_file.read_text(encoding="utf-8"))
    x = np.load(array, mmap_mode="r")
    if list(x.shape) != stats["shape"] or x.dtype != np.float32:
        raise SignalError(f"{array}: shape {x.shape} {x.dtype} does not match {stats_file}'s "
                          f"{stats['shape']} float32: re-run the signals stage")
    if n_records is not None:
        check_rows(array, len(x), n_records, reports)
    return x, stats


def load_ecg_embeddings(n_records: int, folder: str | Path = ECG_EMBEDDINGS,
                        reports: str | Path = REPORTS) -> tuple[np.ndarray, np.ndarray]:
    """data/ecg_embeddings: (z_ecg, e_ecg), memory-mapped, row-aligned with the reports."""
    folder = Path(folder)
    return tuple(load_array(folder / name.name, n_records, "ecg_embeddings", reports) for name in (Z_ECG, E_ECG))
