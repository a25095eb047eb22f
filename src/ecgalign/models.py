"""The ECG side of the shared space: a 1D-CNN encoder (cnn1d or xresnet1d), the two projection heads and the
temperature, packed in one AlignmentModel whose checkpoint is self-contained.

    raw mV x[B, 12, T] --(lead_mean/lead_std buffers)--> encoder --> z_ecg[B, embed_dim] --> e_ecg[B, proj_dim]
    text embedding t[B, text_dim] ----------------------------------------------------> e_text[B, proj_dim]

The supervised control (train.loss = supervised, config["objective"] = "supervised") is the same class with the
ECG head as a linear classifier on z_ecg (ecg_proj: embed_dim -> the number of SCP codes) and no text head:

    raw mV x[B, 12, T] --> encoder --> z_ecg[B, embed_dim] --> logits[B, n_codes]   (e_ecg of a supervised model)

Normalisation lives in the model (buffers from the training folds' stats), so callers always pass raw millivolts
and a checkpoint needs nothing else to encode new ECGs. Projections are not normalised: the losses do that.
"""
from __future__ import annotations

import io

import math
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

from .errors import CheckpointError  # re-exported, and raised here
from .params import ENCODERS

MAX_LOGIT_SCALE = math.log(100.0)  # CLIP: 1/temperature is clamped at 100


def conv_bn(n_in: int, n_out: int, kernel: int, stride: int = 1, act: bool = True, zero_bn: bool = False):
    """Conv1d (no bias) + BatchNorm (+ ReLU): the unit both encoders are built from."""
    bn = nn.BatchNorm1d(n_out)
    nn.init.constant_(bn.weight, 0.0 if zero_bn else 1.0)  # zero_bn: a residual block starts as the identity
    layers = [nn.Conv1d(n_in, n_out, kernel, stride=stride, padding=kernel // 2, bias=False), bn]
    return nn.Sequential(*layers, nn.ReLU(inplace=True)) if act else nn.Sequential(*layers)


class CNN1d(nn.Module):
    """Five conv blocks (kernel 7, stride 2: T/32 steps left), global average pooling, Linear to embed_dim."""

    def __init__(self, n_leads: int, embed_dim: int, channels=(32, 64, 128, 256, 256), kernel: int = 7):
        super().__init__()
        sizes = (n_leads, *channels)
        self.features = nn.Sequential(*[conv_bn(a, b, kernel, stride=2) for a, b in zip(sizes, sizes[1:])])
        self.fc = nn.Linear(channels[-1], embed_dim)

    def forward(self, x):
        return self.fc(self.features(x).mean(dim=-1))


class ResBlock(nn.Module):
    """xresnet's residual block (fastai / Strodthoff et al. 2020): basic (expansion 1) or bottleneck (4);
    the shortcut average-pools when striding and uses a 1x1 conv when the width changes."""

    def __init__(self, expansion: int, n_in: int, n_hidden: int, stride: int, kernel: int):
        super().__init__()
        n_out = n_hidden * expansion
        if expansion == 1:
            self.convs = nn.Sequential(conv_bn(n_in, n_hidden, kernel, stride),
                                       conv_bn(n_hidden, n_out, kernel, act=False, zero_bn=True))
        else:
            self.convs = nn.Sequential(conv_bn(n_in, n_hidden, 1), conv_bn(n_hidden, n_hidden, kernel, stride),
                                       conv_bn(n_hidden, n_out, 1, act=False, zero_bn=True))
        pool = nn.AvgPool1d(2, ceil_mode=True) if stride != 1 else nn.Identity()
        proj = conv_bn(n_in, n_out, 1, act=False) if n_in != n_out else nn.Identity()
        self.shortcut = nn.Sequential(pool, proj)

    def forward(self, x):
        return F.relu(self.convs(x) + self.shortcut(x))


# name: (expansion, blocks per stage). "xresnet1d" in params.yaml means XRESNET_DEFAULT. Measured on 2 CPU threads,
# one training step at batch 64, T=1000: xresnet1d18 0.94 s, xresnet1d34 1.7 s, xresnet1d50 22 s (bottleneck blocks
# up to 2048 channels: ~100 min an epoch of PTB-XL), so the CPU default is the 18-layer variant; the checkpoint
# config records the depth.
XRESNET = {"xresnet1d18": (1, (2, 2, 2, 2)), "xresnet1d34": (1, (3, 4, 6, 3)), "xresnet1d50": (4, (3, 4, 6, 3))}
XRESNET_DEFAULT = "xresnet1d18"


class XResNet1d(nn.Module):
    """xresnet1d: a stem of 3 convs (the first strided) + max-pool, 4 residual stages (64-512 channels x expansion,
    stride 2 from the second), kernel 5, concat average+max pooling head, Linear to embed_dim."""

    def __init__(self, n_leads: int, embed_dim: int, depth: str = XRESNET_DEFAULT, kernel: int = 5):
        super().__init__()
        expansion, layers = XRESNET[depth]
        stem = (n_leads, 32, 32, 64)
        self.stem = nn.Sequential(*[conv_bn(a, b, kernel, stride=2 if i == 0 else 1)
                                    for i, (a, b) in enumerate(zip(stem, stem[1:]))],
                                  nn.MaxPool1d(3, stride=2, padding=1))
        blocks, n_in = [], 64
        for stage, (n_hidden, n_blocks) in enumerate(zip((64, 128, 256, 512), layers)):
            for i in range(n_blocks):
                blocks.append(ResBlock(expansion, n_in, n_hidden, 2 if stage > 0 and i == 0 else 1, kernel))
                n_in = n_hidden * expansion
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(2 * n_in, embed_dim)

    def forward(self, x):
        h = self.blocks(self.stem(x))
        return self.fc(torch.cat([h.mean(dim=-1), h.amax(dim=-1)], dim=1))


class AlignmentModel(nn.Module):
    """ECG encoder + ECG and text projection heads + CLIP's learnable logit scale (log 1/temperature); for the
    supervised control (config["objective"] == "supervised") the ECG head is the class head and there is no text
    head (text_proj is None)."""

    def __init__(self, config: dict, lead_mean=None, lead_std=None):
        super().__init__()
        self.config = dict(config)
        c = self.config
        n = c["n_leads"]
        if c["encoder"] == "cnn1d":
            self.encoder = CNN1d(n, c["embed_dim"])
        elif c["encoder"] == "xresnet1d":
            self.encoder = XResNet1d(n, c["embed_dim"], c.get("depth", XRESNET_DEFAULT))
        elif c["encoder"] == "dual_attention":
            from .dual_attention import DualAttention
            self.encoder = DualAttention(n, c["embed_dim"], c["length"], c["width"])
        else:
            raise ValueError(f"ecg.encoder = {c['encoder']!r} is not one of {', '.join(ENCODERS)}")
        self.ecg_proj = nn.Linear(c["embed_dim"], c["proj_dim"])
        self.text_proj = None if self.supervised else nn.Linear(c["text_dim"], c["proj_dim"])
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / c["temperature"])),
                                        requires_grad=c["learn_temperature"])
        self.register_buffer("lead_mean", _lead_vector(lead_mean, 0.0, n, "lead_mean"))
        self.register_buffer("lead_std", _lead_vector(lead_std, 1.0, n, "lead_std"))
        self.decoder = None
        if c.get("reconstruct"):   # the reconstruction term (train.recon_weight > 0): z -> the normalised signal
            from .dual_attention import Decoder
            self.decoder = Decoder(c["embed_dim"], n, c["length"], c["width"])

    @property
    def supervised(self) -> bool:
        """True for the supervised control (no text head; project_ecg gives class logits)."""
        return self.config.get("objective") == "supervised"

    def normalise(self, x):
        """Raw millivolts [B, n_leads, T] -> what the encoder sees (training-fold lead means and SDs)."""
        return (x - self.lead_mean[:, None]) / self.lead_std[:, None]

    def encode_ecg(self, x):
        """Raw millivolts [B, n_leads, T] -> z_ecg [B, embed_dim]."""
        return self.encoder(self.normalise(x))

    def attention(self) -> dict | None:
        """The dual_attention encoder's attention weights of its last forward ("leads" [B, 12, 12], "time"
        [B, 12, tokens, tokens]); None for encoders without attention."""
        return getattr(self.encoder, "last_attention", None)

    def reconstruction_error(self, x, z=None):
        """Per record and lead, the mean squared error of the decoder's reconstruction of the normalised signal
        [B, n_leads] (z: the encoding of x, if already computed)."""
        if self.decoder is None:
            raise CheckpointError("this model has no decoder: it was trained with train.recon_weight = 0")
        xn = self.normalise(x)
        z = self.encoder(xn) if z is None else z
        return ((self.decoder(z)[..., : xn.shape[-1]].float() - xn.float()) ** 2).mean(dim=-1)   # crops: their start

    def project_ecg(self, z):
        return self.ecg_proj(z)

    def project_text(self, t):
        if self.text_proj is None:
            raise CheckpointError("a supervised model (train.loss = supervised) has no text head: text projections, "
                                  "zero-shot and ECG -> text retrieval are not defined for it; use an aligned model")
        return self.text_proj(t)

    def scale(self):
        """exp(logit_scale), clamped at 100 (CLIP)."""
        return self.logit_scale.clamp(max=MAX_LOGIT_SCALE).exp()

    def forward(self, x, t, reconstruct: bool = False):
        """(e_ecg, e_text); for the supervised control (class logits, t unchanged: t is the label matrix).
        reconstruct=True adds a third output, the reconstruction's squared error per record and lead [B, n_leads]
        (through forward, so that DDP synchronises the decoder's gradients too)."""
        z = self.encode_ecg(x)
        out = (self.project_ecg(z), t if self.supervised else self.project_text(t))
        return (*out, self.reconstruction_error(x, z)) if reconstruct else out


def _lead_vector(values, default: float, n: int, name: str) -> torch.Tensor:
    if values is None:
        return torch.full((n,), default)
    v = torch.as_tensor(np.asarray(values, dtype=np.float32))
    if v.shape != (n,):
        raise ValueError(f"{name} must have {n} values (one per lead), got shape {tuple(v.shape)}")
    if not torch.isfinite(v).all() or (name == "lead_std" and (v <= 0).any()):
        what = "non-finite or non-positive" if name == "lead_std" else "non-finite"
        raise ValueError(f"{name} has {what} values: {v.tolist()}")
    return v


def build_model(encoder: str, embed_dim: int, text_dim: int, proj_dim: int, temperature: float = 0.07,
                learn_temperature: bool = True, lead_mean=None, lead_std=None, n_leads: int = 12,
                n_classes: int | None = None, length: int | None = None,
                reconstruct: bool = False, width: int = 4) -> AlignmentModel:
    """An AlignmentModel; lead_mean/lead_std (per-lead mV, from the training folds) default to 0/1. With
    n_classes: the supervised control (a class head of n_classes logits on z_ecg; text_dim and proj_dim unused).
    `length` (samples a lead) and `width` (ecg.width) size the dual_attention encoder and the decoder; reconstruct:
    add the decoder."""
    config = dict(encoder=encoder, embed_dim=int(embed_dim), text_dim=int(text_dim), proj_dim=int(proj_dim),
                  temperature=float(temperature), learn_temperature=bool(learn_temperature), n_leads=int(n_leads))
    if n_classes is not None:
        config.update(objective="supervised", text_dim=None, proj_dim=int(n_classes), learn_temperature=False)
    if encoder == "xresnet1d":
        config["depth"] = XRESNET_DEFAULT
    if encoder == "dual_attention" or reconstruct:   # only these configs carry the length: older ones stay as they were
        if length is None:
            raise ValueError(f"a {encoder} encoder{' with a decoder' if reconstruct else ''} needs the signal length")
        config.update(length=int(length), width=int(width))
    if reconstruct:
        config["reconstruct"] = True
    return AlignmentModel(config, lead_mean, lead_std)


class GlobalBatchNorm(nn.BatchNorm1d):
    """BatchNorm1d whose training statistics are those of the global batch over all DDP ranks, so that
    train.batch_size is the encoder's batch, as on one process. torch.nn.SyncBatchNorm does this on GPUs only (its
    kernels have no CPU version); this is the same computation for CPU processes (gloo): each rank's count, mean and
    sum of squared deviations are gathered with torch.distributed.nn.all_gather (which carries the gradient back to
    every rank, as SyncBatchNorm's backward does) and combined exactly (Chan et al.'s parallel variance). In eval
    mode, or without a process group of more than one process, it is plain BatchNorm1d."""

    def forward(self, x):
        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        import torch.distributed.nn

        dims, shape, c = [0, *range(2, x.dim())], [1, -1] + [1] * (x.dim() - 2), x.shape[1]
        xf = x.float()
        mean = xf.mean(dims)
        m2 = ((xf - mean.view(shape)) ** 2).sum(dims)
        local = torch.cat([mean.new_tensor([xf.numel() / c]), mean, m2])
        stats = torch.stack(torch.distributed.nn.all_gather(local))   # [world, 1 + 2c]
        counts, means, m2s = stats[:, :1], stats[:, 1:1 + c], stats[:, 1 + c:]
        n = counts.sum()
        g_mean = (counts * means).sum(0) / n
        g_var = (m2s + counts * (means - g_mean) ** 2).sum(0) / n   # biased, as BatchNorm normalises
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.mul_(1 - m).add_(m * g_mean)
                self.running_var.mul_(1 - m).add_(m * g_var * n / (n - 1).clamp(min=1))   # unbiased, as BatchNorm
        y = (xf - g_mean.view(shape)) * torch.rsqrt(g_var + self.eps).view(shape)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y.to(x.dtype)


def sync_batchnorm(model: nn.Module, device) -> nn.Module:
    """`model` with every BatchNorm1d computing its statistics over the global batch of all DDP ranks: torch's
    SyncBatchNorm on CUDA, GlobalBatchNorm elsewhere. The parameters and buffers are the same tensors, so the
    state_dict (and every checkpoint) keeps its keys and loads into a plain model."""
    if torch.device(device).type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    if isinstance(model, nn.BatchNorm1d) and not isinstance(model, GlobalBatchNorm):
        bn = GlobalBatchNorm(model.num_features, model.eps, model.momentum, model.affine, model.track_running_stats)
        if model.affine:
            bn.weight, bn.bias = model.weight, model.bias
        if model.track_running_stats:
            bn.running_mean, bn.running_var = model.running_mean, model.running_var
            bn.num_batches_tracked = model.num_batches_tracked
        return bn.train(model.training)
    for name, child in model.named_children():
        model.add_module(name, sync_batchnorm(child, device))
    return model


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside a DistributedDataParallel wrapper (or the model itself)."""
    return getattr(model, "module", model)


def save_checkpoint(path, model: nn.Module, **extra) -> None:
    """{"config", "state_dict", **extra} written atomically; loadable with torch.load(weights_only=True)."""
    from .atomic import atomic_path

    model = unwrap(model)
    buffer = io.BytesIO()  # saved through a buffer: torch names the zip's entries after the (random) file name
    torch.save({"config": model.config, "state_dict": model.state_dict(), **extra}, buffer)
    with atomic_path(path, suffix=".pt") as tmp:
        tmp.write_bytes(buffer.getvalue())


def read_checkpoint(path, map_location="cpu") -> dict:
    """torch.load(weights_only=True) of a checkpoint dict; CheckpointError naming the file if it is unusable."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: checkpoint not found (run the train stage first: dvc repro train)")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # truncated zip, random bytes, pickled objects weights_only refuses ...
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(e).__name__}: {str(e)[:200]})") from None
    if not isinstance(ckpt, dict) or not {"config", "state_dict"} <= set(ckpt):
        raise CheckpointError(f"{path}: not a model checkpoint (expected a dict with 'config' and 'state_dict')")
    return ckpt


def load_model(path, map_location="cpu", encoder: str | None = None) -> AlignmentModel:
    """The AlignmentModel saved at `path` (eval mode). `encoder`, if given, must match the checkpoint's."""
    ckpt = read_checkpoint(path, map_location)
    config = ckpt["config"]
    if encoder is not None and config.get("encoder") != encoder:
        raise CheckpointError(f"{path}: checkpoint holds a {config.get('encoder')!r} encoder, but ecg.encoder = "
                              f"{encoder!r}; retrain (dvc repro train) or set ecg.encoder={config.get('encoder')}")
    try:
        model = AlignmentModel(config)
        model.load_state_dict(ckpt["state_dict"])
    except (KeyError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{path}: the weights do not fit the stored config {config} ({str(e)[:300]})") from None
    return model.eval()


def encode_all(model: AlignmentModel, signals, batch_size: int = 256, device="cpu", rows=None,
               precision: str = "fp32", reconstruction: bool = False):
    """(z_ecg, e_ecg) float32 arrays for `rows` (default: all) of `signals` [N, 12, T] raw mV (a memmap is fine),
    without gradients, in batches, in `precision` ('fp32' | 'bf16': ecgalign.precision); reconstruction=True adds
    a third array, the decoder's squared error per record and lead [N, 12] (AlignmentModel.reconstruction_error)."""
    from tqdm import tqdm

    from .precision import autocast

    model = unwrap(model).to(device).eval()
    rows = np.arange(len(signals)) if rows is None else np.asarray(rows)
    z_out = np.zeros((len(rows), model.config["embed_dim"]), dtype=np.float32)
    e_out = np.zeros((len(rows), model.config["proj_dim"]), dtype=np.float32)
    r_out = np.zeros((len(rows), model.config["n_leads"]), dtype=np.float32) if reconstruction else None
    with torch.no_grad():
        for start in tqdm(range(0, len(rows), batch_size), desc="encode ECGs", unit="batch"):
            x = torch.from_numpy(np.ascontiguousarray(signals[rows[start:start + batch_size]], dtype=np.float32))
            with autocast(torch.device(device), precision):
                z = model.encode_ecg(x.to(device))
                e = model.project_ecg(z)
                if reconstruction:
                    r_out[start:start + len(x)] = model.reconstruction_error(x.to(device), z).float().cpu().numpy()
            z_out[start:start + len(x)] = z.float().cpu().numpy()
            e_out[start:start + len(x)] = e.float().cpu().numpy()
    return (z_out, e_out, r_out) if reconstruction else (z_out, e_out)
