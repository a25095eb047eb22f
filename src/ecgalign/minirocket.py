"""MiniRocket, the random-convolution-kernel baseline: features no training shaped, through the same probes as every
model's z (Dempster et al., KDD 2021; the `MiniRocket` transform of aeon, pinned in requirements.txt).

Why: a linear probe on random features is the floor a pretrained ECG encoder has to clear, and MiniRocket is that
floor's strong version (84 fixed kernels of length 9 at many dilations, each applied to a random subset of the leads,
with biases from quantiles of the convolution outputs; the feature is the proportion of positive values, PPV:
9,996 features at the default 10,000 kernels). The untrained cnn1d (baseline_*) is the weak version.

Protocol, as for the models' z (benchmark.tasks with the z space only, transfer.transfer_figures): the transform is
fitted (its biases drawn) on the label pool's signals, normalised per lead by the signals stage's statistics; every
task at every label fraction gets the L2 logistic probe with C chosen on the validation folds, sex the same probe,
age the ridge regression. `evaluate.seed` seeds the kernels' lead subsets and bias draws, and the label subsamples:
the same seed as the untrained baseline, so a grid's seeds pair MiniRocket with the models run on them.

aeon's defaults (KERNELS, MAX_DILATIONS) are constants, not params: params.py is a dependency of every stage, so a new
params section would re-run every stage of every experiment (tests pass fewer kernels to the stage's main).
"""
from __future__ import annotations

import numpy as np

from .artifacts import METRICS as METRICS_DIR

KERNELS = 10_000     # aeon's default: 9,996 features (84 kernels x dilations x bias quantiles)
MAX_DILATIONS = 32   # dilations per kernel at most (aeon's default)
CHUNK = 1024         # records transformed at once: the feature matrix is the memory (9,996 float32 each)
METRICS = METRICS_DIR / "minirocket.json"   # the minirocket stage's figures (minirocket_*), beside metrics/eval.json


def transformer(signals, fit_rows, mean, std, n_kernels: int, max_dilations: int, seed: int):
    """aeon's MiniRocket fitted on the normalised signals of `fit_rows` (a memmap is fine)."""
    from aeon.transformations.collection.convolution_based import MiniRocket

    fit = MiniRocket(n_kernels=n_kernels, max_dilations_per_kernel=max_dilations, n_jobs=-1, random_state=seed)
    return fit.fit(normalised(signals, fit_rows, mean, std))


def normalised(signals, rows, mean, std) -> np.ndarray:
    """float32 [len(rows), leads, T]: each lead minus its mean, over its std (the signals stage's statistics)."""
    mean = np.asarray(mean, dtype=np.float32)[None, :, None]
    std = np.asarray(std, dtype=np.float32)[None, :, None]
    return (np.asarray(signals[np.asarray(rows)], dtype=np.float32) - mean) / std


def features(fitted, signals, rows, mean, std) -> np.ndarray:
    """float32 [len(rows), n_features]: the fitted transform of the normalised signals of `rows`, in chunks."""
    from tqdm import tqdm

    rows = np.asarray(rows)
    out = None
    for start in tqdm(range(0, len(rows), CHUNK), desc="MiniRocket features", unit="chunk"):
        part = np.asarray(fitted.transform(normalised(signals, rows[start:start + CHUNK], mean, std)),
                          dtype=np.float32)
        if out is None:
            out = np.zeros((len(rows), part.shape[1]), dtype=np.float32)
        out[start:start + len(part)] = part
    return out
