"""ECG printouts (matplotlib, Agg): the 12 leads on the standard 3x4 layout plus a lead II rhythm strip, on ECG paper
(1 mm minor / 5 mm major grid, 25 mm/s, 10 mm/mV, drawn in millimetres with an equal aspect), optionally coloured by
an attribution; and the bar chart of the statement directions' AUCs. Every PNG is written atomically."""
from __future__ import annotations

from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.collections import LineCollection  # noqa: E402

from .atomic import atomic_path  # noqa: E402
from .ptbxl import LEADS  # noqa: E402

MM_PER_S, MM_PER_MV = 25.0, 10.0
# Standard layout: rows of (lead, lead, lead, lead), each column showing its 2.5 s of the record
LAYOUT = (("I", "AVR", "V1", "V4"), ("II", "AVL", "V2", "V5"), ("III", "AVF", "V3", "V6"))
RHYTHM_LEAD = "II"
ROW_PITCH_MM = 30.0                  # baseline-to-baseline distance of the four rows
HEADROOM_MM = 10.0                   # paper above the top row, for tall R waves
CAL_MM = 10.0                        # room left of t=0 for the 1 mV x 0.2 s calibration pulse
LABELS = {"AVR": "aVR", "AVL": "aVL", "AVF": "aVF"}


def segments(n_samples: int) -> list[tuple[str, int, int, int]]:
    """(lead, row, first sample, end sample) of every trace on the page: 12 quarter-record segments on rows 0-2
    (column c shows samples [c*n/4, (c+1)*n/4)), then the full-length rhythm strip on row 3."""
    q = n_samples // 4
    out = [(lead, r, c * q, (c + 1) * q if c < 3 else n_samples)
           for r, row in enumerate(LAYOUT) for c, lead in enumerate(row)]
    return out + [(RHYTHM_LEAD, 3, 0, n_samples)]


def _baseline(row: int) -> float:
    return (3 - row) * ROW_PITCH_MM + ROW_PITCH_MM / 2


def smooth(a: np.ndarray, fs: int, seconds: float = 0.04) -> np.ndarray:
    """Moving average along time (window `seconds`): per-sample attributions are spiky; what a reader needs is
    which waves carry them."""
    k = max(1, int(round(seconds * fs)))
    kernel = np.ones(k) / k
    return np.stack([np.convolve(row, kernel, mode="same") for row in np.asarray(a, dtype=float)])


def plot_ecg(signal: np.ndarray, fs: int, path: str | Path, title: str = "", attribution: np.ndarray | None = None,
             attribution_label: str = "", dpi: int = 150) -> Path:
    """Write the printout of `signal` (12, T) in mV sampled at `fs` Hz to `path`. With `attribution` (12, T), each
    trace is underlaid with a band coloured by it (smoothed over 40 ms; red raises, blue lowers the explained score;
    one scale for all leads, faint where small); `attribution_label` explains the colour."""
    signal = np.asarray(signal, dtype=float)
    if signal.ndim != 2 or signal.shape[0] != len(LEADS):
        raise ValueError(f"signal must have shape (12, samples), got {signal.shape}")
    n = signal.shape[1]
    width_mm, height_mm = n / fs * MM_PER_S, 4 * ROW_PITCH_MM + HEADROOM_MM
    fig = plt.figure(figsize=((width_mm + CAL_MM + 4) / 25.4 * 1.6, (height_mm + 4) / 25.4 * 1.6))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(-CAL_MM, width_mm + 2)
    ax.set_ylim(0, height_mm)
    ax.set_aspect("equal")
    ax.set_facecolor("#fffafa")
    ax.xaxis.set_major_locator(matplotlib.ticker.MultipleLocator(5))
    ax.xaxis.set_minor_locator(matplotlib.ticker.MultipleLocator(1))
    ax.yaxis.set_major_locator(matplotlib.ticker.MultipleLocator(5))
    ax.yaxis.set_minor_locator(matplotlib.ticker.MultipleLocator(1))
    ax.grid(which="major", color="#f08080", linewidth=0.6)
    ax.grid(which="minor", color="#fbd0d0", linewidth=0.3)
    ax.tick_params(which="both", length=0, labelbottom=False, labelleft=False)
    for side in ax.spines.values():
        side.set_visible(False)
    ax.set_axisbelow(True)

    colour = None
    if attribution is not None:
        a = smooth(attribution, fs)
        scale = np.abs(a).max() or 1.0
        colour = plt.get_cmap("RdBu_r")(0.5 + 0.5 * np.clip(a / scale, -1, 1))       # (12, T, 4)
        colour[..., 3] = np.clip(np.abs(a) / scale, 0, 1) ** 0.7                    # faint where it is small
    t_mm = np.arange(n) / fs * MM_PER_S
    for lead, row, lo, hi in segments(n):
        i, y0 = LEADS.index(lead), _baseline(row)
        x, y = t_mm[lo:hi], y0 + signal[i, lo:hi] * MM_PER_MV
        if colour is not None:                                      # a band under the trace
            pts = np.stack([x, y], axis=1)
            ax.add_collection(LineCollection(np.stack([pts[:-1], pts[1:]], axis=1), colors=colour[i, lo:hi - 1],
                                             linewidths=3.5, capstyle="round"))
        ax.plot(x, y, color="black", linewidth=0.6)
        ax.text(x[0] + 1, y0 + 8, LABELS.get(lead, lead), fontsize=7, fontweight="bold")
        if lo > 0:                                                  # lead-change marker, as printed
            ax.plot([x[0], x[0]], [y0 - 3, y0 + 3], color="black", linewidth=0.7)
    for row in range(4):                                            # 1 mV x 200 ms calibration pulse
        y0 = _baseline(row)
        ax.plot([-9, -8, -8, -3, -3, -2], [y0, y0, y0 + 10, y0 + 10, y0, y0], color="black", linewidth=0.7)
    foot = f"25 mm/s   10 mm/mV   {fs} Hz"
    if attribution_label:
        foot += "   |   " + attribution_label
    ax.text(0, 1.2, foot, fontsize=6.5)
    if title:
        ax.set_title(title, loc="left", fontsize=7, family="monospace")
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png")
    plt.close(fig)
    return Path(path)


def plot_statement_auc(table: list[dict], path: str | Path, k: int = 20,
                       title: str = "Statement directions: test AUC of cos(e_ecg, statement)") -> Path:
    """Horizontal bars of the k best and k worst scored statements of attribution.statement_directions' table
    (all of them when there are at most 2k), with their number of positive test records."""
    scored = [r for r in table if r["auc"] is not None]
    shown = scored if len(scored) <= 2 * k else scored[:k] + scored[-k:]
    fig, ax = plt.subplots(figsize=(7, 0.22 * len(shown) + 1.2))
    y = np.arange(len(shown))[::-1]
    aucs = [r["auc"] for r in shown]
    ax.barh(y, aucs, color=["#2b7bba" if a >= 0.5 else "#d7301f" for a in aucs])
    ax.set_yticks(y, [f"{r['code']} (n={r['n_positive']})" for r in shown], fontsize=7)
    ax.axvline(0.5, color="grey", linestyle="--", linewidth=0.8)
    if len(shown) < len(scored):
        ax.axhline(y[k - 1] - 0.5, color="black", linewidth=0.6)
    ax.set_xlim(0, 1)
    ax.set_xlabel("ROC-AUC on the test folds (0.5 = chance)")
    ax.set_title(title, fontsize=9)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=120, bbox_inches="tight", format="png")
    plt.close(fig)
    return Path(path)
