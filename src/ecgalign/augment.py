"""ECG augmentations of training batches (params.yaml `augment:`), on the fly, on the batch's device.

Each op has one strength; 0 turns it off (and the batch is returned untouched, bit for bit, when all are 0):
- `scale`: amplitude scaling, every record times a factor drawn uniformly in [1 - scale, 1 + scale] (all leads
  alike, so the ratios between leads, hence the electrical axis, stay);
- `wander`: baseline wander, per record and lead a sine of amplitude uniform in [0, wander] mV, 0.5-5 cycles over
  the record (0.05-0.5 Hz on PTB-XL's 10 s records: breathing and electrode drift), a random phase per lead;
- `noise`: additive Gaussian noise of standard deviation `noise` mV on every sample;
- `lead_dropout`: each lead of each record, with probability `lead_dropout`, replaced by its training-fold mean
  (0 after the model's normalisation: the lead carries nothing);
- `crop`: random time crop: each record keeps a window of round((1 - crop) * T) samples at a random offset (a random
  shift of a shorter view); the batch becomes that long. Both encoders end in global pooling over time, so they take
  any length; validation and embedding see whole records.
The ops run in this order (crop last, so that the wander's cycles are counted over the whole record).

Randomness comes from a torch.Generator seeded per (seed, epoch, rank) (`generator`), never from the global RNGs: the
same seed gives the same augmented batches, a resumed run re-seeds at its next epoch exactly as an uninterrupted one
does (nothing to checkpoint), and augmentations off leave every other random draw of training unchanged.
"""
from __future__ import annotations

import math

import numpy as np
import torch

FIELDS = ("crop", "scale", "noise", "wander", "lead_dropout")
WANDER_CYCLES = (0.5, 5.0)   # cycles of baseline wander over one record


def check(cfg: dict | None) -> dict:
    """The augmentation settings as a full dict of floats (missing ops off); unknown names or values out of
    range raise ValueError."""
    cfg = dict(cfg or {})
    unknown = sorted(set(cfg) - set(FIELDS))
    if unknown:
        raise ValueError(f"unknown augmentation(s) {unknown}; known: {', '.join(FIELDS)}")
    out = {k: float(cfg.get(k, 0.0)) for k in FIELDS}
    for k, v in out.items():
        high = 1.0 if k in ("crop", "scale", "lead_dropout") else math.inf
        if not 0.0 <= v < high:
            raise ValueError(f"augment.{k} = {v} is outside [0, {high})")
    return out


def active(cfg: dict | None) -> bool:
    return any(v > 0 for v in check(cfg).values())


def generator(seed: int, epoch: int, rank: int = 0, device="cpu") -> torch.Generator:
    """The augmentations' generator for one epoch on one process: seeded from (seed, epoch, rank)."""
    state = np.random.SeedSequence([seed, epoch, rank]).generate_state(2, dtype=np.uint32)
    return torch.Generator(device=device).manual_seed(int(state[0]) << 31 | int(state[1]) >> 1)


def augment(x: torch.Tensor, cfg: dict, gen: torch.Generator, fill: torch.Tensor | None = None) -> torch.Tensor:
    """x [B, leads, T] raw mV, augmented by the ops of `cfg` (see the module docstring) with draws from `gen`; a new
    tensor (x itself when every op is off). fill [leads]: what lead dropout writes (default 0 mV)."""
    cfg = check(cfg)
    if not any(cfg.values()):
        return x
    B, L, T = x.shape
    dev, dt = x.device, x.dtype

    def uniform(*shape):
        return torch.rand(*shape, generator=gen, device=dev, dtype=dt)

    if cfg["scale"]:
        x = x * (1.0 + cfg["scale"] * (2.0 * uniform(B, 1, 1) - 1.0))
    if cfg["wander"]:
        low, high = WANDER_CYCLES
        cycles = low + (high - low) * uniform(B, 1, 1)
        phase = 2 * math.pi * uniform(B, L, 1)
        t = torch.arange(T, device=dev, dtype=dt) / T
        x = x + cfg["wander"] * uniform(B, L, 1) * torch.sin(2 * math.pi * cycles * t + phase)
    if cfg["noise"]:
        x = x + cfg["noise"] * torch.randn(B, L, T, generator=gen, device=dev, dtype=dt)
    if cfg["lead_dropout"]:
        drop = uniform(B, L, 1) < cfg["lead_dropout"]
        value = torch.zeros(L, device=dev, dtype=dt) if fill is None else torch.as_tensor(fill, dtype=dt).to(dev)
        x = torch.where(drop, value[None, :, None], x)
    if cfg["crop"]:
        n = max(1, round((1.0 - cfg["crop"]) * T))
        start = torch.randint(0, T - n + 1, (B,), generator=gen, device=dev)
        index = (start[:, None] + torch.arange(n, device=dev))[:, None, :].expand(B, L, n)
        x = x.gather(2, index)
    return x
