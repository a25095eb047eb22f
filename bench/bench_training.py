"""Training-step cost per encoder on 2 CPU threads: batch 64 read from a memory-mapped signals.npy (the training
loop's path: one sorted fancy-indexed read per batch) vs the same batches pre-loaded as tensors; the extrapolated
epoch time on PTB-XL's ~17,000 training records at 100 Hz; peak memory.

    python bench/bench_training.py [--steps 20] [--records 2048]

Random data (timing only). The memmap file is freshly written, so it sits in the page cache: the figures are for a
warm cache (a first epoch on a cold disk adds the file's read once: ~0.8 GB at 100 Hz).
"""
import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from ecgalign.losses import alignment_objective
from ecgalign.models import XRESNET_DEFAULT, build_model
from ecgalign.training import Batches, text_ids

EPOCH_RECORDS = 17_000


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--records", type=int, default=2048)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--encoders", default="cnn1d,xresnet1d")
    args = ap.parse_args()
    torch.set_num_threads(2)
    g = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "signals.npy"
        np.save(path, g.standard_normal((args.records, 12, 1000), dtype=np.float32))
        signals = np.load(path, mmap_mode="r")
        text = g.standard_normal((args.records, 384)).astype(np.float32)[g.integers(0, 200, args.records)]
        data = Batches(signals, text, text_ids(text), np.arange(args.records))
        batches = [g.choice(args.records, args.batch, replace=False) for _ in range(args.steps + 2)]
        preloaded = [data[b] for b in batches]
        t0 = time.perf_counter()
        for b in batches:
            data[b]
        read_ms = (time.perf_counter() - t0) / len(batches) * 1000
        print(f"one batch of {args.batch} read from the memmap (sorted fancy index): {read_ms:.2f} ms")
        for encoder in args.encoders.split(","):
            bench_encoder(encoder, data, batches, preloaded, args)


def bench_encoder(encoder, data, batches, preloaded, args):
    torch.manual_seed(0)
    model = build_model(encoder, 256, 384, 128)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)

    def step(x, t, i):
        e_ecg, e_text = model(x, t)
        loss = alignment_objective("infonce", e_ecg, e_text, model.scale(), i)
        opt.zero_grad()
        loss.backward()
        opt.step()

    for b in preloaded[:2]:  # warm-up
        step(*b)
    times = {"memmap": [], "preloaded": []}
    for b, pre in zip(batches[2:], preloaded[2:]):  # interleaved, so machine load hits both alike
        t0 = time.perf_counter()
        step(*data[b])
        times["memmap"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        step(*pre)
        times["preloaded"].append(time.perf_counter() - t0)
    med = {k: float(np.median(v)) for k, v in times.items()}
    steps_per_epoch = EPOCH_RECORDS // args.batch
    name = encoder if encoder == "cnn1d" else f"{encoder} ({XRESNET_DEFAULT})"
    n_params = sum(p.numel() for p in model.parameters())
    print(f"{name}: {n_params / 1e6:.2f}M params; median of {args.steps} steps at batch {args.batch}: "
          f"memmap {med['memmap']:.3f} s, pre-loaded {med['preloaded']:.3f} s, ratio "
          f"{med['memmap'] / med['preloaded']:.3f}; epoch of {EPOCH_RECORDS} records ({steps_per_epoch} steps, "
          f"extrapolated) {steps_per_epoch * med['memmap'] / 60:.1f} min; peak RSS so far "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
