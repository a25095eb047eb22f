"""The alignment training loop: `train`, callable from tests without params.yaml and from src/train_alignment.py
(one process, or one of N under torchrun / DDP), in four steps: setup (inputs, model, optimiser, loader, resume key),
start (resume from last.pt, or the epoch-0 validation), train_epoch (one pass + validation), finish (best weights to
model.pt, the metrics).

- Report identities: `ids` (data/text/record_ids.npy) mark the records whose texts are identical: InfoNCE's soft
  positives. Given by the text stage from the distinct weight rows, never by comparing float products.
- Split: rows by strat_fold (train_folds / val_folds).
- Data: indices into the signals array (a memmap is fine); a batch is one fancy-indexed read of its sorted rows.
  The order comes from a DistributedSampler (one replica on one process) seeded with train.seed and set_epoch(epoch):
  a torch.Generator, so the same params + seed give the same batches, on one process or N.
- DDP: under torchrun, BatchNorm runs over the global batch (SyncBatchNorm on CUDA, GlobalBatchNorm on CPU), so two
  processes on half batches compute what one process computes on the whole batch.
- Determinism: train.threads pins the CPU thread count; on CUDA, deterministic kernels (configure_runtime).
- Optimiser: AdamW (no weight decay on biases, norms and the temperature, as CLIP), linear warm-up over
  warmup_epochs, then cosine decay to 0, stepped per batch. The schedule is defined by train.epochs, the maximum,
  also when early stopping ends the run sooner: an early-stopped run has followed exactly the first epochs of the
  full run (same learning rates, same weights), so patience only decides where to stop, never what is learnt, and
  the stop point needs no knowledge of the future. (A schedule shrunk to the stop epoch would need to know it in
  advance.)
- Early stopping (train.patience, 0 = off): stop when the validation objective has not improved for `patience`
  epochs; the best epoch's weights are kept as always (stop_reason).
- Augmentations (params `augment:`, ecgalign.augment): on the fly, on the training batches only (never validation,
  never embedding), from a generator seeded per (seed, epoch, rank).
- Supervised control (train.loss = supervised): the same encoder, epochs, optimiser and schedule, a linear class head
  on z_ecg trained with multi-label BCE; `text_emb` is then the N x C 0/1 label matrix of the SCP codes
  (labels.supervised_targets) in place of the text embeddings, and no alignment figure is logged (NaN -> None).
- Pretraining pool: `train_folds` of the config is the folds pretraining reads (split.pretrain_folds, or
  split.train_folds when that is null); rows of other folds but the validation folds are never read.
- Model selection: the epoch with the lowest *validation objective of the chosen loss*. For "cosine" that is the
  validation alignment loss; for InfoNCE the cosine loss is the wrong criterion: it is lowest when the space collapses
  (all embeddings on one direction), which InfoNCE exists to prevent.
- Resume: every epoch data/train_state/last.pt holds model, optimiser, scheduler, RNG states, history and the best
  weights so far, tagged with a hash of the config and inputs. Re-running with the same hash continues after the
  last finished epoch and ends with exactly the weights of an uninterrupted run; another hash starts fresh.
- Reconstruction (train.recon_weight > 0, the study's autoencoder term): a decoder from z back to the normalised
  signal is added to the model, and the objective becomes the alignment objective + recon_weight x its mean squared
  error; 0 builds no decoder and gives exactly the results of a model without the term.
- Logging: per epoch, printed and logged to dvclive as train/objective, train/alignment_loss, val/objective,
  val/alignment_loss (and train/temperature, and train/ val/reconstruction_loss with the term on); step 0 holds the
  validation figures before the first update.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
import torch.distributed as dist

from . import artifacts as art
from . import augment as augmentations
from .losses import SUPERVISED, alignment_monitor, alignment_objective
from .precision import as_float, autocast, record as precision_record, resolve as resolve_precision
from .models import MAX_LOGIT_SCALE, build_model, save_checkpoint, sync_batchnorm, unwrap

# the keys train() reads; config_from_params builds them from params.yaml
CONFIG_KEYS = ("encoder", "embed_dim", "loss", "temperature", "learn_temperature", "proj_dim", "epochs",
               "batch_size", "lr", "weight_decay", "warmup_epochs", "seed", "device", "num_workers", "threads",
               "train_folds", "val_folds")
# keys added after the first release: a config without them keeps its old meaning (no early stop, no augmentation)
OPTIONAL_KEYS = {"patience": 0, "augment": {}, "precision": "fp32", "recon_weight": 0.0, "width": 4}
CUBLAS_WORKSPACE = ":4096:8"   # what cuBLAS needs to be deterministic (CUBLAS_WORKSPACE_CONFIG)


def config_from_params(p) -> dict:
    """The flat training config from validated params (ecg.*, train.*, split.val_folds; train_folds is the
    pretraining pool: split.pretrain_folds, or split.train_folds when that is null)."""
    return {"encoder": p.ecg.encoder, "embed_dim": p.ecg.embed_dim, "width": p.ecg.width, **vars(p.train),
            "train_folds": p.split.pretrain_pool, "val_folds": list(p.split.val_folds),
            "augment": dict(vars(p.augment))}


def as_config(cfg) -> dict:
    cfg = {**OPTIONAL_KEYS, **(vars(cfg) if isinstance(cfg, SimpleNamespace) else dict(cfg))}
    missing = [k for k in CONFIG_KEYS if k not in cfg]
    if missing:
        raise KeyError(f"training config lacks {missing}")
    out = {**{k: cfg[k] for k in CONFIG_KEYS}, "patience": int(cfg["patience"]),
           "augment": augmentations.check(cfg["augment"]), "precision": cfg["precision"]}
    if cfg["recon_weight"]:   # only when on: a config without it keeps its resume key and meaning
        out["recon_weight"] = float(cfg["recon_weight"])
    if cfg["recon_weight"] or cfg["encoder"] == "dual_attention":   # the width sizes these only
        out["width"] = int(cfg["width"])
    return out


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
    """One int per row; equal ids <=> bit-identical text embedding rows. The fallback when no report identities
    are given: right for embeddings made by the text stage (identical reports get bit-identical rows there), not
    for arbitrary float products, whose rows for one report can differ in the last bits."""
    return np.unique(np.asarray(text_emb), axis=0, return_inverse=True)[1].reshape(-1).astype(np.int64)


def check_ids(ids, n: int) -> np.ndarray:
    """Report identities (data/text/record_ids.npy) as int64, checked: one integer per record."""
    ids = np.asarray(ids)
    if ids.shape != (n,) or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"report ids must be {n} integers (one per record), got {ids.dtype} of shape {ids.shape}: "
                         f"re-run dvc repro text_embeddings")
    return ids.astype(np.int64)


def configure_runtime(threads: int, device: torch.device) -> None:
    """Pin the CPU thread count (train.threads; 0 keeps torch's default), which can change results in the last
    bits; on CUDA make every kernel deterministic (cuDNN without autotuning, deterministic algorithms only, a fixed
    cuBLAS workspace: the variable must be set before CUDA starts, so src/train_alignment.py sets it before it
    imports torch; setting it here covers callers that have not touched CUDA yet)."""
    if threads > 0:
        torch.set_num_threads(threads)
    if device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False


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


def fingerprint(cfg: dict, signals, text_emb, folds, lead_mean, lead_std, world: int, ids=None) -> str:
    """Hash of what a resume checkpoint belongs to: the config (but num_workers), world size, the text embeddings,
    report ids, folds and normalisation stats in full, and the signals' shape plus 64 evenly spaced records."""
    h = hashlib.sha256()
    h.update(json.dumps({k: v for k, v in cfg.items() if k != "num_workers"}, sort_keys=True).encode())
    h.update(f"world={world};shape={tuple(signals.shape)};dtype={signals.dtype}".encode())
    sample = np.unique(np.linspace(0, len(signals) - 1, min(len(signals), 64)).astype(int))
    for a in (signals[sample], text_emb, folds, lead_mean, lead_std, ids):
        h.update(np.ascontiguousarray(np.asarray(a if a is not None else [])).tobytes())
    return h.hexdigest()[:16]


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    if name == "cuda" or (name == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise RuntimeError("train.device = cuda, but no CUDA device is available (use auto or cpu)")
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def init_distributed(device: str) -> tuple[int, int]:
    """Under torchrun (WORLD_SIZE > 1): start the process group (nccl on CUDA, gloo on CPU) for train.device =
    `device`. Returns (rank, world_size); (0, 1) for one process."""
    world = int(os.environ.get("WORLD_SIZE", 1))
    if world == 1:
        return 0, 1
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    cuda = resolve_device(device, local_rank).type == "cuda"
    if cuda:
        torch.cuda.set_device(local_rank)
    dist.init_process_group("nccl" if cuda else "gloo")
    return dist.get_rank(), world


def distributed() -> tuple[int, int]:
    """(rank, world_size); (0, 1) without an initialised process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def forward_objective(net, model, x, t, i, kind: str, recon_weight: float, device, precision: str,
                      gather: bool = True):
    """(objective, 1 - cos, reconstruction MSE or None) of one batch: the alignment objective `kind`, plus
    recon_weight x the decoder's mean squared error on the normalised signal when recon_weight > 0."""
    with autocast(device, precision):
        out = as_float(*net(x, t, reconstruct=True) if recon_weight else net(x, t))
    e_ecg, e_text = out[:2]
    objective = alignment_objective(kind, e_ecg, e_text, model.scale(), i, gather=gather)
    with torch.no_grad():
        align = alignment_monitor(kind, e_ecg, e_text)
    recon = None
    if recon_weight:
        recon = out[2].mean()
        objective = objective + recon_weight * recon
    return objective, align, recon


@torch.no_grad()
def evaluate(model, signals, text_emb, ids, rows, kind: str, batch_size: int, device,
             precision: str = "fp32", recon_weight: float = 0.0) -> tuple[float, float, float]:
    """(objective, alignment loss 1 - cos, reconstruction MSE (NaN without the term)) on `rows`, in consecutive
    batches, eval mode, on this process only, in `precision` ('fp32' | 'bf16'); averages weighted by batch size."""
    model = unwrap(model)
    was_training = model.training
    model.eval()
    data = Batches(signals, text_emb, ids, rows)
    obj = align = rec = 0.0
    for start in range(0, len(rows), batch_size):
        x, t, i = (a.to(device) for a in data[np.arange(start, min(start + batch_size, len(rows)))])
        o, a, r = forward_objective(model, model, x, t, i, kind, recon_weight, device, precision, gather=False)
        obj += float(o) * len(x)
        align += a * len(x)
        rec += float(r) * len(x) if r is not None else float("nan")
    model.train(was_training)
    return obj / len(rows), align / len(rows), rec / len(rows)


def load_resume(path: Path, key: str, log, progress=lambda state: f"{state['epoch']} epoch(s) done") -> dict | None:
    """The resume state at `path` if it belongs to `key`, else None (saying why); `progress(state)` says how far
    the saved run got."""
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
    log(f"resuming from {path}: {progress(state)}")
    return state


def log_live(live, step: int, record: dict) -> None:
    if live is None:
        return
    live.step = step
    for name, value in record.items():
        if "/" in name and math.isfinite(value):   # the supervised control has no alignment figure (NaN)
            live.log_metric(name, value)
    live.next_step()


@dataclass
class Run:
    """Everything one training run works with, built once by setup()."""
    cfg: dict
    rank: int
    world: int
    device: torch.device
    signals: object
    text_emb: np.ndarray
    ids: np.ndarray
    train_rows: np.ndarray
    val_rows: np.ndarray
    model: torch.nn.Module        # the AlignmentModel itself
    net: torch.nn.Module          # what the forward pass goes through: the model, or its DDP wrapper
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LambdaLR
    sampler: torch.utils.data.DistributedSampler
    loader: torch.utils.data.DataLoader
    key: str
    last_path: Path
    log: object
    precision: str                # resolved: 'fp32' | 'bf16' (train.precision, ecgalign.precision)

    @property
    def recon_weight(self) -> float:
        return self.cfg.get("recon_weight", 0.0)

    def validate(self) -> dict:
        """The validation figures of a history record (val/reconstruction_loss only with the term on)."""
        obj, align, rec = evaluate(self.model, self.signals, self.text_emb, self.ids, self.val_rows,
                                   self.cfg["loss"], self.cfg["batch_size"], self.device, self.precision,
                                   self.recon_weight)
        out = {"val/objective": obj, "val/alignment_loss": align}
        return {**out, "val/reconstruction_loss": rec} if self.recon_weight else out


def setup(signals, text_emb, folds, cfg, ids=None, state_dir=art.TRAIN_STATE, lead_mean=None, lead_std=None,
          log=print) -> Run:
    """Check the inputs, split, seed, build the model (SyncBatchNorm + DDP under torchrun), optimiser, schedule and
    loader, and the resume key."""
    cfg = as_config(cfg)
    rank, world = distributed()
    log = log if rank == 0 else (lambda *a, **k: None)
    text_emb = np.ascontiguousarray(text_emb, dtype=np.float32)
    folds = np.asarray(folds)
    if not len(signals) == len(text_emb) == len(folds):
        raise ValueError(f"inputs are not row-aligned: {len(signals)} signals, {len(text_emb)} text embeddings, "
                         f"{len(folds)} folds (reports)")
    ids = text_ids(text_emb) if ids is None else check_ids(ids, len(text_emb))
    train_rows, val_rows = split_rows(folds, cfg["train_folds"], cfg["val_folds"])
    device = resolve_device(cfg["device"], int(os.environ.get("LOCAL_RANK", 0)))
    configure_runtime(cfg["threads"], device)

    seed_everything(cfg["seed"])
    model = build_model(cfg["encoder"], cfg["embed_dim"], text_emb.shape[1], cfg["proj_dim"], cfg["temperature"],
                        cfg["learn_temperature"] and cfg["loss"] != "cosine",  # the cosine loss has no temperature
                        lead_mean, lead_std, n_leads=signals.shape[1],
                        n_classes=text_emb.shape[1] if cfg["loss"] == SUPERVISED else None,
                        length=signals.shape[2], reconstruct=bool(cfg.get("recon_weight")),
                        width=cfg.get("width", 4)).to(device)
    net = model
    if world > 1:  # BatchNorm over the global batch, as on one process; same parameters, same state_dict keys
        model = sync_batchnorm(model, device)
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
    precision = resolve_precision(cfg["precision"], device)
    key = fingerprint({**cfg, "device": device.type, "precision": precision}, signals, text_emb, folds, lead_mean,
                      lead_std, world, ids)
    return Run(cfg, rank, world, device, signals, text_emb, ids, train_rows, val_rows, model, net, opt, sched,
               sampler, loader, key, Path(state_dir) / "last.pt", log, precision)


def start(run: Run, live=None) -> tuple[list[dict], dict | None]:
    """(history, best weights so far): restored from last.pt when it belongs to this run, else the epoch-0
    validation figures and no best yet. The history is replayed to `live`, so that a resumed run's dvclive/ ends
    the same as an uninterrupted run's."""
    state = load_resume(run.last_path, run.key, run.log)
    if state is not None:
        run.model.load_state_dict(state["model"])
        run.opt.load_state_dict(state["optimizer"])
        run.sched.load_state_dict(state["scheduler"])
        set_rng_state(state["rng"])
        history, best_state = state["history"], state["best_state_dict"]
    else:
        history = [{"epoch": 0, **run.validate(), "seconds": 0.0}]
        best_state = None
        run.log(f"before training: {epoch_line(history[0], run.cfg['loss'])}")
    for record in history:
        log_live(live, record["epoch"], record)
    return history, best_state


def train_epoch(run: Run, epoch: int) -> dict:
    """One pass over the training folds, then the validation figures: the epoch's record for the history."""
    from tqdm import tqdm

    cfg, model, device = run.cfg, run.model, run.device
    t0 = time.perf_counter()
    run.sampler.set_epoch(epoch)
    run.net.train()
    augment = cfg["augment"]   # augmentations: training batches only, drawn from a generator seeded per epoch
    gen = augmentations.generator(cfg["seed"], epoch, run.rank, device) if augmentations.active(augment) else None
    sums = torch.zeros(4, dtype=torch.float64)  # objective * n, (1 - cos) * n, reconstruction * n, n
    for step, (x, t, i) in enumerate(tqdm(run.loader, desc=f"epoch {epoch}/{cfg['epochs']}", leave=False,
                                          disable=run.rank != 0)):
        x, t, i = x.to(device, non_blocking=True), t.to(device), i.to(device)
        if gen is not None:
            x = augmentations.augment(x, augment, gen, fill=model.lead_mean)
        objective, align, recon = forward_objective(run.net, model, x, t, i, cfg["loss"], run.recon_weight,
                                                    device, run.precision)
        if not torch.isfinite(objective):
            raise FloatingPointError(f"epoch {epoch}, step {step}: the {cfg['loss']} objective is "
                                     f"{objective.item()} (try a lower train.lr)")
        run.opt.zero_grad(set_to_none=True)
        objective.backward()
        run.opt.step()
        run.sched.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, MAX_LOGIT_SCALE)
            sums += torch.tensor([objective.item() * len(x), align * len(x),
                                  (recon.item() if recon is not None else 0.0) * len(x), len(x)],
                                 dtype=torch.float64)
    if run.world > 1:  # every rank's share: the logged train figures are over the whole epoch
        sums = sums.to(device)
        dist.all_reduce(sums)
        sums = sums.cpu()
    record = {"epoch": epoch, "train/objective": float(sums[0] / sums[3]),
              "train/alignment_loss": float(sums[1] / sums[3])}
    if run.recon_weight:
        record["train/reconstruction_loss"] = float(sums[2] / sums[3])
    return {**record, **run.validate(), "train/temperature": 1.0 / model.scale().item(),
            "seconds": time.perf_counter() - t0}


def epoch_line(record: dict, loss: str) -> str:
    """An epoch's figures as printed: the objective, and for an aligned model the alignment loss (1 - cos) and the
    temperature (InfoNCE's only: the cosine loss has none); the supervised control has neither (no shared space), so
    it prints its BCE alone."""
    parts = [f"{split} objective {record[f'{split}/objective']:.4f}" for split in ("train", "val")
             if f"{split}/objective" in record]
    if loss != SUPERVISED:
        parts += [f"{split} 1-cos {record[f'{split}/alignment_loss']:.4f}" for split in ("train", "val")
                  if f"{split}/alignment_loss" in record]
        if "train/temperature" in record and "infonce" in loss:
            parts.append(f"temperature {record['train/temperature']:.4f}")
    parts += [f"{split} reconstruction {record[f'{split}/reconstruction_loss']:.4f}" for split in ("train", "val")
              if f"{split}/reconstruction_loss" in record]
    return ", ".join(parts)


def best_record(history: list[dict]) -> dict:
    """The epoch with the lowest validation objective (the first of equals); history[0] (before training) excluded."""
    return min(history[1:], key=lambda r: r["val/objective"])


def stop_reason(history: list[dict], patience: int) -> str | None:
    """Early stopping: why the run stops after the last epoch of `history`, or None to go on. It stops when the
    validation objective has not improved on its best for `patience` epochs (0: never; train.epochs stays the
    maximum). A function of the history alone, which last.pt keeps: a resumed run decides as the uninterrupted run
    did, including a stop decided before the kill."""
    if patience <= 0 or len(history) < 2:
        return None
    best, last = best_record(history), history[-1]["epoch"]
    if last - best["epoch"] < patience:
        return None
    return (f"the validation objective has not improved for {last - best['epoch']} epoch(s) (train.patience = "
            f"{patience}): best {best['val/objective']:.4f} at epoch {best['epoch']}")


def agree(run: Run, reason: str | None) -> str | None:
    """Rank 0's stop decision on every process (the validation figures are computed on each process; a different
    last bit must not leave one rank training alone)."""
    if run.world == 1:
        return reason
    box = [reason]
    dist.broadcast_object_list(box, src=0, device=run.device if run.device.type == "cuda" else None)
    return box[0]


def finish(run: Run, history: list[dict], best_state: dict, out_dir, stopped: bool = False) -> dict:
    """Write the best epoch's weights to out_dir/model.pt (rank 0) and return the metrics of metrics/train.json;
    `stopped`: early stopping ended the run after history's last epoch."""
    best = best_record(history)
    # what the checkpoint keeps: no timing, so that the same run gives a byte-identical model.pt
    results = {"alignment_loss_initial": history[0]["val/alignment_loss"],
               "alignment_loss": best["val/alignment_loss"], "val_objective": best["val/objective"],
               "best_epoch": best["epoch"], "epochs": run.cfg["epochs"], "epochs_run": history[-1]["epoch"],
               "stopped_epoch": history[-1]["epoch"] if stopped else 0,   # 0: ran all train.epochs
               "alignment_loss_last": history[-1]["val/alignment_loss"],
               "val_objective_last": history[-1]["val/objective"],
               "temperature": best["train/temperature"],
               "n_train": int(len(run.train_rows)), "n_val": int(len(run.val_rows)), "world_size": run.world}
    if run.recon_weight:   # the decoder's validation MSE on the normalised signal, at the best and the last epoch
        results.update(reconstruction_loss=best["val/reconstruction_loss"],
                       reconstruction_loss_last=history[-1]["val/reconstruction_loss"])
    if run.cfg["loss"] == SUPERVISED:   # no shared space: no alignment figure, no temperature
        results = {k: None if k.startswith("alignment_loss") or k == "temperature" else v for k, v in results.items()}
    if run.rank == 0:
        run.model.load_state_dict(best_state)
        save_checkpoint(Path(out_dir) / art.MODEL.name, run.model, epoch=best["epoch"], key=run.key, metrics=results,
                        objective=run.cfg["loss"])
    seconds = sum(r["seconds"] for r in history)
    metrics = {"objective": run.cfg["loss"], **results, **precision_record(run.cfg["precision"], run.device),
               "train_seconds": round(seconds, 3), "epoch_seconds": round(seconds / max(1, len(history) - 1), 3)}
    if run.world > 1:
        dist.barrier()
    return metrics


def train(signals, text_emb, folds, cfg, out_dir=art.MODEL_DIR, state_dir=art.TRAIN_STATE, live=None,
          lead_mean=None, lead_std=None, log=print, ids=None) -> dict:
    """Train an AlignmentModel; writes out_dir/model.pt (best epoch) and state_dir/last.pt (resume state) on rank 0
    and returns the metrics of metrics/train.json. signals [N, 12, T] raw mV (memmap ok), text_emb [N, d], folds [N]
    row-aligned; lead_mean/lead_std: per-lead normalisation from the training folds (default 0/1); ids [N]: the
    report identities (data/text/record_ids.npy; default: equal ids for bit-identical text embedding rows)."""
    run = setup(signals, text_emb, folds, cfg, ids, state_dir, lead_mean, lead_std, log)
    history, best_state = start(run, live)
    stopped = agree(run, stop_reason(history, run.cfg["patience"]))   # a resumed run that had decided to stop
    for epoch in range(len(history), run.cfg["epochs"] + 1):
        if stopped:
            break
        record = train_epoch(run, epoch)
        history.append(record)
        best_epoch = best_record(history)["epoch"]
        if best_epoch == epoch:
            best_state = {k: v.detach().cpu().clone() for k, v in run.model.state_dict().items()}
        if run.rank == 0:
            save_resume(run.last_path, run.model, run.opt, run.sched, epoch, run.key, history, best_state)
        run.log(f"epoch {epoch}/{run.cfg['epochs']}: {epoch_line(record, run.cfg['loss'])} ({record['seconds']:.1f} s)"
                + ("  *best*" if best_epoch == epoch else ""))
        log_live(live, epoch, record)
        stopped = agree(run, stop_reason(history, run.cfg["patience"]))
    if stopped:
        run.log(f"early stop after epoch {history[-1]['epoch']}/{run.cfg['epochs']}: {stopped}; "
                f"the weights of epoch {best_record(history)['epoch']} are kept")
    return finish(run, history, best_state, out_dir, stopped is not None)


def save_resume(path: Path, model, opt, sched, epoch: int, key: str, history: list, best_state: dict) -> None:
    """last.pt, atomically: everything a killed run needs to continue exactly."""
    from .atomic import atomic_path

    state = {"key": key, "epoch": epoch, "model": model.state_dict(), "optimizer": opt.state_dict(),
             "scheduler": sched.state_dict(), "rng": rng_state(), "history": history, "best_state_dict": best_state}
    with atomic_path(path, suffix=".pt") as tmp:
        torch.save(state, tmp)
