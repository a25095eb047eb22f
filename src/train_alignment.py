"""train stage: align ECG encoder and text embeddings; writes data/model/model.pt, metrics/train.json, dvclive/.

    python src/train_alignment.py                                   # one process
    torchrun --nproc_per_node 8 src/train_alignment.py              # DDP (nccl on GPUs, gloo on CPU)

A killed run, re-run with the same params and inputs, resumes from data/train_state/last.pt.
"""
import json
import os

import numpy as np
import torch
import torch.distributed as dist

from ecgalign import params
from ecgalign.atomic import write_json
from ecgalign.reports import read_reports
from ecgalign.signals import load_signals
from ecgalign.training import config_from_params, resolve_device, train

SIGNALS, TEXT, REPORTS = "data/signals", "data/text/record_embeddings.npy", "data/reports.jsonl"
OUT_DIR, STATE_DIR, METRICS, LIVE_DIR = "data/model", "data/train_state", "metrics/train.json", "dvclive"


def main():
    p = params.load()
    world = int(os.environ.get("WORLD_SIZE", 1))
    if world > 1:
        cuda = resolve_device(p.train.device, int(os.environ.get("LOCAL_RANK", 0))).type == "cuda"
        if cuda:
            torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
        dist.init_process_group("nccl" if cuda else "gloo")
    rank = dist.get_rank() if world > 1 else 0

    signals, stats = load_signals(SIGNALS)
    text = np.load(TEXT)
    reports = read_reports(REPORTS)
    folds = np.array([r["strat_fold"] for r in reports])
    for name, n in ((f"{SIGNALS}/signals.npy", len(signals)), (TEXT, len(text))):
        if n != len(folds):
            raise ValueError(f"{name} has {n} rows but {REPORTS} has {len(folds)} records: re-run the stages "
                             f"(dvc repro) so that every array is row-aligned with the reports")
    bad = np.flatnonzero(~np.isfinite(text).all(axis=1))
    if len(bad):
        raise ValueError(f"{TEXT}: {len(bad)} non-finite row(s), first row {bad[0]} (ecg_id "
                         f"{reports[bad[0]]['ecg_id']}): re-run dvc repro text_embeddings")

    live = None
    if rank == 0:
        from dvclive import Live
        live = Live(dir=LIVE_DIR, save_dvc_exp=False, dvcyaml=False)  # dvc.yaml declares dvclive's files itself
    try:
        metrics = train(signals, text, folds, config_from_params(p), OUT_DIR, STATE_DIR, live,
                        lead_mean=stats["mean"], lead_std=stats["std"])
        if rank == 0:
            write_json(METRICS, metrics)
            print(json.dumps(metrics, indent=2))
    finally:
        if live is not None:
            live.end()
        if world > 1:
            dist.destroy_process_group()


if __name__ == "__main__":
    from ecgalign.errors import run
    run(main)
