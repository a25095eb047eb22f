"""Does the aligned encoder make a better ECG model? Fine-tuning on PTB-XL labels and on a user's own outcomes,
each from three initialisations trained under one protocol:

    aligned   the aligned ECG encoder + a new linear head on z_ecg, all fine-tuned (for a supervised control
              checkpoint, train.loss = supervised: its encoder, in the same place)
    frozen    the aligned encoder frozen (eval mode, z_ecg computed once), the head alone trained
    random    the same architecture from a random initialisation, all trained

Classification: the benchmark task `task` (labels.TASKS), BCE, on a stratified subsample (`label_fractions`, drawn
with `seed`) of the label pool (label_pool: the labelled training-fold records); test-fold macro AUC with a bootstrap
interval, and the gain of pretraining (aligned - random, frozen - random) with a paired bootstrap interval (the same
resamples). Outcomes (outcomes.py): a Cox head (Breslow ties; C-index) or a binary head (BCE; AUC), same three inits.

The protocol, the same for every init and fraction (the docs' fine-tuning page says why):
- an epoch is as many whole seeded passes over the training subsample as it takes to make at least
  `min_steps_per_epoch` optimiser steps (one pass when the subsample is large), so 16 labelled records get as many
  updates an epoch as 1,600;
- early stopping: training stops when the validation figure (macro AUC / C-index) has not improved for `patience`
  epochs, or after `max_epochs`; the weights of the best epoch are kept;
- every learning rate of the init's grid (AdamW, constant; `lr_grid`, and for the head alone on cached features,
  whose runs take seconds, `lr_grid` times FROZEN_LR_FACTORS) is run; the one with the best validation figure is chosen (per init,
  task and fraction; the first of equals), and the test figure reported is that run's at its best epoch;
- `head_init: probe` (linear probe, then fine-tune): every trainable init starts from the converged linear probe
  on its own frozen features, fitted and chosen exactly as the `frozen` init's (head only, over the frozen grid,
  on validation): the aligned init from the frozen init's head itself, the random init from a probe on the random
  encoder's features (BatchNorm estimated on the pool first). The probe is the fine-tuning run's epoch 0, a
  candidate for its best epoch, so a run that fine-tuning does not improve keeps its probe;
  `head_init: zero` (the earlier protocol): the head starts at zero and the first `head_warmup_epochs` epochs train
  it alone on the encoder's eval-mode features (with a zero head the encoder gets no gradient: dL/dz = W^T dL/dout);
- `capped` (per run, in the metrics): the best epoch was the last one max_epochs allowed, so a longer budget might
  have helped it;
- before every evaluation the encoder's BatchNorm statistics are re-estimated with the current weights on up to
  `bn_records` signals of the label pool (torch.optim.swa_utils.update_bn; signals only, no labels: at 1 % the 16
  labelled records alone would give noisy statistics): a random init at 16 records would otherwise be evaluated with
  running statistics that saw a handful of momentum updates.

The risk model (a Cox head on a user's outcomes) has two options of the study's: `event_batches` stratifies every
batch by event (event_batches; the Cox partial likelihood needs an event in the batch) and `batch_dropout` drops
the same features of z for every record of a batch (BatchDropout); both off by default, unused by classification.

The order of batches comes from (seed, epoch, pass) permutations split across ranks like a DistributedSampler (one
replica on one process, N under torchrun: `batch_size` is the global batch). Resume: after every epoch
data/finetune_state/last.pt holds the finished runs' results and the current run's model, optimiser, RNG states,
history and best weights, tagged with a hash of the config and inputs; a killed stage re-run with the same hash
skips the finished runs and continues the current one after its last epoch, ending with exactly the results of an
uninterrupted run.
"""
from __future__ import annotations

import copy
import hashlib
import json
import os
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

from . import artifacts as art, stats
from .resamples import add_interval
from .models import AlignmentModel, encode_all, unwrap
from .outcomes import c_index, c_index_resamples, cox_loss
from .precision import autocast, resolve as resolve_precision
from .training import distributed, load_resume, resolve_device, rng_state, seed_everything, set_rng_state

INITS = ("aligned", "frozen", "random")
CONFIG_KEYS = ("task", "label_fractions", "max_epochs", "patience", "min_steps_per_epoch", "head_warmup_epochs",
               "bn_records", "batch_size", "lr_grid", "weight_decay", "seed", "device", "train_folds", "val_folds",
               "test_folds", "precision", "event_batches", "batch_dropout", "head_init")
# added later: as before unless given
OPTIONAL_KEYS = {"event_batches": False, "batch_dropout": 0.0, "head_init": "zero"}
# The frozen init trains a linear head on z_ecg computed once, so a run takes seconds; at the encoder's learning rate
# the head alone was still improving at max_epochs 10 in 21 of the first full-data grid's 27 frozen runs. It runs at
# every lr of lr_grid times each of these factors.
FROZEN_LR_FACTORS = (1, 10, 100)
# the source files whose code decides a fine-tuning run's result: part of the resume key (fingerprint)
CODE = tuple(Path(__file__).with_name(f"{m}.py") for m in ("finetune", "models", "outcomes", "precision", "training"))


def config_from_params(p) -> dict:
    """The flat fine-tuning config from validated params (finetune.*, train.device, split.*); train_folds is the
    label pool (split.label_folds: the training folds minus split.pretrain_folds under the disjoint protocol)."""
    f = p.finetune
    return {"task": f.task, "label_fractions": list(f.label_fractions), "max_epochs": f.max_epochs,
            "patience": f.patience, "min_steps_per_epoch": f.min_steps_per_epoch,
            "head_warmup_epochs": f.head_warmup_epochs, "bn_records": f.bn_records, "batch_size": f.batch_size,
            "lr_grid": list(f.lr_grid), "weight_decay": f.weight_decay, "seed": f.seed,
            "event_batches": f.event_batches, "batch_dropout": f.batch_dropout, "head_init": f.head_init,
            "device": p.train.device, "precision": f.precision, "train_folds": p.split.label_folds,
            "val_folds": list(p.split.val_folds), "test_folds": list(p.split.test_folds)}


def pct_name(fraction: float) -> str:
    """0.01 -> 'f1', 0.1 -> 'f10', 1.0 -> 'f100', 0.005 -> 'f0p5': the fraction's tag in metric keys."""
    return "f" + f"{fraction * 100:g}".replace(".", "p")


# --- data ---------------------------------------------------------------------------------------------------------

def subsample(y: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Positions (sorted) of round(fraction * N) rows of the N x C label matrix y, stratified by label set: every
    label combination keeps its share (largest remainders), and each class with a positive keeps at least one while
    room allows. Each combination's rows are taken in one seeded order, so smaller fractions are (nearly) subsets
    of larger ones."""
    n = len(y)
    k = min(n, max(1, int(round(fraction * n))))
    if k == n:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    keys = np.unique(np.asarray(y, dtype=bool), axis=0, return_inverse=True)[1].reshape(-1)
    groups = [rng.permutation(np.flatnonzero(keys == g)) for g in range(keys.max() + 1)]
    share = np.array([len(g) for g in groups]) * k / n
    take = np.floor(share).astype(int)
    for g in np.argsort(-(share - take), kind="stable")[: k - take.sum()]:
        take[g] += 1
    chosen = [g[:t] for g, t in zip(groups, take)]
    picked = np.concatenate(chosen)
    for c in np.flatnonzero(np.asarray(y, bool).any(axis=0)):   # a class with no positive cannot be learnt at all
        if not y[picked, c].any():
            donor = max(range(len(groups)), key=lambda g: take[g])
            candidates = [g for g in range(len(groups)) if y[groups[g][0], c]]
            if take[donor] > 1 and candidates:
                take[donor] -= 1
                take[candidates[0]] += 1
                picked = np.concatenate([g[:t] for g, t in zip(groups, take)])
    return np.sort(picked)


def fold_rows(folds, wanted, among=None) -> np.ndarray:
    """Row indices whose strat_fold is in `wanted` (restricted to the rows `among`, if given), ascending."""
    rows = np.flatnonzero(np.isin(np.asarray(folds), list(wanted)))
    return rows if among is None else np.intersect1d(rows, among)


def label_pool(folds, labelled: np.ndarray, cfg: dict) -> np.ndarray:
    """The rows the label fractions are drawn from: the labelled records of the training folds."""
    return fold_rows(folds, cfg["train_folds"], labelled)


def classification_tasks(y: np.ndarray, keep: np.ndarray, folds, cfg: dict) -> dict:
    """One BCE task per label fraction: a stratified subsample (drawn with cfg["seed"]) of the label pool; the whole
    labelled validation and test folds."""
    labelled = np.flatnonzero(keep)
    train = label_pool(folds, labelled, cfg)
    val, test = (fold_rows(folds, cfg[k], labelled) for k in ("val_folds", "test_folds"))
    for name, rows in (("train_folds", train), ("val_folds", val), ("test_folds", test)):
        if len(rows) < 2:
            raise ValueError(f"split.{name} = {cfg[name]}: {len(rows)} record(s) with a {cfg['task']} label; "
                             f"need at least 2")
    target = np.asarray(y, dtype=np.float32)
    return {pct_name(f): {"kind": "bce", "target": target, "prefix": "finetune", "tag": pct_name(f),
                          "metric": "auc_macro", "fraction": f, "val": val, "test": test, "pool": train,
                          "train": train[subsample(y[train], f, cfg["seed"])]}
            for f in cfg["label_fractions"]}


def outcome_task(oc, folds, cfg: dict, source: str) -> dict:
    """The task of a validated outcome table (outcomes.Outcomes), split by strat_fold; OutcomeError when a split
    has no event (survival) or only one label value (binary)."""
    from .outcomes import OutcomeError

    rows = {k: fold_rows(folds, cfg[k + "_folds"], oc.rows) for k in ("train", "val", "test")}
    target = np.zeros((len(folds), oc.target.shape[1]), dtype=np.float32)
    target[oc.rows] = oc.target
    for split, r in rows.items():
        values = set(target[r, -1].tolist())
        if (oc.kind == "survival" and 1.0 not in values) or (oc.kind == "binary" and len(values) < 2):
            raise OutcomeError(f"{source}: the {len(r)} record(s) of split.{split}_folds = {cfg[split + '_folds']} "
                               f"have {'no event' if oc.kind == 'survival' else 'one label value only'}: the "
                               f"{'C-index' if oc.kind == 'survival' else 'AUC'} is undefined; bring more records")
    return {"outcome": {"kind": "cox" if oc.kind == "survival" else "bce", "target": target, "prefix": "outcome",
                        "tag": "", "metric": "c_index" if oc.kind == "survival" else "auc", "pool": rows["train"],
                        **rows}}


class BatchDropout(torch.nn.Module):
    """Dropout whose mask is drawn once per batch and shared by every record in it (the study's batch-wise dropout
    for the risk model): a Cox loss compares risk scores within a batch, and a per-record mask would add noise to
    exactly those comparisons. Features are scaled by 1 / (1 - p) in training, untouched in eval mode."""

    def __init__(self, p: float):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"batch dropout p = {p} must lie in [0, 1)")
        self.p = p

    def forward(self, z):
        if not self.training or self.p == 0:
            return z
        keep = (torch.rand(1, *z.shape[1:], device=z.device) >= self.p).to(z.dtype)
        return z * keep / (1.0 - self.p)


def head_on(head: torch.nn.Linear, dropout: float) -> torch.nn.Module:
    """The head, behind a batch-wise dropout of its input when dropout > 0."""
    return torch.nn.Sequential(BatchDropout(dropout), head) if dropout else head


class Net(torch.nn.Module):
    """An ECG encoder (the aligned one or a random one; the AlignmentModel's normalisation and encode_ecg) and a
    linear head on z_ecg (head_on: with batch-wise dropout when asked). The alignment heads are kept but frozen (DDP
    needs every trained parameter used)."""

    def __init__(self, base: AlignmentModel, head: torch.nn.Module):
        super().__init__()
        self.base, self.head = base, head
        for module in (base.ecg_proj, base.text_proj, base.decoder):
            if module is not None:   # a supervised control has no text head; only recon_weight > 0 has a decoder
                module.requires_grad_(False)
        base.logit_scale.requires_grad_(False)

    def forward(self, x):
        return self.head(self.base.encode_ecg(x))


def read_rows(array, rows: np.ndarray) -> torch.Tensor:
    """One sorted fancy-indexed read of `rows` (a memmap is fine), as float32."""
    return torch.from_numpy(np.ascontiguousarray(array[np.asarray(rows)], dtype=np.float32))


@torch.no_grad()
def predict(net, inputs, rows: np.ndarray, batch_size: int, device, precision: str = "fp32") -> np.ndarray:
    """Outputs of `net` (eval mode) for `rows` of `inputs`, in row order, in `precision` (resolved: fp32 | bf16)."""
    net = unwrap(net)
    was = net.training
    net.eval()
    out = []
    for start in range(0, len(rows), batch_size):
        with autocast(device, precision):
            out.append(net(read_rows(inputs, rows[start:start + batch_size]).to(device)).float().cpu())
    net.train(was)
    return torch.cat(out).numpy() if out else np.zeros((0, 0), dtype=np.float32)


# --- figures of merit ---------------------------------------------------------------------------------------------

def score(kind: str, truth: np.ndarray, out: np.ndarray) -> float:
    """Macro AUC ("bce": N x C labels) or Harrell's C-index ("cox": N x 2 time, event; risk = out[:, 0])."""
    if kind == "cox":
        return c_index(truth[:, 0], truth[:, 1], out[:, 0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(np.nanmean(stats.auc_columns(truth > 0.5, out)[0]))


def resampled(kind: str, truth: np.ndarray, out: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The figure of merit under each bootstrap resample (B values; NaN where undefined)."""
    if kind == "cox":
        return c_index_resamples(truth[:, 0], truth[:, 1], out[:, 0], counts)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(stats.auc_columns(truth > 0.5, out, counts), axis=1)


def loss_fn(kind: str, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    if kind == "cox":
        return cox_loss(out[:, 0], target[:, 0], target[:, 1])
    return F.binary_cross_entropy_with_logits(out, target)


# --- one run: an init trained on one set of rows at one learning rate ---------------------------------------------

def epoch_batches(n: int, batch_size: int, min_steps: int, seed: int, epoch: int, rank: int = 0,
                  world: int = 1) -> list[np.ndarray]:
    """This rank's batches (positions into the n training rows) of `epoch`: whole passes over the n rows, each a
    fresh (seed, epoch, pass) permutation padded and split across ranks as DistributedSampler does (full batches
    of batch_size // world; one short batch when a rank's share is smaller), as many passes as it takes to make at
    least `min_steps` steps."""
    per_rank = max(1, batch_size // world)
    batches: list[np.ndarray] = []
    for p in range(max(1, min_steps)):
        perm = np.resize(np.random.default_rng([seed, epoch, p]).permutation(n), -(-n // world) * world)
        mine = perm[rank::world]
        k = len(mine) // per_rank if len(mine) >= per_rank else 1
        batches += [mine[i * per_rank:(i + 1) * per_rank] for i in range(k)]
        if len(batches) >= min_steps:
            break
    return batches


def event_batches(event: np.ndarray, batch_size: int, min_steps: int, seed: int, epoch: int, rank: int = 0,
                  world: int = 1) -> list[np.ndarray]:
    """epoch_batches for a Cox loss, stratified by event (finetune.event_batches): each pass splits a fresh
    (seed, epoch, pass) permutation of the events and one of the censored records round-robin over
    n // batch_size batches, so every batch holds its share of events (>= 1 whenever there are at least as many
    events as batches; with fewer, the events are cycled so that every batch still holds one, some twice an epoch).
    The Cox partial likelihood of a batch without an event is undefined (its loss is 0: nothing learnt). Every
    record is in one batch a pass; batch sizes differ by at most one (n / (n // batch_size): batch_size to
    2 x batch_size - 1 records), split across ranks (rank::world) under DDP."""
    event = np.asarray(event, bool)
    events, censored = np.flatnonzero(event), np.flatnonzero(~event)
    k = max(1, len(event) // batch_size)
    batches: list[np.ndarray] = []
    for p in range(max(1, min_steps)):
        g = np.random.default_rng([seed, epoch, p, 1])
        ev, ce = g.permutation(events), g.permutation(censored)
        if 0 < len(ev) < k:
            ev = np.resize(ev, k)
        order = np.concatenate([ev, ce])   # dealt round-robin: events first, so each batch gets its share
        batches += [np.sort(order[b::k])[rank::world] for b in range(k)]
        if len(batches) >= min_steps:
            break
    return batches


def best_record(history: list[dict]) -> dict:
    """The epoch with the highest validation figure (the first of equals; NaN counts as worst)."""
    return max(history, key=lambda r: -np.inf if np.isnan(r["val"]) else r["val"])


def stopped(history: list[dict], patience: int, max_epochs: int) -> bool:
    """Early stopping: max_epochs trained, or `patience` epochs since the best one (epoch 0, the starting point of
    a run that starts from a probe, counts as a candidate, not as a trained epoch)."""
    last = history[-1]["epoch"] if history else 0
    return last >= max_epochs or (bool(history) and last - best_record(history)["epoch"] >= patience)


def recalibrate_bn(model: torch.nn.Module, inputs, rows: np.ndarray, device, batch_size: int = 256) -> None:
    """Re-estimate every BatchNorm's running statistics from scratch on `rows` of `inputs` with the current weights
    (torch.optim.swa_utils.update_bn: train-mode forward passes without gradient, a cumulative average over the
    batches); nothing without BatchNorm or rows."""
    if len(rows) == 0 or not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        return
    batches = (read_rows(inputs, rows[s:s + batch_size]) for s in range(0, len(rows), batch_size))
    with torch.no_grad():
        torch.optim.swa_utils.update_bn(batches, model, device)


def bn_rows(pool: np.ndarray, n: int, seed: int) -> np.ndarray:
    """The rows BatchNorm is re-estimated on: the whole pool (the label pool's rows: signals, no labels), or a
    seeded sample of n of them (sorted)."""
    if len(pool) <= n:
        return np.asarray(pool)
    return np.sort(np.random.default_rng([seed, 1]).choice(pool, n, replace=False))


def fit(net, inputs, target, train_rows, val_rows, kind: str, cfg: dict, lr: float, device, saved: dict | None,
        save, hook, log, pool=None, from_probe: bool = False) -> dict:
    """Train `net` on train_rows (inputs: signals or cached features; target: N x C) at learning rate `lr` until
    early stopping (module docstring); the best epoch chosen by the validation figure; BatchNorm re-estimated on
    up to cfg["bn_records"] rows of `pool` (default: train_rows) before each evaluation. saved: this run's resume
    state; save(state) is called after every epoch; hook(epoch) too (tests kill a run there). from_probe: the net's
    head is a fitted probe (head_init probe): the starting weights are evaluated as epoch 0, a candidate for the best
    epoch, and no epoch trains the head alone. Returns {"best_state", "best_epoch", "stopped_epoch", "val",
    "history"}."""
    rank, world = distributed()
    model = net
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr,
                            weight_decay=cfg["weight_decay"])
    history, best_state = [], None
    if saved is not None:
        model.load_state_dict(saved["model"])
        opt.load_state_dict(saved["optimizer"])
        set_rng_state(saved["rng"])
        history, best_state = saved["history"], saved["best_state"]
    target_t = torch.from_numpy(np.asarray(target, dtype=np.float32))
    pool = train_rows if pool is None else pool
    calibration = bn_rows(pool, cfg["bn_records"], cfg["seed"]) if isinstance(model, Net) else train_rows[:0]
    from tqdm import tqdm

    if from_probe and not history:   # epoch 0: the probe the run starts from
        t0 = time.perf_counter()
        recalibrate_bn(model, inputs, calibration, device)
        val = score(kind, np.asarray(target)[val_rows], predict(model, inputs, val_rows, 256, device,
                                                                cfg["precision"]))
        history.append({"epoch": 0, "steps": 0, "head_only": False, "train_loss": None, "val": val,
                        "seconds": time.perf_counter() - t0})
        best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        log(f"  epoch 0 (the probe it starts from): val {'C-index' if kind == 'cox' else 'macro AUC'} {val:.4f}")
    while not stopped(history, cfg["patience"], cfg["max_epochs"]):
        epoch = history[-1]["epoch"] + 1 if history else 1
        t0 = time.perf_counter()
        warmup = isinstance(model, Net) and not from_probe and epoch <= cfg["head_warmup_epochs"]
        net.train()
        if warmup:   # a linear probe on the encoder's eval-mode features, its BatchNorm estimated on the pool first
            if epoch == 1:
                recalibrate_bn(model, inputs, calibration, device)
            model.base.train(len(calibration) == 0)
        total, n_seen = 0.0, 0
        if kind == "cox" and cfg.get("event_batches"):
            batches = event_batches(np.asarray(target)[train_rows, 1] > 0, cfg["batch_size"],
                                    cfg["min_steps_per_epoch"], cfg["seed"], epoch, rank, world)
        else:
            batches = epoch_batches(len(train_rows), cfg["batch_size"], cfg["min_steps_per_epoch"], cfg["seed"],
                                    epoch, rank, world)
        for positions in tqdm(batches, desc=f"  epoch {epoch}", leave=False, disable=rank != 0):
            rows = np.sort(train_rows[positions])
            x = read_rows(inputs, rows).to(device)
            with autocast(device, cfg["precision"]):
                if warmup:   # the head alone: the encoder's forward without gradient
                    with torch.no_grad():
                        z = model.base.encode_ecg(x)
                    out = model.head(z)
                else:
                    out = net(x)
            loss = loss_fn(kind, out.float(), target_t[rows].to(device))
            if not torch.isfinite(loss):
                raise FloatingPointError(f"epoch {epoch}: the {kind} loss is {loss.item()} at lr {lr:g} (try "
                                         f"lower values in finetune.lr_grid)")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if warmup and world > 1:   # DDP was bypassed: average the head's gradient over the ranks by hand
                for p in model.head.parameters():
                    dist.all_reduce(p.grad)
                    p.grad /= world
            opt.step()
            total, n_seen = total + loss.item() * len(rows), n_seen + len(rows)
        recalibrate_bn(model, inputs, calibration, device)
        val = score(kind, np.asarray(target)[val_rows], predict(model, inputs, val_rows, 256, device,
                                                                         cfg["precision"]))
        history.append({"epoch": epoch, "steps": len(batches), "head_only": warmup,
                        "train_loss": total / max(1, n_seen), "val": val, "seconds": time.perf_counter() - t0})
        is_best = best_record(history)["epoch"] == epoch
        if is_best:
            best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        log(f"  epoch {epoch}{' (head only)' if warmup else ''}, {len(batches)} steps: train loss "
            f"{history[-1]['train_loss']:.4f}, val {'C-index' if kind == 'cox' else 'macro AUC'} {val:.4f} "
            f"({history[-1]['seconds']:.1f} s)" + ("  *best*" if is_best else ""))
        if rank == 0:
            save({"model": model.state_dict(), "optimizer": opt.state_dict(), "rng": rng_state(),
                  "history": history, "best_state": best_state})
        if hook is not None:
            hook(epoch)
    best = best_record(history)
    log(f"  stopped after epoch {history[-1]['epoch']} (best: epoch {best['epoch']}, val {best['val']:.4f})")
    return {"best_state": best_state, "best_epoch": best["epoch"], "stopped_epoch": history[-1]["epoch"],
            "val": best["val"], "history": history}


def choose_lr(by_lr: dict) -> float:
    """The learning rate whose run has the best validation figure (the first of equals in grid order; NaN worst).
    The test figures play no part."""
    return max(by_lr, key=lambda lr: -np.inf if np.isnan(by_lr[lr]["val"]) else by_lr[lr]["val"])


def lr_grid_of(cfg: dict, init: str) -> list[float]:
    """The learning rates an init is run at: cfg["lr_grid"], and for `frozen` every one of them times each of
    FROZEN_LR_FACTORS (ascending, without repeats: [1e-3] -> [1e-3, 1e-2, 1e-1])."""
    if init != "frozen":
        return list(cfg["lr_grid"])
    return sorted({float(f"{lr * k:.6g}") for lr in cfg["lr_grid"] for k in FROZEN_LR_FACTORS})


def make_net(init: str, pretrained: AlignmentModel, out_dim: int, seed: int, dropout: float = 0.0) -> torch.nn.Module:
    """The net of an init, freshly seeded. The head starts at zero for every init: its first steps move along the
    difference of the class means of z_ecg (a random head would start anywhere and, at a small lr, stay there);
    the head-only warm-up (fit) gives the encoder a trained head to take its gradient through. dropout > 0: a
    batch-wise dropout on z before the head (BatchDropout)."""
    seed_everything(seed)
    linear = torch.nn.Linear(pretrained.config["embed_dim"], out_dim)
    torch.nn.init.zeros_(linear.weight)
    torch.nn.init.zeros_(linear.bias)
    head = head_on(linear, dropout)
    if init == "frozen":
        return head
    if init == "random":
        base = AlignmentModel(pretrained.config, lead_mean=pretrained.lead_mean, lead_std=pretrained.lead_std)
    else:
        base = copy.deepcopy(unwrap(pretrained))
    return Net(base, head)


# --- the whole experiment, resumable ------------------------------------------------------------------------------

def fingerprint(cfg: dict, pretrained: AlignmentModel, signals, tasks: dict, world: int) -> str:
    """Hash of what a resume state belongs to: config, world size, the pretrained weights, the signals' shape
    plus 64 evenly spaced records, every run's rows and targets, and the code that trains them (CODE: a state
    saved by other code is not resumed)."""
    h = hashlib.sha256()
    for path in CODE:
        h.update(path.read_bytes())
    h.update(json.dumps(cfg, sort_keys=True).encode() + f"world={world};shape={tuple(signals.shape)}".encode())
    for k, v in sorted(unwrap(pretrained).state_dict().items()):
        h.update(k.encode() + v.detach().cpu().numpy().tobytes())
    sample = np.unique(np.linspace(0, len(signals) - 1, min(len(signals), 64)).astype(int))
    h.update(np.ascontiguousarray(signals[sample]).tobytes())
    for name, t in sorted(tasks.items()):
        h.update(name.encode() + t["kind"].encode())
        for a in (t["target"], t["train"], t["val"], t["test"], t.get("pool", t["train"])):
            h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


def run_experiment(signals, pretrained: AlignmentModel, tasks: dict, cfg: dict, state_dir=art.FINETUNE_STATE,
                   hook=None, log=print, inits=INITS) -> dict:
    """Train every (task, init, lr of the init's grid: lr_grid_of) run. tasks: name -> {"kind": "bce"|"cox",
    "target": N x C, "train", "val", "test": row indices}. Returns name -> init -> the run at the chosen lr (choose_lr):
    {"test_out", "lr", "val", "best_epoch", "stopped_epoch", "history", "by_lr": lr -> {"val", "best_epoch",
    "stopped_epoch", "history"}} (test_out: test outputs of the best epoch), and with head_init probe also
    "random-probe": the probe the random init starts from (a linear probe on the random encoder's features).
    Resumable (module docstring); hook(run_name, epoch) is called after each epoch (run_name:
    "<task>/<init>/lr<lr>"); `inits`: a subset of INITS (tests)."""
    rank, world = distributed()
    log = log if rank == 0 else (lambda *a, **k: None)
    device = resolve_device(cfg["device"], int(os.environ.get("LOCAL_RANK", 0)))
    cfg = {**OPTIONAL_KEYS, **cfg, "precision": resolve_precision(cfg["precision"], device)}
    pretrained = unwrap(pretrained).to(device).eval()
    key = fingerprint({**{k: cfg[k] for k in CONFIG_KEYS}, "inits": list(inits)}, pretrained, signals, tasks, world)
    path = Path(state_dir) / "last.pt"
    state = load_resume(path, key, log, _progress)
    done = state["done"] if state else {}
    current = state.get("current") if state else None
    used = np.unique(np.concatenate([np.concatenate([u["train"], u["val"], u["test"]]) for u in tasks.values()]))
    # z_ecg of a frozen encoder on every row used, computed once: "aligned", and "random/<task>" (the random init's
    # weights depend on the task's head size: make_net draws the head before the encoder)
    features: dict = {}
    probe = cfg["head_init"] == "probe"
    results: dict = {}

    def frozen_features(init: str, net=None, pool=None) -> np.ndarray:
        if init not in features:
            base = pretrained if init == "aligned" else net.base
            if init != "aligned":   # the random encoder's BatchNorm estimated on the pool, as fit does
                recalibrate_bn(net, signals, bn_rows(pool, cfg["bn_records"], cfg["seed"]), device)
            features[init] = np.zeros((len(signals), pretrained.config["embed_dim"]), dtype=np.float32)
            features[init][used] = encode_all(base, signals, rows=used, device=device, precision=cfg["precision"])[0]
        return features[init]

    def runs(name: str, t: dict, label: str, grid, make, inputs, start=None) -> dict:
        """Every lr of `grid` for one init (`label` names its runs), resumable; lr -> the run's record."""
        by_lr = {}
        for lr in grid:
            run = f"{name}/{label}/lr{lr:g}"
            if run not in done:
                log(f"{run}: {len(t['train'])} training, {len(t['val'])} validation, {len(t['test'])} test records")
                net = make()
                if start is not None:
                    net.head.load_state_dict(start)
                saved = current["fit"] if current is not None and current["run"] == run else None

                def save(fit_state, run=run):
                    _save_state(path, {"key": key, "done": done, "current": {"run": run, "fit": fit_state}})

                out = fit(net, inputs, t["target"], t["train"], t["val"], t["kind"], cfg, lr, device, saved, save,
                          None if hook is None else (lambda epoch, run=run: hook(run, epoch)), log, t.get("pool"),
                          from_probe=start is not None)
                net.load_state_dict(out["best_state"])
                done[run] = {"test_out": torch.from_numpy(predict(net, inputs, t["test"], 256, device,
                                                                  cfg["precision"])),
                             "head": {k: v.detach().cpu().clone() for k, v in
                                      (net if not isinstance(net, Net) else net.head).state_dict().items()},
                             **{k: out[k] for k in ("val", "best_epoch", "stopped_epoch", "history")}}
                if rank == 0:
                    _save_state(path, {"key": key, "done": done, "current": None})
            by_lr[lr] = done[run]
        return by_lr

    def chosen(name: str, label: str, by_lr: dict) -> dict:
        lr = choose_lr(by_lr)
        if len(by_lr) > 1:
            log(f"{name}/{label}: lr {lr:g} chosen on validation ("
                + ", ".join(f"{g:g}: {r['val']:.4f}" for g, r in by_lr.items()) + ")")
        return {**by_lr[lr], "lr": lr, "by_lr": {g: {k: r[k] for k in ("val", "best_epoch", "stopped_epoch", "history")}
                                                  for g, r in by_lr.items()}}

    for name, t in tasks.items():
        out_dim = 1 if t["kind"] == "cox" else t["target"].shape[1]   # Cox: one risk score
        dropout = cfg["batch_dropout"] if t["kind"] == "cox" else 0.0   # the risk model's option
        head_grid = lr_grid_of(cfg, "frozen")
        results[name] = {}
        # the frozen init first: with head_init probe its head is where the aligned init starts
        order = sorted(inits, key=lambda i: i != "frozen")

        def head_only():
            return make_net("frozen", pretrained, out_dim, cfg["seed"], dropout).to(device)

        for init in order:
            make = lambda init=init: make_net(init, pretrained, out_dim, cfg["seed"], dropout).to(device)  # noqa: E731
            if init == "frozen":
                by_lr = runs(name, t, init, head_grid, head_only, frozen_features("aligned"))
            else:
                start = None
                if probe and init == "aligned":   # the frozen init's probe (run here if `inits` leaves it out)
                    frozen = results[name].get("frozen") or chosen(name, "frozen", runs(
                        name, t, "frozen", head_grid, head_only, frozen_features("aligned")))
                    start = frozen["head"]
                elif probe:   # a probe on the random encoder's own features (the same random weights as below)
                    start_run = chosen(name, "random-probe", runs(name, t, "random-probe", head_grid, head_only,
                                                                  frozen_features(f"random/{name}", make(),
                                                                                  t.get("pool", t["train"]))))
                    start = start_run["head"]
                    results[name]["random-probe"] = start_run
                by_lr = runs(name, t, init, lr_grid_of(cfg, init), make, signals, start)
            results[name][init] = chosen(name, init, by_lr)
    if world > 1:
        dist.barrier()
    return results


def _progress(state: dict) -> str:
    current = state.get("current")
    return (f"{len(state['done'])} run(s) done"
            + (f", {current['run']} after epoch {len(current['fit']['history'])}" if current else ""))


def _save_state(path: Path, state: dict) -> None:
    from .atomic import atomic_path

    with atomic_path(path, suffix=".pt") as tmp:
        torch.save(state, tmp)


# --- metrics ------------------------------------------------------------------------------------------------------

def key(*parts: str) -> str:
    return "_".join(p for p in parts if p)


def summarise(results: dict, tasks: dict, n_boot: int = stats.N_BOOT, seed: int = 0) -> dict:
    """Flat metrics of every task (its "prefix", "tag", "metric"): <prefix>_<init>_<tag>_<metric> with _ci_low,
    _ci_high (the test figure of the chosen lr's best epoch), and the run's <prefix>_<init>_<tag>_lr (chosen),
    _val_<metric> (its best validation figure), _best_epoch, _stopped_epoch; <prefix>_gain_<tag>_<metric> (aligned -
    random) and
    <prefix>_frozen_gain_<tag>_<metric> (frozen - random) with paired bootstrap intervals (the same resamples of
    the test records for every init); <prefix>_<init>_<tag>_capped: 1 when the best epoch was the last one trained
    and the run stopped there, i.e. at max_epochs (a longer budget might have helped), else 0; with head_init
    probe the same figures for random_probe (the linear probe on the random encoder's features the random init
    starts from); finetune_capped_runs: how many of these runs (every task and init) were capped, the check that
    the budget did not decide a figure. Each init's test figure also keeps its values under the first bootstrap
    resamples as <key>_kept (resamples.add_interval; seeded by `seed` on the test fold's labels, so every experiment
    of one seed and task draws the same resamples: the grid pairs them). Undefined figures are None."""
    m, lrs, capped = {}, {}, 0
    for name, t in tasks.items():
        prefix, tag, metric = t["prefix"], t.get("tag", ""), t["metric"]
        truth = np.asarray(t["target"])[t["test"]]
        # macro AUCs: class-complete resamples, so that every resample scores the classes the point scores
        counts = (stats.bootstrap_counts(len(t["test"]), n_boot, seed) if t["kind"] == "cox"
                  else stats.class_complete_counts(truth > 0.5, n_boot, seed)[0])
        boot, point = {}, {}
        for init in [i for i in (*INITS, "random-probe") if i in results[name]]:
            r = results[name][init]
            out = np.asarray(r["test_out"])
            boot[init], point[init] = resampled(t["kind"], truth, out, counts), score(t["kind"], truth, out)
            name_ = init.replace("-", "_")
            k = key(prefix, name_, tag, metric)
            lrs[key(prefix, name_, tag, "lr")] = float(r["lr"])   # not rounded
            add_interval(m, k, stats.interval(boot[init]), boot[init])
            was_capped = int(r["best_epoch"] == r["stopped_epoch"] > 0)
            capped += was_capped
            m.update({k: point[init], key(prefix, name_, tag, "val", metric): float(r["val"]),
                      key(prefix, name_, tag, "best_epoch"): int(r["best_epoch"]),
                      key(prefix, name_, tag, "stopped_epoch"): int(r["stopped_epoch"]),
                      key(prefix, name_, tag, "capped"): was_capped})
        for init, gain in (("aligned", "gain"), ("frozen", "frozen_gain")):
            lo, hi = stats.interval(boot[init] - boot["random"])
            k = key(prefix, gain, tag, metric)
            m.update({k: point[init] - point["random"], k + "_ci_low": lo, k + "_ci_high": hi})
    m["finetune_capped_runs"] = capped
    return {**{k: (None if np.isnan(v) else round(float(v), 4)) if isinstance(v, float) else v
               for k, v in m.items()}, **lrs}


def run_log(results: dict) -> dict:
    """Every run's course, for data/finetune/runs.json: "<task>/<init>" -> {"lr" (chosen), "by_lr": {lr: {"val",
    "best_epoch", "stopped_epoch", "history"}}}."""
    return {f"{name}/{init}": {"lr": r["lr"], "by_lr": {f"{lr:g}": v for lr, v in r["by_lr"].items()}}
            for name, runs in results.items() for init, r in runs.items()}


def plot_label_efficiency(metrics: dict, fractions, path, title: str) -> Path:
    """Test macro AUC against label fraction (log axis), one line per init with its bootstrap interval."""
    from .plots import _save, plt

    fig, ax = plt.subplots(figsize=(6, 4.2))
    x = np.asarray(fractions, dtype=float) * 100
    for i, init in enumerate(INITS):
        keys = [f"finetune_{init}_{pct_name(f)}_auc_macro" for f in fractions]
        y = np.array([np.nan if metrics.get(k) is None else metrics[k] for k in keys], dtype=float)
        lo = np.array([np.nan if metrics.get(k + "_ci_low") is None else metrics[k + "_ci_low"] for k in keys])
        hi = np.array([np.nan if metrics.get(k + "_ci_high") is None else metrics[k + "_ci_high"] for k in keys])
        ax.errorbar(x * (1 + 0.04 * (i - 1)), y, yerr=[y - lo, hi - y], marker="o", capsize=3,
                    label={"aligned": "aligned, fine-tuned", "frozen": "aligned, frozen (head only)",
                           "random": "random init"}[init])
    ax.set_xscale("log")
    ax.set_xticks(x, [f"{v:g} %" for v in x])
    ax.set(xlabel="labelled training records", ylabel="test macro AUC (95 % CI)", title=title)
    ax.axhline(0.5, color="k", lw=0.6, ls="--")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def report(metrics: dict, fractions) -> str:
    """The table the stage prints: test figure [95 % CI] per init and the gain of pretraining, per fraction."""
    fmt = lambda m, k: "-" if m.get(k) is None else (  # noqa: E731
        f"{m[k]:.3f} [{m[k + '_ci_low']:.3f}, {m[k + '_ci_high']:.3f}]" if m.get(k + "_ci_low") is not None
        else f"{m[k]:.3f}")
    seen = metrics.get("finetune_pretraining_labels")
    rows = [(f"{f * 100:g} % ({metrics.get(f'finetune_{pct_name(f)}_n_train')}"
             + (f" + {seen} pretraining)" if seen is not None else " records)"), "finetune", pct_name(f), "auc_macro")
            for f in fractions]
    if metrics.get("outcome_kind") not in (None, "none"):
        metric = "c_index" if metrics["outcome_kind"] == "survival" else "auc"
        rows.append((f"outcome {metric} ({metrics['outcome_n_train']} records)", "outcome", "", metric))
    lines = [f"{'labels':<34}" + "".join(f"{i:<24}" for i in INITS) + "gain of pretraining (aligned - random)"]
    for label, prefix, tag, metric in rows:
        lines.append(f"{label:<34}" + "".join(f"{fmt(metrics, key(prefix, i, tag, metric)):<24}" for i in INITS)
                     + fmt(metrics, key(prefix, "gain", tag, metric)))
        lines.append(f"{'  lr, best/stopped epoch':<34}" + "".join(
            f"{metrics.get(key(prefix, i, tag, 'lr'), 0):<8g}{metrics.get(key(prefix, i, tag, 'best_epoch'))}/"
            f"{metrics.get(key(prefix, i, tag, 'stopped_epoch'))}".ljust(24) for i in INITS))
    return "\n".join(lines)
