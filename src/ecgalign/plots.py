"""The evaluate stage's PNG figures (matplotlib, Agg backend: no display needed), each written atomically."""
from __future__ import annotations

from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .atomic import atomic_path  # noqa: E402


def _save(fig, path: str | Path) -> Path:
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=120, bbox_inches="tight", format="png")
    plt.close(fig)
    return Path(path)


def read_curve(path: str | Path) -> tuple[np.ndarray, np.ndarray] | None:
    """(steps, values) of a dvclive metric .tsv (columns [timestamp,] step, <name>); the last row of a repeated step
    wins (a resumed run logs it again). None when the file is absent or empty."""
    import pandas as pd

    path = Path(path)
    if not path.exists():
        return None
    df = pd.read_csv(path, sep="\t")
    if df.empty or "step" not in df.columns:
        return None
    df = df.drop_duplicates("step", keep="last").sort_values("step")
    return df["step"].to_numpy(), df[df.columns[-1]].to_numpy(dtype=float)


def plot_loss(curves: dict[str, tuple[np.ndarray, np.ndarray] | None], path: str | Path,
              name: str = "alignment loss") -> Path | None:
    """A loss (`name`) per epoch, one line per split ({"train": (steps, values), "val": ...}); None (and no file)
    when no curve is present."""
    curves = {k: v for k, v in curves.items() if v is not None}
    if not curves:
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, (steps, values) in curves.items():
        ax.plot(steps, values, marker="o", ms=3, label=name)
    ax.set(xlabel="epoch", ylabel=name, title=f"{name[0].upper()}{name[1:]} per epoch")
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, path)


def pca_2d(x: np.ndarray) -> np.ndarray:
    """The first two principal components of the rows of x (n x 2)."""
    x = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    return x @ vt[:2].T


def plot_embedding_map(e_ecg: np.ndarray, e_text: np.ndarray | None, classes: list[str], path: str | Path,
                       max_points: int = 2000, seed: int = 0) -> Path:
    """PCA of unit ECG and text embeddings together (one shared 2-D basis), ECGs as dots and texts as crosses,
    coloured by each record's superclass; at most max_points records (a fixed random subset). e_text None (the
    supervised control: no text side): the ECG embeddings alone."""
    from .evaluation import unit

    n = len(e_ecg)
    rows = np.sort(np.random.default_rng(seed).permutation(n)[:max_points])
    texts = [] if e_text is None else [unit(e_text[rows])]
    xy = pca_2d(np.concatenate([unit(e_ecg[rows]), *texts]))
    ecg_xy, text_xy = xy[:len(rows)], xy[len(rows):]
    labels = np.asarray(classes, dtype=object)[rows]
    fig, ax = plt.subplots(figsize=(7, 6))
    for i, c in enumerate(sorted(set(labels), key=lambda c: (c == "none", c))):
        m = labels == c
        color = f"C{i}"
        ax.scatter(*ecg_xy[m].T, s=8, alpha=0.6, color=color, label=f"{c} ECG ({m.sum()})")
        if len(text_xy):
            ax.scatter(*text_xy[m].T, s=30, marker="x", alpha=0.8, color=color, label=f"{c} text")
    what = "both modalities" if e_text is not None else "the ECG embeddings (no text side)"
    ax.set(xlabel="PC 1", ylabel="PC 2", title=f"Test embeddings, PCA of {what} ({len(rows)} records)")
    ax.legend(fontsize=7, ncol=2, markerscale=1.5)
    return _save(fig, path)


def plot_not_defined(path: str | Path, title: str, reason: str) -> Path:
    """A figure that says why it has no content (a declared plot whose figure is not defined for this model)."""
    import textwrap

    fig, ax = plt.subplots(figsize=(6, 3))
    ax.axis("off")
    ax.set_title(title)
    ax.text(0.5, 0.5, "not defined: " + "\n".join(textwrap.wrap(reason, 60)), ha="center", va="center", fontsize=10)
    return _save(fig, path)


def plot_roc(labels: np.ndarray, scores: np.ndarray, classes, path: str | Path, title: str = "Zero-shot ROC") -> Path:
    """One ROC curve per class with both label values present, AUC in the legend."""
    from sklearn.metrics import roc_auc_score, roc_curve

    fig, ax = plt.subplots(figsize=(5.5, 5))
    for j, c in enumerate(classes):
        y = labels[:, j]
        if y.all() or not y.any():
            continue
        fpr, tpr, _ = roc_curve(y, scores[:, j])
        ax.plot(fpr, tpr, label=f"{c} (AUC {roc_auc_score(y, scores[:, j]):.3f}, n+={int(y.sum())})")
    ax.plot([0, 1], [0, 1], "k--", lw=0.8, label="chance")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=title, xlim=(0, 1), ylim=(0, 1.01))
    ax.legend(fontsize=8, loc="lower right")
    return _save(fig, path)


def plot_tasks(metrics: dict, tasks, fraction_keys: list[str], path: str | Path) -> Path:
    """One panel per benchmark task: zero-shot and linear-probe macro AUC at each label fraction, trained (filled)
    and untrained (open markers), with the 95 % bootstrap intervals as error bars."""
    cols = 3
    rows = (len(tasks) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False, sharey=True)
    for ax, task in zip(axes.ravel(), tasks):
        keys = [f"zero_shot_{task}_auc_macro"] + [f"linear_probe_{task}_{f}_auc_macro" for f in fraction_keys]
        names = ["zero-shot"] + [f"probe {f}" for f in fraction_keys]
        x = np.arange(len(keys))
        for shift, prefix, label, face in ((-0.12, "", "trained", None), (0.12, "baseline_", "untrained", "none")):
            v = np.array([np.nan if metrics.get(prefix + k) is None else metrics[prefix + k] for k in keys])
            lo = np.array([metrics.get(prefix + k + "_ci_low", np.nan) or np.nan for k in keys])
            hi = np.array([metrics.get(prefix + k + "_ci_high", np.nan) or np.nan for k in keys])
            err = np.nan_to_num(np.stack([v - lo, hi - v]), nan=0.0)
            ax.errorbar(x + shift, v, yerr=err, fmt="o", color="C0" if face is None else "C3", mfc=face, capsize=3,
                        label=label)
        ax.axhline(0.5, color="k", lw=0.6, ls="--")
        ax.set_xticks(x, names, rotation=30, fontsize=8)
        ax.set_title(f"{task} ({metrics.get(task + '_n_classes', '?')} classes)", fontsize=10)
        ax.grid(alpha=0.3)
    for ax in axes.ravel()[len(tasks):]:
        ax.axis("off")
    axes[0, 0].set_ylabel("macro AUC (test, 95 % CI)")
    axes[0, 0].legend(fontsize=8, loc="lower right")
    fig.suptitle("PTB-XL benchmark tasks: zero-shot and linear probe by label fraction")
    fig.tight_layout()
    return _save(fig, path)
