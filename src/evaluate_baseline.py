"""baseline stage: the untrained reference model's figures (the baseline_* keys of metrics/eval.json) -> data/baseline/.

    python src/evaluate_baseline.py

The untrained model (ecgalign.benchmark.untrained_model) depends on the data, ecg.*, train.proj_dim and the seed
evaluate.seed, not on the trained model: as a stage of its own, DVC's run cache restores its figures for every
experiment that shares those inputs (cosine, InfoNCE, supervised and augmented runs of one seed share one), instead of
each evaluate re-encoding 21,837 records and re-fitting every probe. Its output is a cached DVC output (not a metrics
file), which is what lets the run cache restore it; evaluate merges it into metrics/eval.json. The tasks' probes run
in one process per core; the encoding runs in train.precision, like the trained model's.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from ecgalign import artifacts as art
from ecgalign import benchmark as bm
from ecgalign import params as params_mod
from ecgalign.atomic import write_json
from ecgalign.models import encode_all
from ecgalign.precision import record, resolve


def main(data_dir: str | Path = art.DATA, params_path: str | Path = art.PARAMS) -> dict:
    start = time.time()
    p = params_mod.load(params_path)
    data = Path(data_dir)
    inp = bm.load_inputs(data, p.split, embeddings=False)
    signals, stats = art.load_signals(art.under(data, art.SIGNALS), len(inp.reports), art.under(data, art.REPORTS))
    model = bm.untrained_model(p, inp.text.shape[1], stats["mean"], stats["std"], n_leads=signals.shape[1],
                               length=signals.shape[2])
    device = torch.device("cpu")   # the encoding takes seconds
    precision = resolve(p.train.precision, device)
    print(f"baseline: untrained {p.ecg.encoder} (seed {p.evaluate.seed}, {precision}) on {len(inp.test)} test, "
          f"{len(inp.train)} train and {len(inp.val)} validation records")
    rows = np.concatenate([inp.test, inp.val, inp.train])
    encoded = encode_all(model, signals, rows=rows, precision=precision)
    z, e = (np.zeros((len(inp.reports), a.shape[1]), dtype=np.float32) for a in encoded)
    z[rows], e[rows] = encoded
    prep, counts, task_counts, _ = bm.prepared(inp, p.evaluate)
    figures, _ = bm.model_figures(model, inp, prep, bm.split_embeddings(inp, z, e), p.evaluate, counts, task_counts,
                                  prefix="baseline_", jobs=bm.cores())
    figures = {k: None if isinstance(v, float) and not np.isfinite(v) else v for k, v in figures.items()
               if not k.startswith("baseline_val_")}   # design choices are made on the trained models' val_* only
    out = {"n_test": int(len(inp.test)), **record(p.train.precision, device), **figures}
    write_json(art.under(data, art.BASELINE_METRICS), out)
    print(f"wrote {art.under(data, art.BASELINE_METRICS)} in {time.time() - start:.1f} s")
    return out


if __name__ == "__main__":
    from ecgalign.cost import measured
    from ecgalign.errors import run
    with measured("baseline"):
        run(main)
