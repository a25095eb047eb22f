"""Arithmetic precision of the ECG encoder's forward passes: fp32, or bf16 autocast (train.precision,
finetune.precision; the encoding in ecg_embeddings and evaluate follows train.precision, so a model is embedded in the
precision it was trained in).

    fp32   everything in float32 (results byte-identical to runs made before the param existed)
    bf16   torch.autocast(dtype=bfloat16): convolutions and matrix products in bf16, accumulation, BatchNorm,
           softmax and the losses in float32 (the losses always get float32 inputs: `as_float`)
    auto   bf16 where the hardware computes it natively: a CUDA device that supports bf16, or a CPU with AMX
           (amx_bf16 tiles) or AVX-512-BF16 instructions, which oneDNN uses for bf16 convolutions; fp32 elsewhere
           (bf16 emulated on older CPUs is slower than fp32)

What precision a stage used is written to its metrics (`precision`, `precision_hardware`): on a machine without
native bf16 `auto` means fp32, so two machines can give different results from one params.yaml.
Measured on this project's 2-core CPUs: a cnn1d training step is 1.8x (AMD, AVX-512-BF16; bench/bench_training.py)
to 2.07x (Intel with AMX) faster in bf16, a full-data epoch 1.68x. Whether bf16 changes the results beyond seed noise
is the equivalence test of experiments-precision.yaml (docs/costs.md): the probes are equal within ±0.005, zero-shot
equivalence within ±0.01 is not shown at 5 seeds, so params.yaml keeps fp32.
"""
from __future__ import annotations

import torch

from .params import PRECISIONS


def cpu_bf16() -> str | None:
    """The CPU's native bf16 unit: 'amx_bf16', 'avx512_bf16', or None (bf16 would be emulated)."""
    if torch.cpu._is_amx_tile_supported():
        return "amx_bf16"
    if torch.cpu._is_avx512_bf16_supported():
        return "avx512_bf16"
    return None


def hardware(device: torch.device) -> str:
    """What computes bf16 natively on `device`: 'cuda', 'amx_bf16', 'avx512_bf16' or 'none'."""
    if device.type == "cuda":
        return "cuda" if torch.cuda.is_bf16_supported() else "none"
    return cpu_bf16() or "none"


def resolve(requested: str, device: torch.device) -> str:
    """'fp32' or 'bf16' for a requested precision (auto: bf16 where `hardware` is not 'none')."""
    if requested not in PRECISIONS:
        raise ValueError(f"precision {requested!r} is not one of {', '.join(PRECISIONS)}")
    if requested != "auto":
        return requested
    return "fp32" if hardware(device) == "none" else "bf16"


def autocast(device: torch.device, precision: str):
    """The forward pass's context: bf16 autocast on `device` for 'bf16', a no-op for 'fp32'."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def as_float(*tensors: torch.Tensor):
    """float32 copies of autocast outputs (a no-op for float32 tensors): losses and metrics in float32."""
    return tuple(t.float() for t in tensors)


def record(requested: str, device: torch.device) -> dict:
    """The metrics entries saying which precision ran and why."""
    return {"precision": resolve(requested, device), "precision_requested": requested,
            "precision_hardware": hardware(device)}
