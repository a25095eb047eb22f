"""What one fine-tuning epoch costs on the full PTB-XL: time a few training steps (encoder + linear head, BCE,
AdamW) at batch 64 on random 100 Hz data, and the C-index bootstrap at 2,000 test records, then extrapolate.

    .venv/bin/python bench/bench_finetune.py [--steps 10] [--encoder cnn1d]

Full PTB-XL: ~17,400 training-fold records (folds 1-8), ~2,200 each in the validation and test folds.
"""
import argparse
import time

import numpy as np
import torch

from ecgalign import finetune as ft
from ecgalign.models import build_model
from ecgalign.outcomes import c_index_resamples
from ecgalign.stats import bootstrap_counts

N_TRAIN, N_VAL, BATCH = 17_400, 2_200, 64


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--encoder", default="cnn1d")
    a = ap.parse_args()
    torch.set_num_threads(2)
    model = build_model(a.encoder, 256, 384, 128)
    net = ft.make_net("aligned", model, 5, 0)
    opt = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=1e-3)
    x, y = torch.randn(BATCH, 12, 1000), (torch.rand(BATCH, 5) < 0.3).float()
    net.train()
    times = []
    for _ in range(a.steps + 1):
        t0 = time.perf_counter()
        loss = ft.loss_fn("bce", net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    step = float(np.median(times[1:]))
    net.eval()
    t0 = time.perf_counter()
    with torch.no_grad():
        net(torch.randn(256, 12, 1000))
    infer = (time.perf_counter() - t0) / 256
    epoch = step * N_TRAIN / BATCH + infer * N_VAL
    print(f"{a.encoder}: {step:.3f} s a training step (batch {BATCH}), {infer * 1000:.2f} ms a record to predict; "
          f"one fine-tuning epoch of full PTB-XL ~{epoch / 60:.1f} min (aligned or random init; frozen: one "
          f"encoding pass of ~{(N_TRAIN + 2 * N_VAL) * infer / 60:.1f} min, then seconds)")
    g = np.random.default_rng(0)
    n = 2000
    t, e, r = g.exponential(size=n), g.random(n) < 0.5, g.normal(size=n)
    t0 = time.perf_counter()
    c_index_resamples(t, e, r, bootstrap_counts(n, 100))
    per = (time.perf_counter() - t0) / 100
    print(f"C-index bootstrap: {per * 1000:.1f} ms a resample at {n} test records, {per * 1000:.0f} s for 1,000")


if __name__ == "__main__":
    main()
