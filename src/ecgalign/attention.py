"""The dual_attention encoder's attention weights as something a clinician can read, and a measure of how far they
can be trusted as an explanation.

- `attention_maps`: for one record, the cross-lead map (12 x 12; row i = how lead i's token mixes the other leads)
  and, per lead, the temporal attention each stretch of the trace receives (the mean over query tokens of the
  attention to each key token, spread over the samples the token covers; 1.0 = an even share).
- `lead_weights`: a lead's weight under the cross-lead attention = the attention it receives (column mean).
- `agreement`: per record, the Spearman rank correlation between those 12 lead weights and the leads' share of the
  absolute integrated gradients (ecgalign.attribution) of the record's nearest statement's cosine, and the overlap
  of the top-3 leads of each (chance: 3 x 3 / 12 = 0.75). Attention says where information is routed, integrated
  gradients what changes the output; agreement between them is evidence, disagreement a warning (Jain & Wallace
  2019, "Attention is not explanation").
"""
from __future__ import annotations

import numpy as np
import torch

from .dual_attention import DOWNSAMPLE
from .ptbxl import LEADS

TOP = 3   # leads compared in the top-k overlap


def attention_maps(model, signal: np.ndarray) -> dict:
    """{"leads": [12, 12], "time": [12, T]} of one record `signal` (12, T) in mV; ValueError for an encoder
    without attention."""
    x = torch.as_tensor(np.asarray(signal, dtype=np.float32))[None]
    model.eval()
    with torch.no_grad():
        model.encode_ecg(x)
    att = model.attention()
    if att is None:
        raise ValueError(f"a {model.config['encoder']} encoder has no attention weights: attention maps need "
                         f"ecg.encoder = dual_attention")
    leads = att["leads"][0].float().numpy()
    received = att["time"][0].float().mean(dim=1).numpy()          # [12, tokens]: mean over queries
    tokens = received.shape[1]
    per_token = model.encoder.pool * DOWNSAMPLE          # samples of the record one token covers
    time = np.repeat(received * tokens, per_token, axis=1)[:, : signal.shape[1]]
    return {"leads": leads, "time": time.astype(np.float32)}


def lead_weights(leads: np.ndarray) -> np.ndarray:
    """Attention each lead receives: the column mean of the cross-lead map (sums to 1)."""
    return np.asarray(leads).mean(axis=-2)


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    rho = spearmanr(a, b).statistic
    return float(rho) if np.isfinite(rho) else float("nan")


def top_overlap(a: np.ndarray, b: np.ndarray, k: int = TOP) -> int:
    return len(set(np.argsort(-a)[:k]) & set(np.argsort(-b)[:k]))


def agreement(model, signals, rows, keys: np.ndarray, steps: int = 16, seed: int = 0, n_boot: int = 1000) -> dict:
    """Attention vs integrated gradients over `rows` of `signals` (module docstring); keys: the statements'
    projected text embeddings (the nearest one to each record's e_ecg is explained). Returns the per-record
    figures and their means with percentile bootstrap intervals, and the chance levels."""
    from tqdm import tqdm

    from .attribution import integrated_gradients
    from .evaluation import unit

    keys = unit(np.asarray(keys, dtype=np.float64))
    rho, overlap = [], []
    for row in tqdm(rows, desc="attention vs IG", unit="record"):
        x = np.asarray(signals[row], dtype=np.float32)
        att = lead_weights(attention_maps(model, x)["leads"])
        with torch.no_grad():
            e = model.project_ecg(model.encode_ecg(torch.from_numpy(x)[None]))[0].double().numpy()
        key = keys[int(np.argmax(keys @ unit(e[None])[0]))]
        attr, _ = integrated_gradients(model, x, key.astype(np.float32), steps=steps)
        ig = np.abs(attr).sum(axis=1)
        rho.append(spearman(att, ig))
        overlap.append(top_overlap(att, ig))
    rho, overlap = np.array(rho), np.array(overlap, dtype=float)
    g = np.random.default_rng(seed)
    idx = g.integers(0, len(rows), (n_boot, len(rows)))

    def summary(v):
        boot = np.nanmean(v[idx], axis=1)
        return {"mean": round(float(np.nanmean(v)), 4), "ci_low": round(float(np.percentile(boot, 2.5)), 4),
                "ci_high": round(float(np.percentile(boot, 97.5)), 4)}
    return {"n_records": int(len(rows)), "ig_steps": steps,
            "spearman": summary(rho), "spearman_chance": 0.0,
            f"top{TOP}_overlap": summary(overlap), f"top{TOP}_overlap_chance": TOP * TOP / len(LEADS),
            "share_positive_spearman": round(float(np.mean(rho > 0)), 4),
            "per_record": {"spearman": [round(float(v), 4) for v in rho], f"top{TOP}_overlap": overlap.tolist()}}


def plot_lead_attention(leads: np.ndarray, path, title: str = "") -> None:
    """The 12 x 12 cross-lead attention map as a PNG (rows: the attending lead; columns: the lead attended to)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.6, 5))
    im = ax.imshow(leads, cmap="viridis", vmin=0)
    names = [n if n[0] != "A" else "a" + n[1:] for n in LEADS]
    ax.set_xticks(range(len(names)), names, rotation=90)
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("attended lead")
    ax.set_ylabel("attending lead")
    ax.set_title(title or "cross-lead attention", fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046, label="attention weight (rows sum to 1)")
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)
