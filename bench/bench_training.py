"""Training-step cost per encoder, and how close it is to the machine's limit.

    python bench/bench_training.py [--steps 20] [--records 2048] [--batch 64] [--threads 2] [--variants]

Prints, per encoder (cnn1d, xresnet1d, dual_attention, and "study": dual_attention + the reconstruction decoder):
- the multiply-adds of one training step (forward + backward, counted by torch.utils.flop_counter.FlopCounterMode:
  convolutions and matrix products, which are nearly all of the work; elementwise ops are not counted);
- the step time at batch 64 (min and median over the steps; batches read from a memory-mapped signals.npy, the
  training loop's path, and pre-loaded), the achieved GFLOP/s and its share of the CPU's peak: threads x clock x
  SIMD fp32 lanes x FMA units per core x 2 (an FMA is 2 FLOPs). The clock is read from /proc/cpuinfo, the SIMD width
  from the CPU flags (avx512f: 16 lanes, avx2: 8); the FMA units per core are assumed (--fma-units, default 2, as on
  current x86 server cores). A large fp32 matrix product on the same threads is printed for reference;
- the same step in bf16 autocast (train.precision: bf16), its speed-up over fp32 and its share of the fp32 peak and
  of the bf16 unit's peak (AMX: 1,024 FLOPs a cycle a core; AVX-512-BF16: twice the
  fp32 SIMD rate; the unit is the one train.precision: auto detects), and which precision auto picks here;
- the cost of the augmentations (all five on, and all but the crop, which shortens the batch) against none;
- on a GPU, when present, the same step time and GFLOP/s.
--variants also times what the ecosystem offers for CPU training against the eager baseline, on identical copies of
one model fed identical batches (so the losses must agree: the largest difference over the steps is printed):
oneDNN (mkldnn) off, 1 thread instead of 2, bf16 autocast, torch.compile (inductor), and batch sizes 32 and 128
(time per record).
--layout times train.threads 1 and 2 with OpenMP's default (spinning) and passive wait policy, a process each.
The bench runs under OMP_WAIT_POLICY=PASSIVE, as the train stage does, unless the environment sets it.

The machine is shared with other work: every timing is interleaved across the cases being compared (one step of
each in turn, so load hits all alike), and the minimum is the figure to quote (the median is printed beside it).
Random data (timing only); the memmap file is freshly written, so it is read from the page cache (warm).
"""
import argparse
import contextlib
import copy
import os
import re
import resource
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")   # as src/train_alignment.py (before torch loads); --layout compares

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from ecgalign.augment import augment, generator
from ecgalign.losses import alignment_objective
from ecgalign.models import XRESNET_DEFAULT, build_model
from ecgalign.precision import autocast, cpu_bf16, resolve
from ecgalign.training import Batches, text_ids

EPOCH_RECORDS = 17_000
ALL_ON = {"crop": 0.2, "scale": 0.2, "noise": 0.05, "wander": 0.1, "lead_dropout": 0.1}
NO_CROP = {**ALL_ON, "crop": 0.0}


def cpu_info() -> tuple[float, set, str, bool]:
    """(clock in GHz, CPU flags, model name, whether the clock was read) from /proc/cpuinfo."""
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    mhz = [float(m) for m in re.findall(r"^cpu MHz\s*:\s*([\d.]+)", text, re.M)]
    flags = set(re.search(r"^flags\s*:(.*)$", text, re.M).group(1).split()) if "flags" in text else set()
    model = re.search(r"^model name\s*:\s*(.*)$", text, re.M)
    return (max(mhz) / 1000 if mhz else 2.5), flags, (model.group(1) if model else "unknown CPU"), bool(mhz)


def cpu_peak(threads: int, fma_units: int) -> tuple[float, str]:
    """(peak fp32 GFLOP/s of `threads` cores, how it was found)."""
    ghz, flags, model, read = cpu_info()
    lanes, simd = (16, "AVX-512") if "avx512f" in flags else (8, "AVX2") if "avx2" in flags else (4, "SSE")
    peak = threads * ghz * lanes * fma_units * 2
    how = (f"{model}: {threads} threads x {ghz:.2f} GHz"
           f"{'' if read else ' (assumed: no cpu MHz in /proc/cpuinfo)'} x {lanes} fp32 lanes ({simd}) x {fma_units} "
           f"FMA units (assumed) x 2 = {peak:.0f} GFLOP/s")
    return peak, how


def bf16_peak(threads: int, fma_units: int) -> tuple[float | None, str]:
    """(peak bf16 GFLOP/s of `threads` cores on the CPU's bf16 unit, how it was found), for the unit that
    train.precision: auto detects (ecgalign.precision.cpu_bf16):
    AMX (amx_bf16): 1,024 FLOPs a cycle a core (one 16x32 by 32x16 bf16 tile product, TDPBF16PS, every 16 cycles);
    AVX-512-BF16 (avx512_bf16): VDPBF16PS, 16 fp32 lanes x 2 bf16 products each, per FMA unit: 64 x fma_units FLOPs;
    neither: None (bf16 is emulated; autocast then converts for fp32 kernels)."""
    ghz, _, model, _ = cpu_info()
    native = cpu_bf16()
    if native == "amx_bf16":
        per_cycle, unit = 1024, "AMX tiles (1,024 FLOPs a cycle a core)"
    elif native == "avx512_bf16":
        per_cycle, unit = 16 * 2 * 2 * fma_units, f"AVX-512-BF16 (16 lanes x 2 bf16 products x 2 x {fma_units} FMA units)"
    else:
        return None, f"{model}: no native bf16 unit (neither AMX nor AVX-512-BF16)"
    peak = threads * ghz * per_cycle
    return peak, f"{model}: {threads} threads x {ghz:.2f} GHz x {unit} = {peak:.0f} GFLOP/s"


def matmul_gflops(device="cpu", n=2048, reps=10) -> float:
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    best = float("inf")
    for _ in range(reps):
        sync(device)
        t0 = time.perf_counter()
        a @ b
        sync(device)
        best = min(best, time.perf_counter() - t0)
    return 2 * n ** 3 / best / 1e9


def sync(device):
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


class Stepper:
    """One model + AdamW doing training steps, optionally under a context (autocast, mkldnn off, threads) or
    compiled; `step` returns the loss."""

    def __init__(self, model, context=None, threads=None, compile_=False):
        self.model = model
        self.opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        self.context, self.threads = context, threads
        self.forward = torch.compile(model) if compile_ else model
        self.losses = []

    def step(self, x, t, i):
        before = torch.get_num_threads()
        if self.threads:
            torch.set_num_threads(self.threads)
        try:
            with self.context() if self.context else contextlib.nullcontext():
                recon = self.model.decoder is not None   # "study": + the reconstruction term
                out = self.forward(x, t, reconstruct=True) if recon else self.forward(x, t)
                loss = alignment_objective("infonce", out[0].float(), out[1].float(), self.model.scale(), i)
                if recon:
                    loss = loss + out[2].float().mean()
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()
        finally:
            torch.set_num_threads(before)
        self.losses.append(loss.item())
        return loss


def model_of(name: str, width: int = 4, T: int = 1000):
    """The benched model: cnn1d, xresnet1d, dual_attention (ecg.width `width`), or study (dual_attention + the
    reconstruction decoder, train.recon_weight > 0)."""
    encoder = "dual_attention" if name == "study" else name
    return build_model(encoder, 256, 384, 128, length=T, width=width, reconstruct=name == "study")


def step_flops(encoder, batch, T=1000, width: int = 4) -> int:
    """FLOPs (2 per multiply-add) of one training step: forward + backward, counted."""
    torch.manual_seed(0)
    s = Stepper(model_of(encoder, width, T))
    x, t, i = torch.randn(batch, 12, T), torch.randn(batch, 384), torch.arange(batch)
    with FlopCounterMode(display=False) as counter:
        s.step(x, t, i)
    return counter.get_total_flops()


def interleaved(cases: dict, batches, device="cpu", warmup=2) -> dict:
    """{name: step times}: each case's step function run on each batch, one case after the other per batch."""
    for b in batches[:warmup]:
        for fn in cases.values():
            fn(b)
    sync(device)
    times = {k: [] for k in cases}
    for b in batches[warmup:]:
        for name, fn in cases.items():
            t0 = time.perf_counter()
            fn(b)
            sync(device)
            times[name].append(time.perf_counter() - t0)
    return times


def summary(ts) -> str:
    return f"min {min(ts):.3f} s, median {float(np.median(ts)):.3f} s"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--records", type=int, default=2048)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--fma-units", type=int, default=2)
    ap.add_argument("--encoders", default="cnn1d,xresnet1d,dual_attention,study",
                    help="cnn1d, xresnet1d, dual_attention, study (dual_attention + reconstruction decoder)")
    ap.add_argument("--width", type=int, default=4, help="ecg.width of dual_attention and the decoder (default 4, "
                                                         "the study's)")
    ap.add_argument("--variants", action="store_true")
    ap.add_argument("--skip-base", action="store_true", help="only the variants")
    ap.add_argument("--layout", action="store_true", help="thread count x OpenMP wait policy, one process each")
    ap.add_argument("--rounds", type=int, default=2, help="--layout: processes per case")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.child:
        return child(args)
    if args.layout:
        return layout(args)
    peak, how = cpu_peak(args.threads, args.fma_units)
    print(f"CPU peak: {how}")
    print(f"CPU bf16 peak: {bf16_peak(args.threads, args.fma_units)[1]} (train.precision auto: "
          f"{resolve('auto', torch.device('cpu'))})")
    print(f"CPU fp32 2048x2048 matmul (MKL sgemm) on {args.threads} threads: {matmul_gflops():.0f} GFLOP/s, for reference")
    g = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "signals.npy"
        np.save(path, g.standard_normal((args.records, 12, 1000), dtype=np.float32))
        signals = np.load(path, mmap_mode="r")
        text = g.standard_normal((args.records, 384)).astype(np.float32)[g.integers(0, 200, args.records)]
        data = Batches(signals, text, text_ids(text), np.arange(args.records))
        batches = [g.choice(args.records, args.batch, replace=False) for _ in range(args.steps + 2)]
        t0 = time.perf_counter()
        for b in batches:
            data[b]
        print(f"one batch of {args.batch} read from the memmap (sorted fancy index): "
              f"{(time.perf_counter() - t0) / len(batches) * 1000:.2f} ms")
        for encoder in args.encoders.split(","):
            if not args.skip_base:
                bench_encoder(encoder, data, batches, args, peak)
            if args.variants:
                bench_variants(encoder, data, batches, args, peak)


def bench_encoder(encoder, data, batches, args, peak):
    name = {"xresnet1d": f"xresnet1d ({XRESNET_DEFAULT})", "dual_attention": f"dual_attention (width {args.width})",
            "study": f"study: dual_attention (width {args.width}) + decoder"}.get(encoder, encoder)
    flops = step_flops(encoder, args.batch, width=args.width)
    torch.manual_seed(0)
    model = model_of(encoder, args.width)
    steppers = {k: Stepper(copy.deepcopy(model)) for k in ("memmap", "preloaded", "augment", "augment_nocrop")}
    steppers["bf16"] = Stepper(copy.deepcopy(model), context=lambda: autocast(torch.device("cpu"), "bf16"))
    preloaded = {id(b): data[b] for b in batches}
    gen = generator(0, 1)

    def aug(cfg):
        return lambda b: steppers[f"augment{'' if cfg is ALL_ON else '_nocrop'}"].step(
            augment(preloaded[id(b)][0], cfg, gen), *preloaded[id(b)][1:])

    times = interleaved({"memmap": lambda b: steppers["memmap"].step(*data[b]),
                         "preloaded": lambda b: steppers["preloaded"].step(*preloaded[id(b)]),
                         "augment": aug(ALL_ON), "augment_nocrop": aug(NO_CROP),
                         "bf16": lambda b: steppers["bf16"].step(*preloaded[id(b)])}, batches)
    best = min(times["preloaded"])
    alone = []
    for b in batches:   # the augmentations by themselves, against the step they are part of
        t0 = time.perf_counter()
        augment(preloaded[id(b)][0], NO_CROP, gen)
        alone.append(time.perf_counter() - t0)
    n_params = sum(p.numel() for p in model.parameters())
    steps_per_epoch = EPOCH_RECORDS // args.batch
    print(f"{name}: {n_params / 1e6:.2f}M params; a training step at batch {args.batch} (forward + backward) is "
          f"{flops / 2 / 1e9:.2f} G multiply-adds ({flops / 1e9:.1f} GFLOP)")
    print(f"  step over {args.steps} steps: memmap {summary(times['memmap'])}; pre-loaded {summary(times['preloaded'])}"
          f" -> {flops / best / 1e9:.1f} GFLOP/s = {100 * flops / best / 1e9 / peak:.1f} % of the CPU peak")
    bf16 = min(times["bf16"])
    peak16, _ = bf16_peak(args.threads, args.fma_units)
    print(f"  bf16 autocast (train.precision: bf16), pre-loaded: {summary(times['bf16'])} -> {best / bf16:.2f}x the fp32"
          f" step, {flops / bf16 / 1e9:.1f} GFLOP/s = {100 * flops / bf16 / 1e9 / peak:.1f} % of the fp32 peak"
          + (f", {100 * flops / bf16 / 1e9 / peak16:.1f} % of the bf16 unit's" if peak16 else ", no native bf16 unit")
          + f"; loss after {len(steppers['bf16'].losses)} steps {steppers['bf16'].losses[-1]:.4f} vs fp32 "
          f"{steppers['preloaded'].losses[-1]:.4f}")
    print(f"  augmentations all on: {summary(times['augment'])} ({100 * (min(times['augment']) / best - 1):+.1f} % "
          f"vs none; the crop shortens the batch by 20 %); all but the crop: {summary(times['augment_nocrop'])} "
          f"({100 * (min(times['augment_nocrop']) / best - 1):+.1f} %); the ops by themselves (all but the crop): "
          f"min {1000 * min(alone):.1f} ms = {100 * min(alone) / best:.1f} % of a step")
    print(f"  epoch of {EPOCH_RECORDS} records ({steps_per_epoch} steps): {steps_per_epoch * min(times['memmap']) / 60:.1f}"
          f" min at the minimum step time; peak RSS so far "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    if torch.cuda.is_available():
        dev = torch.device("cuda")
        s = Stepper(copy.deepcopy(model).to(dev))
        on_gpu = {id(b): tuple(a.to(dev) for a in preloaded[id(b)]) for b in batches}
        ts = interleaved({"gpu": lambda b: s.step(*on_gpu[id(b)])}, batches, dev)["gpu"]
        print(f"  GPU {torch.cuda.get_device_name()}: {summary(ts)} -> {flops / min(ts) / 1e9:.0f} GFLOP/s "
              f"(fp32; a 4096x4096 fp32 matmul reaches {matmul_gflops(dev, 4096):.0f} GFLOP/s)")


def bench_variants(encoder, data, batches, args, peak):
    """Eager baseline vs the alternatives, interleaved, identical models and batches; batch size 32/128 apart."""
    torch.manual_seed(0)
    model = model_of(encoder, args.width)
    preloaded = {id(b): data[b] for b in batches}
    steppers = {"eager (baseline)": Stepper(copy.deepcopy(model)),
                "oneDNN off": Stepper(copy.deepcopy(model), context=lambda: torch.backends.mkldnn.flags(False)),
                "1 thread": Stepper(copy.deepcopy(model), threads=1),
                "bf16 autocast": Stepper(copy.deepcopy(model),
                                         context=lambda: torch.autocast("cpu", dtype=torch.bfloat16))}
    t0 = time.perf_counter()
    compiled = Stepper(copy.deepcopy(model), compile_=True)
    try:
        compiled.step(*preloaded[id(batches[0])])
        compiled.losses.clear()
        steppers["torch.compile"] = compiled
        steppers["torch.compile"].model.load_state_dict(model.state_dict())
        steppers["torch.compile"].opt = torch.optim.AdamW(steppers["torch.compile"].model.parameters(), lr=1e-3)
        print(f"{encoder}: torch.compile's first step (compilation) took {time.perf_counter() - t0:.0f} s")
    except Exception as e:  # no compiler, unsupported op: say so, keep the rest
        print(f"{encoder}: torch.compile failed ({type(e).__name__}: {str(e).splitlines()[0][:120]})")
    times = interleaved({k: (lambda b, s=s: s.step(*preloaded[id(b)])) for k, s in steppers.items()}, batches)
    base = steppers["eager (baseline)"].losses
    flops = step_flops(encoder, args.batch)
    for k, ts in times.items():
        diff = max(abs(a - b) for a, b in zip(steppers[k].losses, base))
        print(f"  {encoder} {k:18s} {summary(ts)} ({100 * (min(ts) / min(times['eager (baseline)']) - 1):+.1f} %), "
              f"{flops / min(ts) / 1e9:.1f} GFLOP/s; loss vs baseline over {len(base)} steps: max |diff| {diff:.2e}")
    for bs in (32, 128):
        sub = [g[:bs] if bs < args.batch else np.concatenate([g, (g + 1) % len(data)])[:bs] for g in batches]
        s = Stepper(copy.deepcopy(model))
        ts = interleaved({bs: lambda b: s.step(*data[b])}, sub)[bs]
        print(f"  {encoder} batch {bs:3d}: {summary(ts)} per step = {1000 * min(ts) / bs:.2f} ms per record "
              f"(batch {args.batch}: {1000 * min(times['eager (baseline)']) / args.batch:.2f} ms per record)")


def child(args):
    """--child: the eager step on pre-loaded random batches, timed; prints 'min <s> median <s>'."""
    torch.manual_seed(0)
    s = Stepper(model_of(args.encoders.split(",")[0], args.width))
    x, t, i = torch.randn(args.batch, 12, 1000), torch.randn(args.batch, 384), torch.arange(args.batch)
    ts = interleaved({"step": lambda b: s.step(x, t, i)}, list(range(args.steps + 2)))["step"]
    print(f"min {min(ts):.4f} median {float(np.median(ts)):.4f}")


def layout(args):
    """Thread layout: train.threads 1 or 2, with OpenMP's default (spinning) wait policy or OMP_WAIT_POLICY=PASSIVE,
    each in a fresh process (the policy is read when the OpenMP runtime starts), in alternating rounds."""
    import subprocess
    import sys
    cases = [(t, w) for t in (2, 1) for w in ("", "PASSIVE")]
    found = {c: [] for c in cases}
    for _ in range(args.rounds):
        for t, w in cases:
            env = {**os.environ, **({"OMP_WAIT_POLICY": w} if w else {})}
            out = subprocess.run([sys.executable, __file__, "--child", "--threads", str(t), "--steps", str(args.steps),
                                  "--encoders", args.encoders.split(",")[0], "--batch", str(args.batch)],
                                 env=env, capture_output=True, text=True, check=True).stdout
            found[(t, w)].append(float(re.search(r"min ([\d.]+)", out).group(1)))
    for (t, w), ts in found.items():
        print(f"  {args.encoders.split(',')[0]} {t} thread(s), OMP_WAIT_POLICY={w or 'default'}: min step "
              f"{min(ts):.3f} s over {args.rounds} processes x {args.steps} steps")


if __name__ == "__main__":
    main()
