"""minirocket stage: the random-convolution-kernel baseline's figures (the minirocket_* keys of metrics/eval.json)
-> data/minirocket/.

    python src/evaluate_minirocket.py

MiniRocket (ecgalign.minirocket) is fitted on the label pool's signals and its features go through the probes every
model's z gets: the six tasks at each label fraction, sex and age. Like the baseline stage, it depends on the data,
split.* and evaluate.* only (not the text: a change of text.* does not run it again), so DVC's run cache serves one
run to every experiment of a seed and split; evaluate merges it into metrics/eval.json.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ecgalign import artifacts as art
from ecgalign import benchmark as bm
from ecgalign import minirocket as mr
from ecgalign import params as params_mod
from ecgalign import transfer as tr
from ecgalign.atomic import write_json

PREFIX = "minirocket_"


def main(data_dir: str | Path = art.DATA, params_path: str | Path = art.PARAMS, kernels: int = mr.KERNELS,
         max_dilations: int = mr.MAX_DILATIONS) -> dict:
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
    out = {"n_test": int(len(inp.test)), f"{PREFIX}n_features": int(z["test"].shape[1]), **figures}
    print(f"features in {transform_seconds:.1f} s")   # a timing is no figure: same params, same metrics
    write_json(art.under(data, mr.METRICS), out)
    print(f"wrote {art.under(data, mr.METRICS)} in {time.time() - start:.1f} s")
    return out


if __name__ == "__main__":
    from ecgalign.cost import measured
    from ecgalign.errors import run
    with measured("minirocket"):
        run(main)
