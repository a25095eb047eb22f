"""The study's ECG network (Chen et al. 2024, arXiv 2403.10581; design read from github cherise215/LLM-ECG-Dual-
Attention, model/ecg_net_attention.py; this is an independent implementation) and the signal decoder the
reconstruction term uses with every encoder.

DualAttention, x [B, 12, T] (normalised) -> z [B, embed_dim]:

    per-lead conv (k 5, `width` features a lead) -> lead-mixing conv -> 5 residual blocks, each halving time and
    keeping the 12 leads as an axis (weights shared across leads; features 4 -> 8 -> 16 -> 16 -> 16 -> 16)
    -> h [B, 12 leads, d = 16, T/32 tokens]
    -> twelve lead-specific temporal self-attention blocks (pre-LayerNorm transformer block per lead, its own
       weights, over that lead's T/32 time tokens)                            -> a [B, 12, d, T/32]
    -> one cross-lead self-attention block over 12 lead tokens of h (a token = a lead's d x T/32 features)
                                                                                -> c [B, 12, d, T/32]
    -> a + c -> 1x1 conv to embed_dim/2, then average and max over time, concatenated -> z

Its last forward's attention weights (averaged over heads) are kept in `last_attention`:
"leads" [B, 12, 12] (row i: how lead i attends to the other leads) and "time" [B, 12, T/32, T/32] (per lead,
query token x key token); rows sum to 1.

Length: the study pads 1,000 samples (100 Hz) to 1,024, a power of two, with zeros. Here the input is padded with
zeros (the training-fold mean: the signal is normalised) to the next multiple of 32 = 2^5, which is 1,024 at
100 Hz, the study's own input. A 500 Hz record (5,000 samples) is first averaged over blocks of 5 samples inside the
network (an anti-aliasing decimation to the 100 Hz grid the study designed its sizes for): without it, a cross-lead
token would hold 16 x 157 features and its MLP ~50 M weights. So both rates give 32 tokens of 320 ms each.

Width: `width` features a lead after the stem (ecg.width; the study: 4), 4 x width after the blocks, with one
attention head per 2 features up to 8 (the study's 8 heads of 2 at width 4). The decoder takes the same width.

Departures from the study's code, each deliberate: the per-lead conv's output is regrouped lead by lead (the study's
reshape interleaves features of different leads); positional-encoding dropout is plain dropout; the decoder's
output layer is linear (the study ends in GELU + InstanceNorm, which bound the output and renormalise it per record,
while the target here is the lead-normalised signal).
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


SIZES = {"width": 4, "blocks": 5, "dropout": 0.2}   # the study's defaults (base_feature_dim 4, 5 blocks, dropout 0.2)
HEAD_DIM = 2   # features per attention head: the study's 16 features a token over 8 heads


def heads(dim: int) -> int:
    """Attention heads for `dim` features a token: dim / 2 up to 8 (the study's 8 heads at width 4)."""
    return max(1, min(8, dim // HEAD_DIM))
DOWNSAMPLE = 2 ** SIZES["blocks"]


def decimation(length: int) -> int:
    """Samples averaged into one before the network: 5 at 500 Hz (5,000 samples), 1 at 100 Hz (1,000)."""
    return max(1, round(length / 1000))


def padded(length: int) -> int:
    """`length` rounded up to a multiple of 2^blocks (1,000 -> 1,024, the study's input length)."""
    return -(-length // DOWNSAMPLE) * DOWNSAMPLE


def sinusoid(n: int, dim: int) -> torch.Tensor:
    """The transformer's fixed sinusoidal position code [n, dim]."""
    pos = torch.arange(n, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    pe = torch.zeros(n, dim)
    pe[:, 0::2] = torch.sin(pos * freq)
    pe[:, 1::2] = torch.cos(pos * freq)[:, : dim // 2]
    return pe


class TimeConv(nn.Conv2d):
    """A Conv1d over time on [N, C, T], run as a (1, k) Conv2d in channels-last layout: with the few channels of
    this network (4-16), oneDNN's channels-last kernels are 1.2-5x faster here than Conv1d's (bench_training.py)."""

    def __init__(self, n_in: int, n_out: int, kernel: int, stride: int = 1, bias: bool = True):
        super().__init__(n_in, n_out, (1, kernel), stride=(1, stride), padding=(0, kernel // 2), bias=bias)

    def forward(self, x):
        return super().forward(x.unsqueeze(2).contiguous(memory_format=torch.channels_last)).squeeze(2)


class TimeConvTranspose(nn.ConvTranspose2d):
    """ConvTranspose1d (kernel 4, stride 2: doubles time) as TimeConv runs Conv1d."""

    def __init__(self, n_in: int, n_out: int):
        super().__init__(n_in, n_out, (1, 4), stride=(1, 2), padding=(0, 1))

    def forward(self, x):
        return super().forward(x.unsqueeze(2).contiguous(memory_format=torch.channels_last)).squeeze(2)


def conv_bn(n_in: int, n_out: int, kernel: int, stride: int = 1):
    """TimeConv (no bias) + BatchNorm over [N, C, T]."""
    return nn.Sequential(TimeConv(n_in, n_out, kernel, stride, bias=False), nn.BatchNorm1d(n_out))


class DownBlock(nn.Module):
    """The study's residual block on [B*12, C, T] (a conv over time, shared by all leads): two k-5 convs (the first
    strided) with BatchNorm and leaky ReLU, a max-pool + 1x1 conv shortcut, GELU after the sum."""

    def __init__(self, n_in: int, n_out: int, kernel: int = 5):
        super().__init__()
        self.convs = nn.Sequential(conv_bn(n_in, n_out, kernel, 2), nn.LeakyReLU(),
                                   conv_bn(n_out, n_out, kernel), nn.LeakyReLU())
        self.shortcut = nn.Sequential(nn.MaxPool1d(2), TimeConv(n_in, n_out, 1))

    def forward(self, x):
        return F.gelu(self.convs(x) + self.shortcut(x))


class UpBlock(nn.Module):
    """The decoder's residual block on [B*12, C, T]: a transposed conv doubling time (+ 1x1 conv) is the shortcut and
    the input of two k-5 convs; GELU after the sum (none on the output block, which keeps time)."""

    def __init__(self, n_in: int, n_out: int, up: bool = True, kernel: int = 5):
        super().__init__()
        self.up = nn.Sequential(TimeConvTranspose(n_in, n_out), TimeConv(n_out, n_out, 1)) if up else None
        width = n_out if up else n_in
        self.convs = nn.Sequential(conv_bn(width, n_out, kernel), nn.LeakyReLU(),
                                   conv_bn(n_out, n_out, kernel), nn.LeakyReLU())
        self.shortcut = None if up else TimeConv(n_in, n_out, 1)

    def forward(self, x):
        if self.up is not None:
            x = self.up(x)
            return F.gelu(self.convs(x) + x)
        return self.convs(x) + self.shortcut(x)


class LeadLinear(nn.Module):
    """One Linear layer per lead: [B, L, ..., n_in] -> [B, L, ..., n_out] with lead l's own weights."""

    def __init__(self, n_leads: int, n_in: int, n_out: int):
        super().__init__()
        bound = 1 / math.sqrt(n_in)   # nn.Linear's default init, per lead
        self.weight = nn.Parameter(torch.empty(n_leads, n_out, n_in).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(n_leads, n_out).uniform_(-bound, bound))

    def forward(self, x):
        return torch.einsum("bl...i,loi->bl...o", x, self.weight) + self.bias.view(
            1, self.bias.shape[0], *[1] * (x.dim() - 3), -1)


class LeadLayerNorm(nn.Module):
    """LayerNorm over the last axis with per-lead affine weights [L, d]."""

    def __init__(self, n_leads: int, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n_leads, dim))
        self.bias = nn.Parameter(torch.zeros(n_leads, dim))

    def forward(self, x):   # x [B, L, T, d]
        return F.layer_norm(x, x.shape[-1:]) * self.weight[:, None] + self.bias[:, None]


class LeadTimeAttention(nn.Module):
    """Twelve pre-LayerNorm transformer blocks, one per lead (own weights), each over its lead's time tokens;
    computed together with per-lead weight tensors (one einsum instead of 12 modules in a loop)."""

    def __init__(self, n_leads: int, dim: int, heads: int, dropout: float):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = LeadLayerNorm(n_leads, dim), LeadLayerNorm(n_leads, dim)
        self.qkv, self.out = LeadLinear(n_leads, dim, 3 * dim), LeadLinear(n_leads, dim, dim)
        self.mlp = nn.Sequential(LeadLinear(n_leads, dim, 4 * dim), nn.GELU(), nn.Dropout(dropout),
                                 LeadLinear(n_leads, 4 * dim, dim), nn.Dropout(dropout))
        self.drop = nn.Dropout(dropout)

    def forward(self, x):
        """x [B, L, T, d] -> (same shape, attention [B, L, T, T] averaged over heads)."""
        b, n_leads, t, d = x.shape
        x = self.drop(x + sinusoid(t, d).to(x)[None, None])
        q, k, v = self.qkv(self.norm1(x)).view(b, n_leads, t, 3, self.heads, d // self.heads).unbind(3)
        q, k, v = (a.transpose(2, 3) for a in (q, k, v))                       # [B, L, H, T, dh]
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d // self.heads), dim=-1)
        x = x + self.out((att @ v).transpose(2, 3).reshape(b, n_leads, t, d))
        return x + self.mlp(self.norm2(x)), att.mean(dim=2)


class CrossLeadAttention(nn.Module):
    """One pre-LayerNorm transformer block over the 12 lead tokens (a token = a lead's whole feature map)."""

    def __init__(self, n_leads: int, dim: int, heads: int, dropout: float):
        super().__init__()
        self.register_buffer("position", sinusoid(n_leads, dim), persistent=False)
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(4 * dim, dim),
                                 nn.Dropout(dropout))
        self.drop = nn.Dropout(dropout)

    def forward(self, x):
        """x [B, L, D] -> (same shape, attention [B, L, L] averaged over heads)."""
        x = self.drop(x + self.position.to(x.dtype))
        h = self.norm1(x)
        out, att = self.attn(h, h, h, need_weights=True, average_attn_weights=True)
        x = x + out
        return x + self.mlp(self.norm2(x)), att


class DualAttention(nn.Module):
    """The study's dual-attention ECG encoder (module docstring), for `length` samples a lead."""

    def __init__(self, n_leads: int, embed_dim: int, length: int, width: int = SIZES["width"],
                 dropout: float = SIZES["dropout"]):
        super().__init__()
        if embed_dim % 2:
            raise ValueError(f"ecg.embed_dim = {embed_dim}: the dual_attention encoder needs an even size "
                             f"(half from average, half from max pooling)")
        self.n_leads, self.width, self.length = n_leads, width, length
        self.pool = decimation(length)
        self.tokens = padded(-(-length // self.pool)) // DOWNSAMPLE
        self.stem = nn.Sequential(nn.Conv1d(n_leads, n_leads * width, 5, padding=2, groups=n_leads),
                                  nn.GroupNorm(n_leads, n_leads * width), nn.GELU(),
                                  nn.Conv1d(n_leads * width, n_leads * width, 5, padding=2),
                                  nn.GroupNorm(n_leads, n_leads * width), nn.GELU())
        sizes = [width * f for f in (1, 2, 4, 4, 4, 4)][: SIZES["blocks"] + 1]
        self.blocks = nn.Sequential(*[DownBlock(a, b) for a, b in zip(sizes, sizes[1:])])
        d = sizes[-1]
        self.time_attention = LeadTimeAttention(n_leads, d, heads(d), dropout)
        self.lead_attention = CrossLeadAttention(n_leads, d * self.tokens, heads(d), dropout)
        self.to_avg = nn.Conv1d(n_leads * d, embed_dim // 2, 1)
        self.to_max = nn.Conv1d(n_leads * d, embed_dim // 2, 1)
        self.last_attention: dict | None = None

    def forward(self, x):
        b, n_leads, t = x.shape
        if self.pool > 1:
            x = F.avg_pool1d(x, self.pool, ceil_mode=True)
        if x.shape[-1] > self.tokens * DOWNSAMPLE:
            raise ValueError(f"a record of {t} samples is longer than the {self.length} this dual_attention "
                             f"encoder was built for")
        x = F.pad(x, (0, self.tokens * DOWNSAMPLE - x.shape[-1]))   # shorter records (augment.crop) padded too
        h = self.stem(x).view(b * n_leads, self.width, -1)       # stem channels are grouped lead by lead
        h = self.blocks(h)                                         # [B*L, d, tokens]
        d, tokens = h.shape[1:]
        h = h.view(b, n_leads, d, tokens)
        a, time_att = self.time_attention(h.transpose(2, 3))      # [B, L, tokens, d]
        c, lead_att = self.lead_attention(h.reshape(b, n_leads, d * tokens))
        s = a.transpose(2, 3) + c.view(b, n_leads, d, tokens)     # [B, L, d, tokens]
        s = s.reshape(b, n_leads * d, tokens)
        self.last_attention = {"leads": lead_att.detach(), "time": time_att.detach()}
        return torch.cat([self.to_avg(s).mean(dim=-1), self.to_max(s).amax(dim=-1)], dim=1)


class Decoder(nn.Module):
    """z [B, z_dim] -> the normalised signal [B, 12, length]: two Linear layers to `width` features x 12 leads x
    (padded length / 32) tokens, five residual blocks each doubling time, an output block to one channel a lead, a
    per-lead 1x1 output conv (the study's decoder design); the padding is cut off."""

    def __init__(self, z_dim: int, n_leads: int, length: int, width: int = SIZES["width"]):
        super().__init__()
        self.n_leads, self.width, self.length = n_leads, width, length
        self.tokens = padded(length) // DOWNSAMPLE
        self.linear = nn.Sequential(nn.Linear(z_dim, width * self.tokens),
                                    nn.Linear(width * self.tokens, width * n_leads * self.tokens))
        self.blocks = nn.Sequential(*[UpBlock(width, width) for _ in range(SIZES["blocks"])],
                                    UpBlock(width, 1, up=False))
        self.out = nn.Conv1d(n_leads, n_leads, 1, groups=n_leads)

    def forward(self, z):
        b = z.shape[0]
        h = self.linear(z).view(b, self.n_leads, self.width, self.tokens).reshape(b * self.n_leads, self.width, -1)
        h = self.blocks(h).view(b, self.n_leads, -1)
        return self.out(h)[..., : self.length]
