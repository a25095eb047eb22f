"""Seconds to generate the synthetic PTB-XL (default: 2,000 records at 100 Hz, the pipeline's default dataset), with
the generator's own WFDB writer against wfdb.wrsamp for scale. Wall time depends on what else the machine runs; CPU
time (process_time) is printed beside it.

    python bench/bench_synthetic.py [--records 2000] [--sampling-rate 100] [--wrsamp 50]
"""
import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import wfdb

from ecgalign import ptbxl, synthetic


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=2000)
    ap.add_argument("--sampling-rate", type=int, default=100, choices=(100, 500))
    ap.add_argument("--wrsamp", type=int, default=50, help="records written with each writer for the comparison")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        wall, cpu = time.perf_counter(), time.process_time()
        stats = synthetic.generate(Path(tmp) / "ds", args.records, seed=0, sampling_rate=args.sampling_rate)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        print(f"generate: {args.records} records at {args.sampling_rate} Hz in {wall:.2f} s wall "
              f"({cpu:.2f} s CPU): {args.records / wall:.0f} records/s wall, {args.records / cpu:.0f} records/s CPU")
        print(f"codes: {stats['code_counts']}")

        n = ptbxl.SAMPLES[args.sampling_rate]
        x = np.random.default_rng(0).normal(0, 1, (n, 12))
        out = Path(tmp) / "writers"
        out.mkdir()
        start = time.perf_counter()
        for i in range(args.wrsamp):
            synthetic.write_record(out / f"{i:05d}_a", x, args.sampling_rate)
        ours = (time.perf_counter() - start) / args.wrsamp
        start = time.perf_counter()
        for i in range(args.wrsamp):
            wfdb.wrsamp(f"{i:05d}_b", fs=args.sampling_rate, units=["mV"] * 12, sig_name=list(ptbxl.LEADS),
                        p_signal=x.copy(), fmt=["16"] * 12, adc_gain=[1000] * 12, baseline=[0] * 12,
                        write_dir=str(out))
        theirs = (time.perf_counter() - start) / args.wrsamp
        print(f"write one record: synthetic.write_record {ours * 1000:.2f} ms, wfdb.wrsamp {theirs * 1000:.2f} ms")


if __name__ == "__main__":
    main()
