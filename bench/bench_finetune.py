"""What the finetune stage costs on the full PTB-XL: time a few training steps (encoder + linear head, BCE, AdamW),
head-only warm-up steps and predictions at batch 64 on random 100 Hz data, then extrapolate with the stage's own
protocol (finetune.epoch_batches: epochs of at least min_steps_per_epoch steps; BatchNorm re-estimation and the
validation pass every epoch; one run per lr of lr_grid; early stopping after `patience` epochs without improvement).
Also the C-index bootstrap at 2,000 test records.

    .venv/bin/python bench/bench_finetune.py [--steps 10] [--encoder cnn1d] [--ptbxl /tmp/ptb-xl]

With --ptbxl (a PTB-XL folder) the record counts are the task's labelled records per split, read from its tables;
otherwise the full release's superdiagnostic counts. A run's length is unknown before it runs (best epoch +
patience, at most max_epochs): the table prints the stage's cost for a few run lengths.
"""
import argparse
import ast
import time

import numpy as np
import torch

from ecgalign import finetune as ft
from ecgalign import params
from ecgalign.models import build_model
from ecgalign.outcomes import c_index_resamples
from ecgalign.stats import bootstrap_counts

# superdiagnostic, full PTB-XL 1.0.3 (labelled records of folds 1-8 / 9 / 10), measured with --ptbxl /tmp/ptb-xl
N_TRAIN, N_VAL, N_TEST = 17_111, 2_156, 2_163


def counts(root: str, task: str) -> tuple[int, int, int]:
    from ecgalign.labels import task_labels
    from ecgalign.ptbxl import read_database, read_statements

    db = read_database(root)
    _, _, keep = task_labels([ast.literal_eval(c) for c in db["scp_codes"]], read_statements(root), task)
    folds = db["strat_fold"].to_numpy()[keep]
    return int((folds <= 8).sum()), int((folds == 9).sum()), int((folds == 10).sum())


def timed(fn, steps: int) -> float:
    """Median seconds of fn() over `steps` calls after one warm-up call."""
    times = []
    for _ in range(steps + 1):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times[1:]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--encoder", default="cnn1d")
    ap.add_argument("--ptbxl", default="", help="a PTB-XL folder to count the task's labelled records in")
    ap.add_argument("--step-seconds", type=float, default=0.0,
                    help="extrapolate with this training-step time (e.g. one measured on an idle machine) instead")
    ap.add_argument("--predict-ms", type=float, default=0.0, help="... and this prediction time per record")
    a = ap.parse_args()
    torch.set_num_threads(2)
    f = params.load().finetune
    n_train, n_val, n_test = counts(a.ptbxl, f.task) if a.ptbxl else (N_TRAIN, N_VAL, N_TEST)
    batch = f.batch_size
    net = ft.make_net("aligned", build_model(a.encoder, 256, 384, 128), 5, 0)
    opt = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=1e-3)
    x, y = torch.randn(batch, 12, 1000), (torch.rand(batch, 5) < 0.3).float()
    net.train()

    def step(head_only=False):
        if head_only:
            with torch.no_grad():
                z = net.base.encode_ecg(x)
            out = net.head(z)
        else:
            out = net(x)
        loss = ft.loss_fn("bce", out, y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    t_step, t_head = timed(step, a.steps), timed(lambda: step(True), a.steps)
    net.eval()
    xe = torch.randn(256, 12, 1000)
    with torch.no_grad():
        t_pred = timed(lambda: net(xe), max(2, a.steps // 3)) / 256
    print(f"{a.encoder}, batch {batch}, 2 threads: {t_step:.3f} s a training step, {t_head:.3f} s a head-only "
          f"(warm-up) step, {t_pred * 1000:.2f} ms a record to predict")
    if a.step_seconds:   # the head-only step keeps its measured share of a full step
        t_step, t_head = a.step_seconds, a.step_seconds * t_head / t_step
    if a.predict_ms:
        t_pred = a.predict_ms / 1000
    if a.step_seconds or a.predict_ms:
        print(f"extrapolating with {t_step:.3f} s a training step, {t_head:.3f} s a head-only step, "
              f"{t_pred * 1000:.2f} ms a record to predict")
    print(f"records ({f.task}): {n_train:,} training, {n_val:,} validation, {n_test:,} test")

    def epoch(n, head_only=False):
        steps = len(ft.epoch_batches(n, batch, f.min_steps_per_epoch, 0, 1))
        return steps * (t_head if head_only else t_step) + t_pred * (min(n, f.bn_records) + n_val), steps

    def run(n, epochs):
        warm = min(epochs, f.head_warmup_epochs)
        return epoch(n, True)[0] * warm + epoch(n)[0] * (epochs - warm)

    fractions = f.label_fractions
    frozen = t_pred * (n_train + n_val + n_test)   # one encoding pass; the head's own epochs take seconds
    print(f"\nper epoch (min_steps_per_epoch {f.min_steps_per_epoch}, bn_records {f.bn_records}), aligned or random:")
    for fr in fractions:
        n = max(1, round(fr * n_train))
        s, steps = epoch(n)
        print(f"  {fr * 100:g} % ({n:,} records): {steps} steps, {s:.0f} s ({s / 60:.1f} min)")
    frozen_lrs = ft.lr_grid_of({"lr_grid": list(f.lr_grid)}, "frozen")
    print(f"  frozen: one encoding pass of {frozen / 60:.1f} min for every fraction, then seconds a run at each lr of "
          f"{frozen_lrs}")

    lengths = sorted({f.patience + 1, 10, f.max_epochs})
    print(f"\nthe stage (fractions {fractions}, 2 trainable inits x {len(f.lr_grid)} lr(s) of {f.lr_grid}; every run "
          f"lasts best epoch + patience {f.patience}, at most max_epochs {f.max_epochs}), and the training steps it "
          f"makes (multiply by an unloaded step time to compare machines):")
    for e in lengths:
        cost = {}
        for name, lrs, fracs in (("default", len(f.lr_grid), fractions), ("one lr", 1, fractions),
                                 ("one lr, no 100 %", 1, [fr for fr in fractions if fr < 1])):
            ns = [max(1, round(fr * n_train)) for fr in fracs]
            cost[name] = (frozen + sum(2 * lrs * run(n, e) for n in ns) if ns else frozen,
                          sum(2 * lrs * e * epoch(n)[1] for n in ns))
        print(f"  runs of {e:>2} epochs: " + "; ".join(f"{k} {v[0] / 60:.1f} min ({v[1]:,} steps)"
                                                   for k, v in cost.items()))

    g = np.random.default_rng(0)
    n = 2000
    t, ev, r = g.exponential(size=n), g.random(n) < 0.5, g.normal(size=n)
    t0 = time.perf_counter()
    c_index_resamples(t, ev, r, bootstrap_counts(n, 100))
    per = (time.perf_counter() - t0) / 100
    print(f"\nC-index bootstrap: {per * 1000:.1f} ms a resample at {n} test records, {per * 1000:.0f} s for 1,000")


if __name__ == "__main__":
    main()
