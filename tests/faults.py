"""The fault matrix: bad input, interruptions and misuse, each ending in a clear error or a documented, counted skip.

A Case breaks one thing in a temporary workspace (a repository root holding params.yaml and, by `stage`, the
artifacts of the stages before), runs one action (usually a stage's main(), sometimes a library call), and states
what must come out: the exception type and the culprit its message must name, one or more plain strings (an ecg_id,
a file, a param key; not the wording around them, which may change) or error=None (the action must succeed,
e.g. a counted skip or a resume); the final paths that must not exist afterwards, and an optional extra check. Every
case also asserts that no temporary file of ecgalign.atomic (`.<name>.<pid>.<random>`) is left anywhere.

CASES is used by tests/test_faults.py (one parametrised test) and bench/fault_matrix.py (the same list, outside
pytest).
"""
from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch
import yaml

os.environ["HF_HUB_OFFLINE"] = "1"   # an unreachable Hub otherwise retries for ~50 s
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import build_reports   # noqa: E402  (stage scripts: src/ is on sys.path)
import download_data   # noqa: E402
import embed_ecg   # noqa: E402
import embed_text   # noqa: E402
import extract_signals   # noqa: E402
import train_alignment   # noqa: E402
from ecgalign import atomic, download, models, params, ptbxl, reports, signals, training  # noqa: E402
from ecgalign.download import DownloadError  # noqa: E402
from ecgalign.models import CheckpointError  # noqa: E402
from ecgalign.params import ParamsError  # noqa: E402
from ecgalign.ptbxl import DataError  # noqa: E402
from ecgalign.reports import ReportError  # noqa: E402
from ecgalign.signals import SignalError  # noqa: E402
from ecgalign.text import TextModelError  # noqa: E402
from test_download import VERSION, free_port, rate_files, serve_release  # noqa: E402
from test_signals import BAD as RECORD_DAMAGE  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
PTBXL_MINI = REPO.parent / "shared" / "ptbxl-mini"
N_RECORDS = 40                                  # synthetic: 4 records in each of the 10 folds
REC3 = "records100/00000/00003_lr"              # ecg_id 3, the record most cases break
ECG3 = "ecg_id 3"
TEMP = re.compile(r"^\..+\.\d+\.[a-z0-9_]{8}")  # ecgalign.atomic's temporaries: .<name>.<pid>.<random>
PARAMS = {  # every value a case relies on, pinned: params.yaml's own values may change
    "data.source": "synthetic", "data.sampling_rate": 100, "data.synthetic_records": N_RECORDS, "data.seed": 0,
    "data.download_dir": "dl", "data.download_workers": 4, "data.timeout": 5,
    "split.train_folds": [1, 2, 3, 4, 5, 6, 7, 8], "split.val_folds": [9], "split.test_folds": [10],
    "reports.on_error": "raise", "text.device": "cpu", "ecg.encoder": "cnn1d", "ecg.embed_dim": 16,
    "train.loss": "infonce", "train.proj_dim": 8, "train.epochs": 3, "train.batch_size": 8, "train.lr": 0.001,
    "train.device": "cpu", "train.num_workers": 0}
STAGES = ("params", "raw", "reports", "signals")  # what a workspace holds before the case's setup


# --- the workspace ------------------------------------------------------------------------------------------------

class Workspace:
    """A temporary repository root (the cwd while a case runs); `stack` undoes patches and stops servers."""

    def __init__(self, path: Path, stack: contextlib.ExitStack):
        self.path, self.stack, self.srv = path, stack, None

    def __truediv__(self, rel) -> Path:
        return self.path / rel

    def set_params(self, **dotted) -> None:
        """params.yaml edits by dotted key: ws.set_params(**{"train.epochs": 0})."""
        raw = yaml.safe_load((self / "params.yaml").read_text())
        for key, value in dotted.items():
            section, name = key.split(".")
            raw[section][name] = value
        (self / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))

    def edit_table(self, edit: Callable[[pd.DataFrame], None], name: str = ptbxl.DATABASE) -> None:
        """Edit data/raw/<name> as a frame of strings (the text of every cell kept as is)."""
        path = self / "data/raw" / name
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
        edit(df)
        df.to_csv(path, index=False)

    def set_cell(self, ecg_id: int, column: str, value: str) -> None:
        def edit(df):
            df.loc[df["ecg_id"] == str(ecg_id), column] = value
        self.edit_table(edit)

    def patch(self, obj, name: str, value) -> None:
        """obj.name = value until the case ends (a missing attribute is deleted again)."""
        missing = object()
        old = getattr(obj, name, missing)
        setattr(obj, name, value)
        self.stack.callback(lambda: delattr(obj, name) if old is missing else setattr(obj, name, old))

    def serve(self) -> None:
        """A fake PTB-XL release (tests/test_download.py's) on 127.0.0.1 as self.srv; fast retries."""
        self.srv = self.stack.enter_context(serve_release(self / "srv"))
        self.patch(download, "BACKOFF", 0.01)

    def fetch(self, base_url: str | None = None, version: str = VERSION) -> Path:
        self.srv.log.clear()
        return download.fetch_ptbxl(base_url or self.srv.base_url, version, self / "dl", 100, workers=4, timeout=5)


@contextlib.contextmanager
def _inside(path: Path):
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def _quiet(fn, *args, **kwargs):
    """Run fn with stdout and stderr captured (stage prints, tqdm bars)."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return fn(*args, **kwargs)


def build_base(cache: Path) -> Path:
    """cache/base: params.yaml (small), then the download, reports and signals stages run for real on 40 synthetic
    records, plus seeded random text embeddings (data/text/record_embeddings.npy, 16-d). Built once per cache."""
    base = cache / "base"
    if (base / "data/text/record_embeddings.npy").exists():
        return base
    base.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "params.yaml", base / "params.yaml")
    with contextlib.ExitStack() as stack, _inside(base):
        Workspace(base, stack).set_params(**PARAMS)
        for stage in (download_data, build_reports, extract_signals):
            _quiet(stage.main)
        text = np.random.default_rng(0).standard_normal((N_RECORDS, 16)).astype(np.float32)
        atomic.save_npy("data/text/record_embeddings.npy", text)
    return base


def make_workspace(path: Path, cache: Path, stage: str) -> Path:
    """A copy of the base workspace holding what `stage` needs."""
    base = build_base(cache)
    path.mkdir(parents=True)
    shutil.copy(base / "params.yaml", path / "params.yaml")
    keep = STAGES.index(stage)
    if keep >= 1:
        shutil.copytree(base / "data/raw", path / "data/raw")
    if keep >= 2:
        shutil.copy(base / "data/reports.jsonl", path / "data/reports.jsonl")
        shutil.copytree(base / "metrics", path / "metrics")
    if keep >= 3:
        shutil.copytree(base / "data/signals", path / "data/signals")
        shutil.copytree(base / "data/text", path / "data/text")
    return path


# --- cases and the runner -----------------------------------------------------------------------------------------

@dataclass
class Case:
    name: str
    group: str
    setup: Callable[[Workspace], None]
    action: Callable[[Workspace], object]
    error: type[BaseException] | None                # None: the action must succeed (documented skip, resume ...)
    culprit: str | tuple[str, ...] = ()              # what the message must name (each string, as is)
    absent: tuple[str, ...] = ()                     # final paths that must not exist afterwards
    check: Callable[[Workspace, object], None] | None = None   # extra assertions after the action
    stage: str = "raw"                               # one of STAGES: what the workspace holds before setup
    needs_mini: bool = False                         # needs ../shared/ptbxl-mini (skipped where it is absent)


@dataclass
class Outcome:
    case: Case
    status: str          # "handled" | "FAILED" | "skipped"
    detail: str          # the error message seen, or what went wrong
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)


def culprits(case: Case) -> tuple[str, ...]:
    return (case.culprit,) if isinstance(case.culprit, str) else tuple(case.culprit)


def temporaries(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob(".*") if TEMP.match(p.name))


def run_case(case: Case, tmp: Path, cache: Path) -> Outcome:
    """Set the case up in tmp/ws (a copy of the base workspace in `cache`), run it, and judge it."""
    if case.needs_mini and not (PTBXL_MINI / ptbxl.DATABASE).exists():
        return Outcome(case, "skipped", f"{PTBXL_MINI} is absent")
    start = time.perf_counter()
    path = make_workspace(tmp / "ws", cache, case.stage)
    problems, error, result = [], None, None
    with contextlib.ExitStack() as stack, _inside(path):
        ws = Workspace(path, stack)
        case.setup(ws)
        try:
            result = _quiet(case.action, ws)
        except BaseException as e:  # noqa: BLE001  (KeyboardInterrupt is a case too)
            error = e
        message = f"{type(error).__name__}: {error}" if error is not None else "(no error)"
        if case.error is None:
            if error is not None:
                problems.append(f"raised {message}")
        elif error is None:
            problems.append(f"no error raised, expected {case.error.__name__}")
        elif not isinstance(error, case.error):
            problems.append(f"raised {message}, expected {case.error.__name__}")
        else:
            missing = [c for c in culprits(case) if c not in str(error)]
            if missing:
                problems.append(f"message {str(error)!r} does not name {missing}")
        problems += [f"{rel} exists" for rel in case.absent if (path / rel).exists()]
        problems += [f"temporary {t} left behind" for t in temporaries(path)]
        if case.check and not problems:
            try:
                case.check(ws, result)
            except AssertionError as e:
                problems.append(f"check failed: {e}")
    seconds = time.perf_counter() - start
    status = "FAILED" if problems else "handled"
    return Outcome(case, status, "; ".join(problems) if problems else message, seconds, problems)


def _no(*_):
    pass


def _stage(module):
    return lambda ws: module.main()


# --- tables -------------------------------------------------------------------------------------------------------

def _table_case(name, setup, error, culprit, **kw) -> Case:
    """The reports stage on a broken table: no reports.jsonl, no metrics/reports.json."""
    return Case(name, "tables", setup, _stage(build_reports), error, culprit,
                absent=("data/reports.jsonl", "metrics/reports.json"), **kw)


def _cell(column, value):
    return lambda ws: ws.set_cell(3, column, value)


def _drop_column(column):
    return lambda ws: ws.edit_table(lambda df: df.drop(columns=[column], inplace=True))


def _raw_bytes(data: bytes, name=ptbxl.DATABASE):
    return lambda ws: (ws / "data/raw" / name).write_bytes(data)


def _non_utf8(name):
    def setup(ws):
        path = ws / "data/raw" / name
        path.write_bytes(path.read_bytes().replace(b"normal", b"n\xe9rmal", 1).replace(b"NORM'", b"N\xd6RM'", 1))
    return setup


def _duplicate_ecg_id(ws):
    ws.set_cell(4, "ecg_id", "3")


def _same_file_twice(ws):
    ws.set_cell(5, "filename_lr", REC3)


def _skip_two(ws):
    ws.set_params(**{"reports.on_error": "skip"})
    ws.set_cell(3, "scp_codes", "{'NORM': 100.0")
    ws.set_cell(7, "scp_codes", "{'XYZ': 50.0}")


def _check_skips(ws, _):
    m = json.loads((ws / "metrics/reports.json").read_text())
    assert (m["n_records"], m["n_skipped"], m["skipped_ecg_ids"]) == (N_RECORDS - 2, 2, [3, 7]), m
    ids = [r["ecg_id"] for r in reports.read_reports(ws / "data/reports.jsonl")]
    assert ids == [i for i in range(1, N_RECORDS + 1) if i not in (3, 7)], ids


def _skip_all(ws):
    ws.set_params(**{"reports.on_error": "skip"})
    ws.edit_table(lambda df: df.__setitem__("scp_codes", "{}"))


CASES: list[Case] = [
    _table_case("missing column strat_fold", _drop_column("strat_fold"), DataError,
                (ptbxl.DATABASE, "strat_fold")),
    _table_case("scp_statements.csv missing a column", lambda ws: ws.edit_table(
        lambda df: df.drop(columns=["diagnostic_class"], inplace=True), ptbxl.STATEMENTS), DataError,
        (ptbxl.STATEMENTS, "diagnostic_class")),
    _table_case("scp_codes not a dict", _cell("scp_codes", "['NORM', 'SR']"), ReportError,
                ECG3),
    _table_case("scp_codes unbalanced", _cell("scp_codes", "{'NORM': 100.0, 'SR': 0.0"), ReportError,
                ECG3),
    _table_case("scp_codes non-numeric likelihood", _cell("scp_codes", "{'NORM': 'high'}"), ReportError,
                (ECG3, "NORM")),
    _table_case("scp_codes negative likelihood", _cell("scp_codes", "{'NORM': -5.0}"), ReportError,
                (ECG3, "NORM")),
    _table_case("scp_codes likelihood > 100", _cell("scp_codes", "{'NORM': 150.0}"), ReportError,
                (ECG3, "NORM")),
    _table_case("scp_codes empty {}", _cell("scp_codes", "{}"), ReportError,
                ECG3),
    _table_case("scp_codes cell empty", _cell("scp_codes", ""), ReportError, ECG3),
    _table_case("scp_codes code not in scp_statements.csv", _cell("scp_codes", "{'XYZ': 50.0}"), ReportError,
                (ECG3, "'XYZ'")),
    _table_case("duplicate ecg_id", _duplicate_ecg_id, DataError,
                (ptbxl.DATABASE, "ecg_id 3")),
    _table_case("strat_fold 0", _cell("strat_fold", "0"), DataError,
                (ptbxl.DATABASE, "ecg_id 3", "strat_fold")),
    _table_case("strat_fold 11", _cell("strat_fold", "11"), DataError, ("ecg_id 3", "strat_fold")),
    _table_case("strat_fold not a number", _cell("strat_fold", "ten"), DataError,
                ("ecg_id 3", "strat_fold")),
    _table_case("ecg_id not an integer", _cell("ecg_id", "3a"), DataError,
                (ptbxl.DATABASE, "'3a'")),
    _table_case("filename_lr empty", _cell("filename_lr", ""), DataError,
                (ptbxl.DATABASE, "ecg_id 3", "filename_lr")),
    _table_case("non-UTF-8 bytes in ptbxl_database.csv", _non_utf8(ptbxl.DATABASE), DataError,
                (ptbxl.DATABASE, "UTF-8")),
    _table_case("non-UTF-8 bytes in scp_statements.csv", _non_utf8(ptbxl.STATEMENTS), DataError,
                (ptbxl.STATEMENTS, "UTF-8")),
    _table_case("empty table (0 bytes)", _raw_bytes(b""), DataError, ptbxl.DATABASE),
    _table_case("table with a header only", _raw_bytes(b"ecg_id,scp_codes,strat_fold,filename_lr,filename_hr\n"),
                DataError, ptbxl.DATABASE),
    _table_case("ptbxl_database.csv missing", lambda ws: (ws / "data/raw" / ptbxl.DATABASE).unlink(), DataError,
                f"data/raw/{ptbxl.DATABASE}"),
    _table_case("a record listed twice (same filename_lr)", _same_file_twice, DataError,
                (ptbxl.DATABASE, "ecg_id 3", "ecg_id 5", REC3)),
    Case("reports.on_error=skip: bad rows dropped and counted", "tables", _skip_two, _stage(build_reports), None,
         check=_check_skips),
    _table_case("reports.on_error=skip but every row is bad", _skip_all, ReportError,
                ptbxl.DATABASE),
]


# --- records (the signals stage) ----------------------------------------------------------------------------------

def _damage(kind):
    damage = RECORD_DAMAGE[kind][0]      # tests/test_signals.py's damage functions, imported
    return lambda ws: damage(ws / "data/raw", REC3)


def _signals_case(name, setup, error, culprit, **kw) -> Case:
    return Case(name, "records", setup, _stage(extract_signals), error, culprit, absent=("data/signals",),
                stage=kw.pop("stage", "reports"), **kw)


def _edit_file(rel: str, edit):
    """A setup that rewrites the workspace's file rel as edit(its text)."""
    def setup(ws):
        path = ws / rel
        path.write_text(edit(path.read_text()))
    return setup


def _edit_reports(edit):
    return _edit_file("data/reports.jsonl", edit)


def _rows_same_file(text):
    rows = [json.loads(line) for line in text.splitlines()]
    rows[4]["filename_lr"] = rows[2]["filename_lr"]
    return "".join(json.dumps(r) + "\n" for r in rows)


def _manifest(**fields):
    def setup(ws):
        path = ws / "data/raw" / ptbxl.MANIFEST
        path.write_text(json.dumps({**json.loads(path.read_text()), **fields}))
    return setup


for _kind, (_, _message) in RECORD_DAMAGE.items():
    CASES.append(_signals_case(f"record {_kind}", _damage(_kind), SignalError,
                               (ECG3, REC3)))
CASES += [
    _signals_case("a record listed twice in reports.jsonl", _edit_reports(_rows_same_file), SignalError,
                  ("ecg_id 3", "ecg_id 5", REC3)),
    _signals_case("reports.jsonl damaged (half a line)", _edit_reports(lambda t: t[:-40]), ReportError,
                  f"data/reports.jsonl line {N_RECORDS}"),
    _signals_case("reports.jsonl missing", lambda ws: (ws / "data/reports.jsonl").unlink(), FileNotFoundError,
                  "data/reports.jsonl"),
    _signals_case("records folder moved since the download stage", _manifest(records_root="/nonexistent/ptbxl"),
                  DataError, (ptbxl.MANIFEST, "/nonexistent/ptbxl")),
    _signals_case("data.sampling_rate changed after the download stage",
                  lambda ws: ws.set_params(**{"data.sampling_rate": 500}), DataError,
                  (ptbxl.MANIFEST, "data.sampling_rate")),
]


# --- download (physionet, a local server) --------------------------------------------------------------------------

BAD_FILE, CUT_FILE, BUSY_FILE = ("records100/00000/00006_lr.dat", "records100/00000/00004_lr.dat",
                                 "records100/00000/00008_lr.hea")


def _serve(fault=None, rel=None, junk=False):
    def setup(ws):
        ws.serve()
        if junk:
            (ws.srv.release / rel).write_bytes(b"not what SHA256SUMS says")
        if fault is not None:
            ws.srv.faults[rel] = fault
    return setup


def _fetch(ws):
    return ws.fetch()


def _refetch_after_failure(ws):
    """A failed download, then the server is fixed and the download rerun: returns the second run's requests."""
    with contextlib.suppress(DownloadError):
        ws.fetch()
    ws.srv.faults.clear()
    ws.fetch()
    return list(ws.srv.log)


def _fetched_only(rel):
    def check(ws, log):
        assert log == [rel], f"the rerun fetched {log}, expected only {rel}"
        assert (ws / "dl" / VERSION / rel).read_bytes() == (ws.srv.release / rel).read_bytes()
        assert not list((ws / "dl").rglob("*.part")), "a .part file is left"
    return check


def _local_corruption(ws):
    root = ws.fetch()
    victim = root / BAD_FILE
    st = victim.stat()
    victim.write_bytes(b"\0" * st.st_size)                               # same size, new content
    os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns + 10 ** 9))
    ws.fetch()
    return list(ws.srv.log)


def _server_gone(ws):
    root = ws.fetch()
    for rel in rate_files(ws.srv, 100)[:6]:
        (root / rel).unlink()
    return ws.fetch(base_url=f"http://127.0.0.1:{free_port()}/ptb-xl")


def _evil_sums(ws):
    ws.serve()
    with open(ws.srv.release / download.SUMS, "a") as f:
        f.write(f"{'0' * 64}  ../escape.txt\n")


def _offline_params(ws):
    ws.set_params(**{"data.source": "physionet", "data.base_url": f"http://127.0.0.1:{free_port()}/ptb-xl"})


CASES += [
    Case("file corrupt on the server (sha256 mismatch)", "download", _serve(rel=BAD_FILE, junk=True), _fetch,
         DownloadError, (BAD_FILE, "sha256"),
         absent=(f"dl/{VERSION}/{BAD_FILE}", f"dl/{VERSION}/{BAD_FILE}.part"), stage="params"),
    Case("transfer cut mid-file", "download", _serve("cut", CUT_FILE), _fetch, DownloadError,
         CUT_FILE,
         absent=(f"dl/{VERSION}/{CUT_FILE}",), stage="params"),
    Case("server answers HTTP 500", "download", _serve(500, BUSY_FILE), _fetch, DownloadError,
         (BUSY_FILE, "HTTP 500"),
         absent=(f"dl/{VERSION}/{BUSY_FILE}",), stage="params"),
    Case("resume after a cut transfer fetches only that file", "download", _serve("cut", CUT_FILE),
         _refetch_after_failure, None, check=_fetched_only(CUT_FILE), stage="params"),
    Case("resume after HTTP 500 fetches only that file", "download", _serve(500, BUSY_FILE),
         _refetch_after_failure, None, check=_fetched_only(BUSY_FILE), stage="params"),
    Case("file damaged on disk after download is re-fetched alone", "download", _serve(), _local_corruption, None,
         check=_fetched_only(BAD_FILE), stage="params"),
    Case("no network (download stage)", "download", _offline_params, _stage(download_data), DownloadError,
         ("/ptb-xl/1.0.3/SHA256SUMS.txt", "data.source"), absent=("data/raw",), stage="params"),
    Case("server gone mid-resume", "download", _serve(), _server_gone, DownloadError,
         ("Connection refused", "16 of 22 files"),
         stage="params"),
    Case("unknown release version", "download", _serve(), lambda ws: ws.fetch(version="9.9.9"), DownloadError,
         ("9.9.9/SHA256SUMS.txt", "data.version"), stage="params"),
    Case("SHA256SUMS.txt path leaving the folder", "download", _evil_sums, _fetch, DownloadError,
         ("SHA256SUMS.txt line 45", "../escape.txt"), absent=("dl/escape.txt", "escape.txt"),
         stage="params"),
]


# --- params -------------------------------------------------------------------------------------------------------

def _params_case(name, changes, culprit, **kw) -> Case:
    setup = changes if callable(changes) else (lambda ws: ws.set_params(**changes))
    return Case(name, "params", setup, lambda ws: params.load(), ParamsError, culprit, stage="params", **kw)


def _yaml_text(edit):
    return _edit_file("params.yaml", edit)


def _delete_key(ws):
    raw = yaml.safe_load((ws / "params.yaml").read_text())
    del raw["train"]["lr"]
    (ws / "params.yaml").write_text(yaml.safe_dump(raw))


def _empty_fold(fold):
    return lambda ws: ws.edit_table(lambda df: df.__setitem__("strat_fold", df["strat_fold"].replace(str(fold), "9")))


CASES += [
    _params_case("unknown key (train.epoch)", {"train.epoch": 3},
                 ("train.epoch", "loss, temperature")),
    _params_case("unknown section", _yaml_text(lambda t: t + "trian:\n  epochs: 3\n"),
                 ("'trian'", "data, split")),
    _params_case("missing key", _delete_key, "train.lr"),
    _params_case("wrong type (train.lr: fast)", {"train.lr": "fast"},
                 ("train.lr", "'fast'")),
    _params_case("train.lr: 1e-3 (YAML reads it as text)",
                 _yaml_text(lambda t: re.sub(r"(?m)^  lr: .*$", "  lr: 1e-3", t)),
                 ("train.lr", "'1e-3'", "1.0e-3")),
    _params_case("wrong type (train.epochs: '15')", {"train.epochs": "15"}, ("train.epochs", "'15'")),
    _params_case("wrong type (split.test_folds: 10)", {"split.test_folds": 10},
                 "split.test_folds"),
    _params_case("train.epochs: 0", {"train.epochs": 0}, ("train.epochs", "[1, 10000]")),
    _params_case("train.batch_size: -1", {"train.batch_size": -1}, ("train.batch_size", "-1")),
    _params_case("data.sampling_rate: 250", {"data.sampling_rate": 250},
                 ("data.sampling_rate", "100, 500")),
    _params_case("ecg.encoder that does not exist", {"ecg.encoder": "resnet9000"},
                 ("ecg.encoder", "'resnet9000'", "cnn1d, xresnet1d")),
    _params_case("train.loss that does not exist", {"train.loss": "mse"},
                 ("train.loss", "'mse'", "cosine, infonce, cosine+infonce")),
    _params_case("train.lr: .nan", _yaml_text(lambda t: re.sub(r"(?m)^  lr: .*$", "  lr: .nan", t)),
                 ("train.lr", "nan")),
    _params_case("split folds overlap", {"split.val_folds": [8]},
                 ("split.train_folds", "split.val_folds", "[8]")),
    _params_case("params.yaml not valid YAML", _yaml_text(lambda t: t.replace("  epochs: 3", "  epochs: [3")),
                 ("params.yaml line ", "not valid YAML")),
    _params_case("params.yaml missing", lambda ws: (ws / "params.yaml").unlink(),
                 "params.yaml not found"),
    Case("a test fold that has no records", "params", _empty_fold(10), _stage(build_reports), DataError,
         "split.test_folds=[10]", absent=("data/reports.jsonl", "metrics/reports.json")),
]


# --- disk full ----------------------------------------------------------------------------------------------------

def _enospc() -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


class _FullDisk(io.TextIOWrapper):
    """A text file on a disk that fills up after `budget` characters: it writes what fits, then raises ENOSPC."""
    budget = 1000

    def write(self, s):
        self.written = getattr(self, "written", 0)
        room = self.budget - self.written
        if len(s) > room:
            super().write(s[:max(room, 0)])
            self.flush()
            raise _enospc()
        self.written += len(s)
        return super().write(s)


def _full_disk_open(path, mode="w", encoding="utf-8"):
    """open() for writing text, on a disk that fills up."""
    assert mode == "w", mode
    return _FullDisk(open(path, "wb"), encoding=encoding)


def _half_then_enospc(serialise):
    """A save function with numpy.save's signature (file, arr) that writes the first half of the bytes, then fails
    as a full disk does."""
    def save(target, obj, *args, **kwargs):
        buf = io.BytesIO()
        serialise(buf, obj)
        _write_half_then_enospc(Path(target), buf.getvalue())
    return save


def _write_half_then_enospc(path: Path, data: bytes) -> None:
    """Path.write_bytes on a disk that fills up half-way through."""
    with open(path, "wb") as f:
        f.write(data[:len(data) // 2])
    raise _enospc()


def _full_disk_reports(ws):
    ws.previous = (ws / "data/reports.jsonl").read_bytes()
    ws.patch(reports, "open", _full_disk_open)


def _previous_kept(ws, _):
    assert (ws / "data/reports.jsonl").read_bytes() == ws.previous, "the previous reports.jsonl changed"


def _no_fallocate(path_fd, offset, length):
    raise _enospc()


def _tiny_model():
    return models.build_model("cnn1d", 16, 16, 8)


CASES += [
    Case("disk full while writing reports.jsonl (previous file kept)", "disk", _full_disk_reports,
         _stage(build_reports), OSError, ("No space left on device", "data/reports.jsonl"), check=_previous_kept, stage="reports"),
    Case("disk full while writing an .npy (numpy.save)", "disk", lambda ws: ws.patch(np, "save", _half_then_enospc(
        np.save)), lambda ws: atomic.save_npy("data/text/record_embeddings.npy", np.ones((40, 16), np.float32)),
         OSError, ("No space left on device", "data/text/record_embeddings.npy"),
         absent=("data/text/record_embeddings.npy",), stage="params"),
    Case("disk full before the signals array", "disk", lambda ws: ws.patch(os, "posix_fallocate", _no_fallocate),
         _stage(extract_signals), OSError, ("No space left on device", "data/signals"),
         absent=("data/signals",), stage="reports"),
    Case("disk full while writing a checkpoint", "disk",
         lambda ws: ws.patch(Path, "write_bytes", _write_half_then_enospc),
         lambda ws: models.save_checkpoint("data/model/model.pt", _tiny_model()), OSError,
         ("No space left on device", "data/model/model.pt"), absent=("data/model/model.pt",),
         stage="params"),
]


# --- data.source=local --------------------------------------------------------------------------------------------

def _local(path, rate=100, tables=()):
    def setup(ws):
        folder = ws / path
        folder.mkdir(parents=True, exist_ok=True)
        for name in tables:
            shutil.copy(PTBXL_MINI / name, folder / name)
        ws.set_params(**{"data.source": "local", "data.path": str(folder), "data.sampling_rate": rate})
    return setup


def _local_mini(rate):
    return lambda ws: ws.set_params(**{"data.source": "local", "data.path": str(PTBXL_MINI),
                                       "data.sampling_rate": rate})


CASES += [
    Case("data.path without tables", "local", _local("empty"), _stage(download_data), DataError,
         ("data.path=", "/empty", ptbxl.DATABASE, ptbxl.STATEMENTS), absent=("data/raw",), stage="params"),
    Case("data.path with ptbxl_database.csv only", "local", _local("half", tables=(ptbxl.DATABASE,)),
         _stage(download_data), DataError, ("data.path=", ptbxl.STATEMENTS), absent=("data/raw",), stage="params",
         needs_mini=True),
    Case("data.path that does not exist", "local",
         lambda ws: ws.set_params(**{"data.source": "local", "data.path": "../no/such/ptbxl"}), _stage(download_data),
         DataError, ("data.path=../no/such/ptbxl", ptbxl.DATABASE), absent=("data/raw",),
         stage="params"),
    Case("500 Hz on ptbxl-mini (only ecg_id 1-100 have 500 Hz files)", "local", _local_mini(500),
         _stage(download_data), DataError, ("900 of 1000 records", "records500/00000/00101_hr"),
         absent=("data/raw",), stage="params", needs_mini=True),
]


# --- interruptions ------------------------------------------------------------------------------------------------

def _interrupt_third_record(ws):
    real, calls = signals.read_record, []

    def read(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)
    ws.patch(extract_signals, "default_workers", lambda: 1)   # serial: the patch below applies
    ws.patch(signals, "read_record", read)


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def _stale_temporaries(ws):
    pid = _dead_pid()
    ws.stale = [ws / f"data/.signals.{pid}.abcd1234", ws / f"data/.reports.jsonl.{pid}.abcd1234.tmp"]
    (ws.stale[0]).mkdir(parents=True)
    (ws.stale[0] / "signals.npy").write_bytes(b"\0" * 4096)
    ws.stale[1].write_text("{half a line")


def _reports_then_signals(ws):
    build_reports.main()
    extract_signals.main()


def _stale_removed(ws, _):
    assert not any(p.exists() for p in ws.stale), f"stale temporaries still there: {ws.stale}"
    assert (ws / "data/signals/signals.npy").exists()


CASES += [
    Case("Ctrl-C during signal extraction", "interrupt", _interrupt_third_record, _stage(extract_signals),
         KeyboardInterrupt, absent=("data/signals",), stage="reports"),
    Case("temporaries of a SIGKILLed run are removed by the next run", "interrupt", _stale_temporaries,
         _reports_then_signals, None, check=_stale_removed, stage="reports"),
]


# --- training, models, text ---------------------------------------------------------------------------------------

def _write_model_pt(ws, damage=None, encoder="cnn1d"):
    path = ws / "data/model/model.pt"
    models.save_checkpoint(path, models.build_model(encoder, 16, 16, 8))
    if damage:
        path.write_bytes(damage(path.read_bytes()))


def _garbage_model_folder(ws):
    folder = ws / "models/broken-bert"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text('{"model_type": "bert", "hidden_size": ')
    ws.set_params(**{"text.model": "models/broken-bert"})


def _text_rows(n: int):
    def setup(ws):
        path = ws / "data/text/record_embeddings.npy"
        np.save(path, np.load(path)[:n])
    return setup


def _nan_text(ws):
    path = ws / "data/text/record_embeddings.npy"
    x = np.load(path)
    x[4, 3] = np.nan
    np.save(path, x)


def _train_quiet(ws, out: str, state: str, logs: list | None = None):
    x, stats = signals.load_signals(ws / "data/signals")
    text = np.load(ws / "data/text/record_embeddings.npy")
    folds = [r["strat_fold"] for r in reports.read_reports(ws / "data/reports.jsonl")]
    p = params.load(ws / "params.yaml")
    return training.train(x, text, folds, training.config_from_params(p), ws / out, ws / state,
                          lead_mean=stats["mean"], lead_std=stats["std"], log=(logs.append if logs is not None
                                                                                else _no))


def _state_dict(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def _same_weights(a: Path, b: Path) -> None:
    sa, sb = _state_dict(a), _state_dict(b)
    assert sa.keys() == sb.keys(), "different tensors"
    diff = [k for k in sa if not torch.equal(sa[k], sb[k])]
    assert not diff, f"{len(diff)} of {len(sa)} tensors differ, first {diff[0]}"


def _corrupt_resume_state(ws):
    ws.set_params(**{"train.epochs": 1})
    (ws / "data/train_state").mkdir(parents=True)
    (ws / "data/train_state/last.pt").write_bytes(b"PK\x03\x04 half a zip")


def _train_after_corrupt_state(ws):
    logs = []
    _train_quiet(ws, "data/model", "data/train_state", logs)
    _train_quiet(ws, "fresh/model", "fresh/state")
    return logs


def _fresh_start_same_weights(ws, logs):
    assert any("last.pt: unreadable" in line and "starting fresh" in line for line in logs), logs[:3]
    _same_weights(ws / "data/model/model.pt", ws / "fresh/model/model.pt")


def _run_train(cwd: Path, kill_after_first_epoch: bool = False) -> str:
    """python src/train_alignment.py in `cwd`; optionally SIGKILL it once data/train_state/last.pt appears."""
    env = dict(os.environ, PYTHONHASHSEED="0")
    cmd = [sys.executable, str(REPO / "src/train_alignment.py")]
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if kill_after_first_epoch:
        state = cwd / "data/train_state/last.pt"
        while proc.poll() is None and not state.exists():
            time.sleep(0.005)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
    out = proc.communicate(timeout=300)[0]
    if not kill_after_first_epoch and proc.returncode != 0:
        raise RuntimeError(f"train_alignment.py failed ({proc.returncode}):\n{out[-2000:]}")
    return out


def _kill_and_resume(ws):
    ws.set_params(**{"train.epochs": 3})
    twin = ws.path.parent / "uninterrupted"
    shutil.copytree(ws.path, twin)
    _run_train(twin)
    _run_train(ws.path, kill_after_first_epoch=True)
    killed = not (ws / "data/model/model.pt").exists()
    epochs_done = torch.load(ws / "data/train_state/last.pt", weights_only=True)["epoch"]
    out = _run_train(ws.path)
    return twin, killed, epochs_done, out


def _resumed_same(ws, result):
    twin, killed, epochs_done, out = result
    assert killed and 1 <= epochs_done < 3, f"the run was not killed mid-training (epochs done: {epochs_done})"
    assert f"resuming from data/train_state/last.pt: {epochs_done} epoch(s) done" in out, out[-1000:]
    _same_weights(ws / "data/model/model.pt", twin / "data/model/model.pt")
    a, b = (json.loads((w / "metrics/train.json").read_text()) for w in (ws.path, twin))
    assert {k: v for k, v in a.items() if k not in ("train_seconds", "epoch_seconds")} == \
           {k: v for k, v in b.items() if k not in ("train_seconds", "epoch_seconds")}, (a, b)


CASES += [
    Case("model.pt is random bytes", "training", lambda ws: _write_model_pt(ws, lambda b: np.random.default_rng(0).bytes(len(b))),
         _stage(embed_ecg), CheckpointError, "data/model/model.pt",
         absent=("data/ecg_embeddings",), stage="signals"),
    Case("model.pt truncated", "training", lambda ws: _write_model_pt(ws, lambda b: b[:len(b) // 2]),
         _stage(embed_ecg), CheckpointError, "data/model/model.pt",
         absent=("data/ecg_embeddings",), stage="signals"),
    Case("checkpoint from another encoder", "training", lambda ws: _write_model_pt(ws, encoder="xresnet1d"),
         _stage(embed_ecg), CheckpointError, ("'xresnet1d'", "ecg.encoder"), absent=("data/ecg_embeddings",),
         stage="signals"),
    Case("text model folder that does not load", "training", _garbage_model_folder, _stage(embed_text),
         TextModelError, "text.model='models/broken-bert'", absent=("data/text",), stage="reports"),
    Case("text model path that does not exist", "training",
         lambda ws: ws.set_params(**{"text.model": "/no/such/model"}), _stage(embed_text), TextModelError,
         "text.model='/no/such/model'", absent=("data/text",), stage="reports"),
    Case("text embeddings not row-aligned with the reports", "training", _text_rows(N_RECORDS - 1),
         _stage(train_alignment), ValueError, ("data/text/record_embeddings.npy", "data/reports.jsonl"), absent=("data/model", "data/train_state"), stage="signals"),
    Case("corrupt resume state (last.pt) is ignored: a fresh start", "training", _corrupt_resume_state,
         _train_after_corrupt_state, None, check=_fresh_start_same_weights, stage="signals"),
    Case("NaN in the text embeddings", "training", _nan_text, _stage(train_alignment), ValueError,
         ("data/text/record_embeddings.npy", "row 4"), absent=("data/model",), stage="signals"),
]

SLOW = [
    Case("SIGKILL mid-training, rerun resumes to the same weights", "training", _no, _kill_and_resume, None,
         check=_resumed_same, stage="signals"),
]
