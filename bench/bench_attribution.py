"""Time a printout coloured by integrated gradients (32 steps, batches of 16) on 2 CPU threads, at 100 Hz and at
500 Hz, with the peak memory of the process. Target: < 10 s a plot.

    python bench/bench_attribution.py
"""
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from ecgalign import synthetic
from ecgalign.attribution import integrated_gradients
from ecgalign.ecgplot import plot_ecg
from ecgalign.models import build_model


def main() -> None:
    torch.set_num_threads(2)
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    torch.manual_seed(0)
    out = Path(tempfile.mkdtemp())
    for encoder in ("cnn1d", "xresnet1d"):
        model = build_model(encoder, 256, 384, 256).eval()
        key = np.random.default_rng(0).standard_normal(256).astype(np.float32)
        for fs in (100, 500):
            rng = np.random.default_rng([0, 0, 1])
            x = synthetic.synthesize(synthetic.sample_codes(rng), rng, fs)[0].T.astype(np.float32)
            integrated_gradients(model, x, key, steps=2, batch_size=2)           # warm-up (imports, allocator)
            t0 = time.perf_counter()
            attr, info = integrated_gradients(model, x, key, steps=32, batch_size=16)
            t1 = time.perf_counter()
            plot_ecg(x, fs, out / f"{encoder}_{fs}.png", title="bench", attribution=attr, attribution_label="IG")
            t2 = time.perf_counter()
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(f"{encoder:<9} {fs} Hz ({x.shape[1]} samples): IG {t1 - t0:.2f} s + plot {t2 - t1:.2f} s = "
                  f"{t2 - t0:.2f} s (target < 10 s); |delta| {abs(info['delta']):.1e}; peak RSS so far {peak:.0f} MB")


if __name__ == "__main__":
    main()
