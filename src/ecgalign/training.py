"""The alignment training loop: one function, `train`, callable from tests without params.yaml and from
src/train_alignment.py (one process, or one of N under torchrun / DDP).

- Split: rows by strat_fold (train_folds / val_folds).
- Data: indices into the signals array (a memmap is fine); a batch is one fancy-indexed read of its sorted rows.
  The order comes from a DistributedSampler (one replica on one process) seeded with train.seed and set_epoch(epoch):
  a torch.Generator, so the same params + seed give the same batches, on one process or N.
- Optimiser: AdamW (no weight decay on biases, norms and the temperature, as CLIP), linear warm-up over
  warmup_epochs, then cosine decay to 0, stepped per batch.
- Model selection: the epoch with the lowest *validation objective of the chosen loss*. For "cosine" that is the
  validation alignment loss; for InfoNCE the cosine loss is the wrong criterion: it is lowest when the space collapses
  (all embeddings on one direction), which InfoNCE exists to prevent.
- Resume: every epoch data/train_state/last.pt holds model, optimiser, scheduler, RNG states, history and the best
  weights so far, tagged with a hash of the config and inputs. Re-running with the same hash continues after the
  last finished epoch and ends with exactly the weights of an uninterrupted run; another hash starts fresh.
- Logging: per epoch, printed and logged to dvclive as train/objective, train/alignment_loss, val/objective,
  val/alignment_loss (and train/temperature); step 0 holds the validation figures before the first update.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import random
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
import torch.distributed as dist

from .losses import alignment_objective, cosine_alignment_loss
from .models import MAX_LOGIT_SCALE, build_model, save_checkpoint, unwrap

# the keys train() reads; config_from_params builds them from params.yaml
CONFIG_KEYS = ("encoder", "embed_dim", "loss", "temperature", "learn_temperature", "proj_dim", "epochs",
               "batch_size", "lr", "weight_decay", "warmup_epochs", "seed", "device", "num_workers",
               "train_folds", "val_folds")


def config_from_params(p) -> dict:
    """The flat training config from validated params (ecg.*, train.*, split.train_folds/val_folds)."""
    return {"encoder": p.ecg.encoder, "embed_dim": p.ecg.embed_dim, **vars(p.train),
            "train_folds": list(p.split.train_folds), "val_folds": list(p.split.val_folds)}


def as_config(cfg) -> dict:
    cfg = vars(cfg) if isinstance(cfg, SimpleNamespace) else dict(cfg)
    missing = [k for k in CONFIG_KEYS if k not in cfg]
    if missing:
        raise KeyError(f"training config lacks {missing}")
    return {k: cfg[k] for k in CONFIG_KEYS}


def split_rows(folds, train_folds, val_folds) -> tuple[np.ndarray, np.ndarray]:
    """Row indices of the training and validation folds (ascending)."""
    folds = np.asarray(folds)
    out = []
    for name, wanted in (("train_folds", train_folds), ("val_folds", val_folds)):
        rows = np.flatnonzero(np.isin(folds, list(wanted)))
        if len(rows) == 0:
            raise ValueError(f"split.{name} = {list(wanted)} selects no record (strat_fold values present: "
                             f"{sorted(set(folds.tolist()))})")
        out.append(rows)
    return out[0], out[1]


def text_ids(text_emb: np.ndarray) -> np.ndarray:
    """One int per row; equal ids <=> identical text embeddings (identical reports): InfoNCE's soft positives."""
    return np.unique(np.asarray(text_emb), axis=0, return_inverse=True)[1].reshape(-1).astype(np.int64)


class Batches(torch.utils.data.Dataset):
    """Whole batches as items: dataset[positions] -> (x raw mV, text embedding, text id) of rows[positions],
    read as one sorted fancy index of the (memory-mapped) signals."""

    def __init__(self, signals, text_emb, ids, rows):
        self.signals, self.text, self.ids, self.rows = signals, text_emb, ids, np.asarray(rows)

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, positions):
        rows = np.sort(self.rows[np.asarray(positions)])
        x = torch.from_numpy(np.ascontiguousarray(self.signals[rows], dtype=np.float32))
        return x, torch.from_numpy(self.text[rows]), torch.from_numpy(self.ids[rows])


def lr_factor(step: int, warmup: int, total: int) -> float:
    """Linear warm-up over `warmup` steps, then cosine decay to 0 at `total`."""
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def rng_state() -> dict:
    """Every RNG's state as tensors/ints/lists (loadable with weights_only=True)."""
    _, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    state = {"torch": torch.get_rng_state(),
             "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                       "has_gauss": int(has_gauss), "gauss": float(gauss)},
             "python": {"version": version, "internal": list(internal), "gauss_next": gauss_next}}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["internal"]), p["gauss_next"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def fingerprint(cfg: dict, signals, text_emb, folds, lead_mean, lead_std, world: int) -> str:
    """Hash of what a resume checkpoint belongs to: the config (but num_workers), world size, the text embeddings,
    folds and normalisation stats in full, and the signals' shape plus 64 evenly spaced records."""
    h = hashlib.sha256()
    h.update(json.dumps({k: v for k, v in cfg.items() if k != "num_workers"}, sort_keys=True).encode())
    h.update(f"world={world};shape={tuple(signals.shape)};dtype={signals.dtype}".encode())
    sample = np.unique(np.linspace(0, len(signals) - 1, min(len(signals), 64)).astype(int))
    for a in (signals[sample], text_emb, folds, lead_mean, lead_std):
        h.update(np.ascontiguousarray(np.asarray(a if a is not None else [])).tobytes())
    return h.hexdigest()[:16]


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    if name == "cuda" or (name == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise RuntimeError("train.device = cuda, but no CUDA device is available (use auto or cpu)")
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def distributed() -> tuple[int, int]:
    """(rank, world_size); (0, 1) without an initialised process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


@torch.no_grad()
def evaluate(model, signals, text_emb, ids, rows, kind: str, batch_size: int, device) -> tuple[float, float]:
    """(objective, alignment loss 1 - cos) on `rows`, in consecutive batches, eval mode, on this process only;
    averages weighted by batch size."""
    model = unwrap(model)
    was_training = model.training
    model.eval()
    data = Batches(signals, text_emb, ids, rows)
    obj = align = 0.0
    for start in range(0, len(rows), batch_size):
        x, t, i = (a.to(device) for a in data[np.arange(start, min(start + batch_size, len(rows)))])
        with autocast(device):
            e_ecg, e_text = model(x, t)
        obj += float(alignment_objective(kind, e_ecg, e_text, model.scale(), i, gather=False)) * len(x)
        align += float(cosine_alignment_loss(e_ecg, e_text)) * len(x)
    model.train(was_training)
    return obj / len(rows), align / len(rows)


def autocast(device: torch.device):
    """bf16 autocast on CUDA, nothing on CPU."""
    return torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")


def load_resume(path: Path, key: str, log) -> dict | None:
    """The resume state at `path` if it belongs to `key`, else None (saying why)."""
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        log(f"{path}: unreadable ({type(e).__name__}), ignoring it: starting fresh")
        return None
    if not isinstance(state, dict) or state.get("key") != key:
        log(f"{path} belongs to other params or inputs (hash {state.get('key') if isinstance(state, dict) else '?'}"
            f", now {key}): ignoring it, starting fresh")
        return None
    log(f"resuming from {path}: {state['epoch']} epoch(s) done")
    return state


def log_live(live, step: int, record: dict) -> None:
    if live is None:
        return
    live.step = step
    for name, value in record.items():
        if "/" in name:
            live.log_metric(name, value)
    live.next_step()


def train(signals, text_emb, folds, cfg, out_dir="data/model", state_dir="data/train_state", live=None,
          lead_mean=None, lead_std=None, log=print) -> dict:
    """Train an AlignmentModel; writes out_dir/model.pt (best epoch) and state_dir/last.pt (resume state) on rank 0
    and returns the metrics of metrics/train.json. signals [N, 12, T] raw mV (memmap ok), text_emb [N, d], folds [N]
    row-aligned; lead_mean/lead_std: per-lead normalisation from the training folds (default 0/1)."""
    cfg = as_config(cfg)
    rank, world = distributed()
    log = log if rank == 0 else (lambda *a, **k: None)
    text_emb = np.ascontiguousarray(text_emb, dtype=np.float32)
    folds = np.asarray(folds)
    if not len(signals) == len(text_emb) == len(folds):
        raise ValueError(f"inputs are not row-aligned: {len(signals)} signals, {len(text_emb)} text embeddings, "
                         f"{len(folds)} folds (reports)")
    train_rows, val_rows = split_rows(folds, cfg["train_folds"], cfg["val_folds"])
    ids = text_ids(text_emb)
    device = resolve_device(cfg["device"], int(os.environ.get("LOCAL_RANK", 0)))

    seed_everything(cfg["seed"])
    model = build_model(cfg["encoder"], cfg["embed_dim"], text_emb.shape[1], cfg["proj_dim"], cfg["temperature"],
                        cfg["learn_temperature"] and cfg["loss"] != "cosine",  # the cosine loss has no temperature
                        lead_mean, lead_std, n_leads=signals.shape[1]).to(device)
    net = model
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg["weight_decay"]},
                             {"params": no_decay, "weight_decay": 0.0}], lr=cfg["lr"])

    sampler = torch.utils.data.DistributedSampler(range(len(train_rows)), num_replicas=world, rank=rank,
                                                  shuffle=True, seed=cfg["seed"])
    per_rank = cfg["batch_size"] // world if world > 1 else cfg["batch_size"]
    if per_rank < 1:
        raise ValueError(f"train.batch_size = {cfg['batch_size']} is smaller than the {world} processes")
    batches = torch.utils.data.BatchSampler(sampler, per_rank, drop_last=len(sampler) >= per_rank)
    loader = torch.utils.data.DataLoader(Batches(signals, text_emb, ids, train_rows), sampler=batches,
                                         batch_size=None, num_workers=cfg["num_workers"])
    steps = len(loader)
    total, warmup = cfg["epochs"] * steps, round(cfg["warmup_epochs"] * steps)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, warmup, total))

    key = fingerprint({**cfg, "device": device.type}, signals, text_emb, folds, lead_mean, lead_std, world)
    last_path = Path(state_dir) / "last.pt"
    state = load_resume(last_path, key, log)
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        set_rng_state(state["rng"])
        history, best_state = state["history"], state["best_state_dict"]
    else:
        obj0, align0 = evaluate(model, signals, text_emb, ids, val_rows, cfg["loss"], cfg["batch_size"], device)
        history = [{"epoch": 0, "val/objective": obj0, "val/alignment_loss": align0, "seconds": 0.0}]
        best_state = None
        log(f"before training: val objective {obj0:.4f}, val alignment loss (1 - cos) {align0:.4f}")
    for record in history:  # a resumed run replays its curves: dvclive/ ends the same as an uninterrupted run's
        log_live(live, record["epoch"], record)

    from tqdm import tqdm

    for epoch in range(len(history), cfg["epochs"] + 1):
        t0 = time.perf_counter()
        sampler.set_epoch(epoch)
        net.train()
        sums = torch.zeros(3, dtype=torch.float64)  # objective * n, (1 - cos) * n, n
        for step, (x, t, i) in enumerate(tqdm(loader, desc=f"epoch {epoch}/{cfg['epochs']}", leave=False,
                                              disable=rank != 0)):
            x, t, i = x.to(device, non_blocking=True), t.to(device), i.to(device)
            with autocast(device):
                e_ecg, e_text = net(x, t)
            objective = alignment_objective(cfg["loss"], e_ecg, e_text, model.scale(), i)
            if not torch.isfinite(objective):
                raise FloatingPointError(f"epoch {epoch}, step {step}: the {cfg['loss']} objective is "
                                         f"{objective.item()} (try a lower train.lr)")
            opt.zero_grad(set_to_none=True)
            objective.backward()
            opt.step()
            sched.step()
            with torch.no_grad():
                model.logit_scale.clamp_(0, MAX_LOGIT_SCALE)
                sums += torch.tensor([objective.item() * len(x),
                                      cosine_alignment_loss(e_ecg, e_text).item() * len(x), len(x)],
                                     dtype=torch.float64)
        if world > 1:  # every rank's share: the logged train figures are over the whole epoch
            sums = sums.to(device)
            dist.all_reduce(sums)
            sums = sums.cpu()
        val_obj, val_align = evaluate(model, signals, text_emb, ids, val_rows, cfg["loss"], cfg["batch_size"], device)
        record = {"epoch": epoch, "train/objective": float(sums[0] / sums[2]),
                  "train/alignment_loss": float(sums[1] / sums[2]), "val/objective": val_obj,
                  "val/alignment_loss": val_align, "train/temperature": 1.0 / model.scale().item(),
                  "seconds": time.perf_counter() - t0}
        history.append(record)
        best_epoch = min(history[1:], key=lambda r: r["val/objective"])["epoch"]
        if best_epoch == epoch:
            best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        if rank == 0:
            save_resume(last_path, model, opt, sched, epoch, key, history, best_state)
        log(f"epoch {epoch}/{cfg['epochs']}: train objective {record['train/objective']:.4f}, "
            f"train 1-cos {record['train/alignment_loss']:.4f}, val objective {val_obj:.4f}, val 1-cos "
            f"{val_align:.4f}, temperature {record['train/temperature']:.4f} ({record['seconds']:.1f} s)"
            + ("  *best*" if best_epoch == epoch else ""))
        log_live(live, epoch, record)

    best = min(history[1:], key=lambda r: r["val/objective"])
    # what the checkpoint keeps: no timing, so that the same run gives a byte-identical model.pt
    results = {"alignment_loss_initial": history[0]["val/alignment_loss"],
               "alignment_loss": best["val/alignment_loss"], "val_objective": best["val/objective"],
               "best_epoch": best["epoch"], "epochs": cfg["epochs"],
               "alignment_loss_last": history[-1]["val/alignment_loss"],
               "val_objective_last": history[-1]["val/objective"],
               "temperature": best["train/temperature"],
               "n_train": int(len(train_rows)), "n_val": int(len(val_rows)), "world_size": world}
    if rank == 0:
        model.load_state_dict(best_state)
        save_checkpoint(Path(out_dir) / "model.pt", model, epoch=best["epoch"], key=key, metrics=results,
                        objective=cfg["loss"])
    metrics = {"objective": cfg["loss"], **results, "train_seconds": round(sum(r["seconds"] for r in history), 3)}
    if world > 1:
        dist.barrier()
    return metrics


def save_resume(path: Path, model, opt, sched, epoch: int, key: str, history: list, best_state: dict) -> None:
    """last.pt, atomically: everything a killed run needs to continue exactly."""
    from .atomic import atomic_path

    state = {"key": key, "epoch": epoch, "model": model.state_dict(), "optimizer": opt.state_dict(),
             "scheduler": sched.state_dict(), "rng": rng_state(), "history": history, "best_state_dict": best_state}
    with atomic_path(path, suffix=".pt") as tmp:
        torch.save(state, tmp)
