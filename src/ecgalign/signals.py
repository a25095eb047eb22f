"""The `signals` stage's library: read every WFDB record exactly once into one memory-mappable float32 array.

    data/signals/signals.npy   (N, 12, T) float32, millivolts, leads in PTB-XL order, row-aligned with reports.jsonl
    data/signals/stats.json    per-lead mean and std over the folds given (the stage: the pretraining folds,
                               split.pretrain_folds or the training folds; + shape, rate, timing)

Reading: PTB-XL's records are WFDB format 16 (little-endian int16, samples x leads interleaved in one .dat file).
The header is parsed here and the .dat read with np.fromfile: mV = (adc - baseline) / gain, bit-identical to
wfdb.rdsamp cast to float32 and many times faster (bench/bench_signals.py). Any other layout (other formats,
several files, multi-segment records) falls back to wfdb.rdsamp.

Writing: the parent creates the .npy with np.lib.format.open_memmap; worker processes read chunks of rows and write
them straight into their rows of that file (memory-mapped), so no signal data crosses a pipe and the 500 Hz dataset
(~5 GB) is never held in memory. Training-fold moments come back per chunk and are merged.

Policy: a bad record is an error, never a skip, because every array of the pipeline is row-aligned with
reports.jsonl. Each SignalError names the ecg_id, the file and the field.
"""
from __future__ import annotations

import errno
import json
import os
import re
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .artifacts import SIGNALS as SIGNALS_DIR, SIGNALS_ARRAY, SIGNALS_STATS, load_signals  # noqa: F401 (re-export)
from .atomic import atomic_dir
from .errors import SignalError
from .ptbxl import LEADS, SAMPLES, filename_column

SIGNALS, STATS = SIGNALS_ARRAY.name, SIGNALS_STATS.name   # the two files of the signals folder
INVALID_16 = -32768  # WFDB's "no sample" marker in format 16 (rdsamp turns it into NaN)
_GAIN = re.compile(r"^([-+0-9.eE]+)(?:\(([-+0-9]+)\))?(?:/(\S+))?$")  # gain[(baseline)][/units]


@dataclass
class Header:
    """The parts of a WFDB header this stage checks or uses."""
    n_sig: int
    fs: float
    n_samples: int
    files: list[str]
    fmts: list[str]
    gains: list[float]
    baselines: list[int]
    units: list[str]
    checksums: list[int | None]
    names: list[str]

    @property
    def fast(self) -> bool:
        """Plain format 16 in one file: read with np.fromfile; anything else goes through wfdb.rdsamp."""
        return set(self.fmts) == {"16"} and len(set(self.files)) == 1


def parse_header(path: Path, ecg_id) -> Header:
    """Parse a single-record WFDB header (record line, then one line per signal; '#' lines are comments)."""
    try:
        lines = [ln.split("#", 1)[0].strip() for ln in path.read_text(encoding="latin-1").splitlines()]
    except OSError as e:
        raise SignalError(f"ecg_id {ecg_id}: {path}: cannot read the header ({e.strerror})") from None
    lines = [ln for ln in lines if ln]

    def bad(field, value):
        return SignalError(f"ecg_id {ecg_id}: {path}: bad {field} {value!r} in the WFDB header")

    if not lines:
        raise SignalError(f"ecg_id {ecg_id}: {path}: the header is empty")
    rec = lines[0].split()
    if len(rec) < 4:
        raise bad("record line (need name, signals, sampling frequency, length)", lines[0])
    try:
        n_sig, n_samples = int(rec[1]), int(rec[3])
    except ValueError:
        raise bad("record line", lines[0]) from None
    try:
        fs = float(rec[2].split("/")[0].split("(")[0])
    except ValueError:
        raise bad("sampling frequency", rec[2]) from None
    h = Header(n_sig, fs, n_samples, [], [], [], [], [], [], [])
    if "/" in rec[0]:  # multi-segment: the following lines are segments, not signals (no fmts: wfdb.rdsamp reads it)
        return h
    for ln in lines[1:]:
        f = ln.split(maxsplit=8)
        if len(f) < 2:
            raise bad("signal line", ln)
        m = _GAIN.match(f[2]) if len(f) > 2 else None
        if len(f) > 2 and not m:
            raise bad("gain(baseline)/units", f[2])
        try:
            adc_zero = int(f[4]) if len(f) > 4 else 0
            gain = float(m.group(1)) if m else 0.0
            baseline = int(m.group(2)) if m and m.group(2) is not None else adc_zero
            checksum = int(f[6]) if len(f) > 6 else None
        except ValueError:
            raise bad("signal line", ln) from None
        h.files.append(f[0])
        h.fmts.append(f[1])
        h.gains.append(gain if gain != 0 else 200.0)  # WFDB: gain 0 means the default, 200 adu/mV
        h.baselines.append(baseline)
        h.units.append(m.group(3) if m and m.group(3) else "mV")
        h.checksums.append(checksum)
        h.names.append(f[8].strip() if len(f) > 8 else "")
    return h


def _check_layout(ecg_id, path, n_sig, fs, n_samples, names, units, sampling_rate: int) -> None:
    """The record must be 12 PTB-XL leads in order, in mV, at the chosen rate and length."""
    T = SAMPLES[sampling_rate]
    where = f"ecg_id {ecg_id}: {path}"
    if n_sig != len(LEADS):
        raise SignalError(f"{where}: the header declares {n_sig} leads, expected {len(LEADS)}")
    if fs != sampling_rate:
        raise SignalError(f"{where}: sampling frequency {fs:g} Hz in the header, expected {sampling_rate} Hz "
                          f"(data.sampling_rate)")
    if n_samples != T:
        raise SignalError(f"{where}: signal length {n_samples} samples in the header, expected {T}")
    if [str(n).upper() for n in names] != list(LEADS):
        raise SignalError(f"{where}: lead names {list(names)} are not the 12 PTB-XL leads in order {list(LEADS)}")
    bad_units = sorted({u for u in units if u.lower() != "mv"})
    if bad_units:
        raise SignalError(f"{where}: units {bad_units} in the header, expected mV")


def _read_fast(ecg_id, hea: Path, h: Header) -> np.ndarray:
    """Format 16 via np.fromfile: (12, T) float32 millivolts, NaN where WFDB marks a missing sample."""
    dat = hea.parent / h.files[0]
    if not dat.is_file():
        raise SignalError(f"ecg_id {ecg_id}: {dat}: signal file missing (named by {hea.name})")
    expected = h.n_sig * h.n_samples * 2
    size = dat.stat().st_size
    if size != expected:
        raise SignalError(f"ecg_id {ecg_id}: {dat}: {size} bytes, expected {expected} "
                          f"({h.n_sig} leads x {h.n_samples} samples x 2 bytes): truncated or corrupt")
    d = np.fromfile(dat, dtype="<i2").reshape(h.n_samples, h.n_sig).T  # (12, T) int16 view
    sums = d.sum(axis=1, dtype=np.int64)
    for i, c in enumerate(h.checksums):
        if c is not None and (int(sums[i]) - c) % 65536:
            raise SignalError(f"ecg_id {ecg_id}: {dat}: lead {h.names[i]} sums to {int(sums[i]) % 65536}, "
                              f"the header's checksum is {c % 65536}: the file is corrupt")
    base = np.asarray(h.baselines, dtype=np.float32)[:, None]
    gain = np.asarray(h.gains, dtype=np.float32)[:, None]
    # float32 arithmetic is exact here: ints < 2**24, and one rounded division equals rdsamp's float64 result cast
    x = (d.astype(np.float32) - base) / gain
    x[d == INVALID_16] = np.nan
    return x


def _read_wfdb(ecg_id, root: Path, record: str, sampling_rate: int) -> np.ndarray:
    """Any other WFDB layout, through wfdb.rdsamp (checked like the fast path)."""
    import wfdb
    try:
        sig, fields = wfdb.rdsamp(str(root / record))
    except Exception as e:  # wfdb raises many types; report them as this record's error
        raise SignalError(f"ecg_id {ecg_id}: {root / record}: wfdb could not read the record "
                          f"({type(e).__name__}: {e})") from None
    _check_layout(ecg_id, root / (record + ".hea"), fields["n_sig"], fields["fs"], fields["sig_len"],
                  fields["sig_name"], fields["units"], sampling_rate)
    return np.ascontiguousarray(sig.T, dtype=np.float32)


def read_record(root: str | Path, record: str, sampling_rate: int, ecg_id=None) -> tuple[np.ndarray, bool]:
    """One record as a (12, T) float32 array in mV, checked; and whether the fast path read it."""
    root = Path(root)
    hea = root / (record + ".hea")
    if not hea.is_file():
        raise SignalError(f"ecg_id {ecg_id}: {hea}: header file missing")
    h = parse_header(hea, ecg_id)
    if h.fast:
        _check_layout(ecg_id, hea, h.n_sig, h.fs, h.n_samples, h.names, h.units, sampling_rate)
        x = _read_fast(ecg_id, hea, h)
    else:
        x = _read_wfdb(ecg_id, root, record, sampling_rate)
    finite = np.isfinite(x)
    if not finite.all():
        lead, sample = np.argwhere(~finite)[0]
        raise SignalError(f"ecg_id {ecg_id}: {root / record}: {int((~finite).sum())} non-finite sample(s), "
                          f"first in lead {LEADS[lead]} at sample {sample}")
    return x, h.fast


class Moments:
    """Per-lead count, mean and sum of squared deviations, float64; mergeable (Chan et al.) for streaming."""

    def __init__(self, n_leads: int = len(LEADS)):
        self.n = 0
        self.mean = np.zeros(n_leads)
        self.m2 = np.zeros(n_leads)

    def add(self, x: np.ndarray) -> None:
        """Add one record, shape (leads, T)."""
        x = x.astype(np.float64)
        other = Moments(len(x))
        other.n = x.shape[1]
        other.mean = x.mean(axis=1)
        other.m2 = ((x - other.mean[:, None]) ** 2).sum(axis=1)
        self.merge(other)

    def merge(self, other: "Moments") -> None:
        n = self.n + other.n
        if other.n == 0:
            return
        delta = other.mean - self.mean
        self.mean = self.mean + delta * (other.n / n)
        self.m2 = self.m2 + other.m2 + delta ** 2 * (self.n * other.n / n)
        self.n = n

    @property
    def std(self) -> np.ndarray:
        """Population standard deviation (ddof=0), as np.std."""
        return np.sqrt(self.m2 / self.n)


def _read_chunk(task) -> tuple[int, Moments, int]:
    """Worker: read a chunk of rows into rows start.. of the .npy at `path` (a memmap shared through the file, so
    no signal data crosses a pipe); returns (rows read, moments of its training rows, fast-path count)."""
    root, path, start, rows, sampling_rate = task
    out = np.load(path, mmap_mode="r+")
    moments, fast = Moments(), 0
    for i, (ecg_id, record, is_train) in enumerate(rows, start):
        out[i], was_fast = read_record(root, record, sampling_rate, ecg_id)
        fast += was_fast
        if is_train:
            moments.add(out[i])
    del out
    return len(rows), moments, fast


def _in_order(pool: ProcessPoolExecutor | None, tasks: list):
    """_read_chunk's results in task order: serially without a pool. A worker's SignalError is re-raised as itself,
    without the worker's chained traceback; a worker that died (killed, out of memory) raises a SignalError naming
    its rows instead of hanging the stage."""
    if pool is None:
        yield from map(_read_chunk, tasks)
        return
    futures = [pool.submit(_read_chunk, task) for task in tasks]
    for future, (_, _, start, rows, _) in zip(futures, tasks):
        try:
            yield future.result()
        except SignalError as e:
            e.__cause__ = None   # concurrent.futures chains the worker's traceback as the cause
            raise e.with_traceback(None) from None
        except BrokenProcessPool:
            raise SignalError(f"a reader process died (killed, or out of memory?) while reading ecg_id "
                              f"{rows[0][0]}-{rows[-1][0]} (rows {start + 1}-{start + len(rows)}): nothing was "
                              f"written; rerun the stage (dvc repro signals)") from None


def _row_fields(rows: list[dict], column: str, train_folds) -> list[tuple]:
    """(ecg_id, record path, in training folds) per row, checking the fields this stage needs."""
    out, seen = [], {}
    for i, r in enumerate(rows):
        for key in ("ecg_id", "strat_fold", column):
            if key not in r:
                raise SignalError(f"reports row {i + 1} (ecg_id {r.get('ecg_id')}): field '{key}' missing")
        if r[column] in seen:
            raise SignalError(f"ecg_id {seen[r[column]]} and ecg_id {r['ecg_id']} both name {r[column]} in "
                              f"{column}: one signal cannot stand for two records")
        seen[r[column]] = r["ecg_id"]
        out.append((r["ecg_id"], r[column], r["strat_fold"] in train_folds))
    return out


def _reserve(path: Path) -> None:
    """Allocate the (sparse) .npy's blocks now: a full disk then fails here with ENOSPC, not with a SIGBUS that
    kills a worker writing into the memmap later."""
    if not hasattr(os, "posix_fallocate"):
        return
    fd = os.open(path, os.O_RDWR)
    try:
        os.posix_fallocate(fd, 0, os.fstat(fd).st_size)
    except OSError as e:
        if e.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):  # unsupported by the file system: skip
            raise
    finally:
        os.close(fd)


def default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def extract(rows: list[dict], root: str | Path, sampling_rate: int, train_folds, out_dir: str | Path = SIGNALS_DIR,
            workers: int | None = None, chunk_size: int | None = None, progress: bool = True) -> dict:
    """Read the records of `rows` (reports.jsonl order) into out_dir/signals.npy and write out_dir/stats.json.

    Rows need ecg_id, strat_fold and filename_lr/filename_hr (by sampling_rate). The folder is built under a
    temporary name and renamed at the end: an error leaves no signals.npy behind. Returns the stats dict.
    workers: processes (default: the CPUs this process may use); chunk_size: rows per task (default: about 8 tasks
    per worker, at most 64 rows, so that short runs still spread over all workers).
    """
    if sampling_rate not in SAMPLES:
        raise SignalError(f"sampling rate {sampling_rate} Hz: PTB-XL has {sorted(SAMPLES)}")
    if not rows:
        raise SignalError("no records to read: the reports file is empty")
    start = time.perf_counter()
    root, column, T = Path(root), filename_column(sampling_rate), SAMPLES[sampling_rate]
    train_folds = set(train_folds)
    fields = _row_fields(rows, column, train_folds)
    if not any(t for _, _, t in fields):
        raise SignalError(f"no record is in the training folds {sorted(train_folds)}: cannot compute the "
                          f"normalisation stats")
    workers = workers or default_workers()
    chunk_size = chunk_size or max(1, min(64, len(fields) // (8 * workers)))
    shape = (len(fields), len(LEADS), T)
    moments, fast = Moments(), 0
    with atomic_dir(out_dir) as tmp:
        out = np.lib.format.open_memmap(tmp / SIGNALS, mode="w+", dtype=np.float32, shape=shape)  # header + size
        del out  # the workers (or map, serially) fill it through their own memmaps
        _reserve(tmp / SIGNALS)
        tasks = [(root, tmp / SIGNALS, i, fields[i:i + chunk_size], sampling_rate)
                 for i in range(0, len(fields), chunk_size)]
        pool = ProcessPoolExecutor(workers) if workers > 1 else None
        try:
            with tqdm(total=len(fields), unit="rec", desc=f"signals {sampling_rate} Hz", disable=not progress) as bar:
                # in task order (as Pool.imap did): the merged moments, hence stats.json, stay bit-identical
                for n, m, f in _in_order(pool, tasks):
                    moments.merge(m)
                    fast += f
                    bar.update(n)
        finally:
            if pool:
                pool.shutdown(wait=True, cancel_futures=True)
        std = moments.std
        if (std == 0).any():
            flat = [LEADS[j] for j in np.flatnonzero(std == 0)]
            raise SignalError(f"lead(s) {flat} are constant over the training folds: std 0 cannot normalise")
        seconds = time.perf_counter() - start
        stats = {
            "mean": moments.mean.tolist(), "std": std.tolist(), "leads": list(LEADS), "units": "mV",
            "sampling_rate": sampling_rate, "n_records": len(fields), "n_train_records": moments.n // T,
            "train_folds": sorted(train_folds), "shape": list(shape), "dtype": "float32",
            "fast_path_records": fast, "wfdb_records": len(fields) - fast,
        }
        # no timings in the file: the same records give byte-identical artifacts (and DVC hashes)
        (tmp / STATS).write_text(json.dumps(stats, indent=2) + "\n", encoding="utf-8")
    return {**stats, "workers": workers, "seconds": round(seconds, 3), "records_per_s": round(len(fields) / seconds, 1)}
