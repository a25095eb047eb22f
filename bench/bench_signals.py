"""Records/s of the signals stage on ../shared/ptbxl-mini (1,000 real records at 100 Hz, 100 at 500 Hz): serial,
2 processes, and wfdb.rdsamp alone for comparison. Files are read once first so every run sees the same (warm) page
cache. The figures depend on what else the machine runs: compare lines of one run, not runs on different days.

    python bench/bench_signals.py [--root ../shared/ptbxl-mini] [--repeats 3]
"""
import argparse
import statistics
import tempfile
import time
from pathlib import Path

import wfdb

from ecgalign import ptbxl
from ecgalign.signals import extract


def rate(fn, n, repeats):
    """Median records/s of `repeats` runs of fn()."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return n / statistics.median(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=str(Path(__file__).resolve().parents[2] / "shared" / "ptbxl-mini"))
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    root = Path(args.root)
    db = ptbxl.read_database(root)
    for sampling_rate in (100, 500):
        col = ptbxl.filename_column(sampling_rate)
        db_rate = db[[(root / f"{r}.hea").is_file() for r in db[col]]]
        rows = db_rate[["ecg_id", "strat_fold", "filename_lr", "filename_hr"]].to_dict("records")
        records = [r[col] for r in rows]
        n = len(rows)
        for r in records:  # warm the page cache
            for f in ptbxl.record_files(r):
                (root / f).read_bytes()
        with tempfile.TemporaryDirectory() as tmp:
            def run(workers):
                return lambda: extract(rows, root, sampling_rate, range(1, 9), Path(tmp) / "signals",
                                       workers=workers, progress=False)
            serial = rate(run(1), n, args.repeats)
            parallel = rate(run(2), n, args.repeats)
        reference = rate(lambda: [wfdb.rdsamp(str(root / r)) for r in records], n, 1)
        print(f"signals stage, {n} records at {sampling_rate} Hz, median of {args.repeats} runs (warm page cache):")
        print(f"  serial (1 process)      {serial:8.0f} records/s")
        print(f"  parallel (2 processes)  {parallel:8.0f} records/s")
        print(f"  wfdb.rdsamp alone       {reference:8.0f} records/s (1 process, read only, no array written)")
        print(f"  speed-up over rdsamp: {serial / reference:.1f}x serial, {parallel / reference:.1f}x 2 processes")

if __name__ == "__main__":
    main()
