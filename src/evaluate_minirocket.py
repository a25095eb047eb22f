"""minirocket stage: the random-convolution-kernel baseline's figures (minirocket_*) -> metrics/minirocket.json, and
their kept bootstrap resamples -> metrics/minirocket_resamples.json.

    python src/evaluate_minirocket.py

MiniRocket (ecgalign.minirocket) is fitted on the label pool's signals and its features go through the probes every
model's z gets: the six tasks at each label fraction, sex and age. Like the baseline stage, it depends on the data,
split.* and evaluate.* only (not the text: a change of text.* does not run it again), so DVC's run cache serves one
run to every experiment of a seed and split. No stage depends on it: `dvc repro evaluate` (and a grid whose targets
do not name it) skips its ~30 minutes on the full PTB-XL; its figures share the evaluation's label subsamples and
bootstrap resamples (both seeded by evaluate.seed), so they pair with metrics/eval.json's.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ecgalign import artifacts as art
from ecgalign import benchmark as bm
from ecgalign import labels as lb
from ecgalign import minirocket as mr
from ecgalign import params as params_mod
from ecgalign import transfer as tr
from ecgalign.resamples import write_metrics

PREFIX = "minirocket_"


def main(data_dir: str | Path = art.DATA, params_path: str | Path = art.PARAMS, kernels: int = mr.KERNELS,
         max_dilations: int = mr.MAX_DILATIONS, metrics_path: str | Path = mr.METRICS) -> dict:
    """Run the stage; returns the figures written to metrics_path (their kept resamples go beside it)."""
    start = time.time()
    p = params_mod.load(params_path)
    ep, data = p.evaluate, Path(data_dir)
    inp = bm.load_inputs(data, p.split, embeddings=False, text=False)
    signals, stats = art.load_signals(art.under(data, art.SIGNALS), len(inp.reports), art.under(data, art.REPORTS))
    print(f"minirocket: {kernels} kernels (seed {ep.seed}) fitted on {len(inp.train)} label-pool "
          f"records; probes on {len(inp.train)} train, {len(inp.val)} validation and {len(inp.test)} test records")
    fitted = mr.transformer(signals, inp.train, stats["mean"], stats["std"], kernels, max_dilations, ep.seed)
    splits = {"train": inp.train, "val": inp.val, "test": inp.test}
    z = {s: mr.features(fitted, signals, rows, stats["mean"], stats["std"]) for s, rows in splits.items()}
    transform_seconds = time.time() - start
    prep, counts, task_counts, _ = bm.prepared(inp, ep)
    figures = {**bm.tasks(prep, {"z": z}, None, task_counts, ep.probe_c_grid, PREFIX, level=ep.ci_level,
                          jobs=bm.cores()),
               **tr.transfer_figures(z, inp.sex, inp.age, splits, ep.label_fractions, ep.seed, ep.probe_c_grid,
                                     PREFIX, counts, ep.ci_level)}
    figures = {k: v for k, v in figures.items() if "zero_shot" not in k}   # random features have no text side
    figures = {k: None if isinstance(v, float) and not np.isfinite(v) else v for k, v in figures.items()}
    out = write_metrics(metrics_path, {"n_test": int(len(inp.test)), "ci_level": ep.ci_level,
                                       f"{PREFIX}n_features": int(z["test"].shape[1]), **figures},
                        ep.seed, ep.bootstrap)
    print(f"features in {transform_seconds:.1f} s")   # a timing is no figure: same params, same metrics
    print_summary(out, ep.label_fractions)
    print(f"wrote {metrics_path} in {time.time() - start:.1f} s")
    return out


def print_summary(m: dict, fractions) -> None:
    """MiniRocket's z probe on every task and its transfer figures, at each label fraction."""
    f3 = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
    print(f"\nMiniRocket ({m[PREFIX + 'n_features']} features): test macro AUC of the z probe; sex AUC, age MAE")
    print(f"{'task':<17}" + "".join(f"{bm.fraction_key(f):>10}" for f in fractions))
    rows = [(task, f"linear_probe_z_{task}_{{}}_auc_macro") for task in lb.TASKS]
    rows += [("sex AUC", "transfer_sex_{}_auc"), ("age MAE", "transfer_age_{}_mae")]
    for label, key in rows:
        print(f"{label:<17}" + "".join(f"{f3(m.get(PREFIX + key.format(bm.fraction_key(f)))):>10}" for f in fractions))


if __name__ == "__main__":
    from ecgalign.cost import measured
    from ecgalign.errors import run
    with measured("minirocket"):
        run(main)
