"""train stage: align ECG encoder and text embeddings (or, with train.loss = supervised, the supervised control:
the same encoder trained on the SCP codes of the pretraining folds, no text); writes data/model/model.pt, metrics/train.json, dvclive/.

    python src/train_alignment.py                                   # one process
    torchrun --nproc_per_node 8 src/train_alignment.py              # DDP (nccl on GPUs, gloo on CPU)

A killed run, re-run with the same params and inputs, resumes from data/train_state/last.pt.
"""
import json
import os

os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")   # deterministic cuBLAS: read when CUDA starts
# idle OpenMP threads sleep instead of spinning: read when torch's OpenMP runtime loads, so before torch is imported.
# Same arithmetic, bit-identical weights (tested); on 2 cores shared with other processes a cnn1d step measured
# 0.16 s instead of 1.09 s (bench/bench_training.py --layout). A value set by the user wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import torch.distributed as dist

from ecgalign import params
from ecgalign.artifacts import (DVCLIVE, MODEL_DIR, RAW, RECORD_EMBEDDINGS, RECORD_IDS, REPORTS, TRAIN_METRICS,
                                TRAIN_STATE, load_array, load_record_embeddings, load_reports, load_signals)
from ecgalign.atomic import write_json
from ecgalign.errors import ArtifactError, ParamsError
from ecgalign.labels import supervised_targets
from ecgalign.losses import SUPERVISED
from ecgalign.ptbxl import read_statements
from ecgalign.training import config_from_params, init_distributed, train


def load_text(reports, rank):
    """(record text embeddings, report ids or None) of the text stage, checked finite."""
    text = load_record_embeddings(len(reports))
    bad = np.flatnonzero(~np.isfinite(text).all(axis=1))
    if len(bad):
        raise ArtifactError(f"{RECORD_EMBEDDINGS}: {len(bad)} non-finite row(s), first row {bad[0]} (ecg_id "
                            f"{reports[bad[0]]['ecg_id']}): re-run dvc repro text_embeddings")
    ids = None   # without the text stage's identities (a hand-made data/text/): identical embedding rows
    if RECORD_IDS.exists():
        ids = np.asarray(load_array(RECORD_IDS, len(reports), "text_embeddings"))
    elif rank == 0:
        print(f"{RECORD_IDS} not found: report identities taken from identical rows of {RECORD_EMBEDDINGS} "
              f"(re-run dvc repro text_embeddings to write them)")
    return text, ids


def main():
    p = params.load()
    rank, world = init_distributed(p.train.device)

    reports = load_reports()
    folds = np.array([r["strat_fold"] for r in reports])
    signals, stats = load_signals(n_records=len(reports))
    if p.train.loss == SUPERVISED:   # the control: the SCP codes of the pretraining folds, no text
        pool = np.flatnonzero(np.isin(folds, p.split.pretrain_pool))
        if len(pool) == 0:
            raise ParamsError(f"split.pretrain_folds {p.split.pretrain_pool} selects no record of {REPORTS}")
        text, codes = supervised_targets([r["scp_codes"] for r in reports], read_statements(RAW), pool)
        ids = np.zeros(len(reports), dtype=np.int64)   # unused by the supervised objective
        if rank == 0:
            print(f"supervised control: multi-label BCE on {len(codes)} SCP codes of {len(pool)} records "
                  f"(folds {p.split.pretrain_pool})")
    else:
        text, ids = load_text(reports, rank)

    live = None
    if rank == 0:
        from dvclive import Live
        live = Live(dir=str(DVCLIVE), save_dvc_exp=False, dvcyaml=False)  # dvc.yaml declares dvclive's files itself
    try:
        metrics = train(signals, text, folds, config_from_params(p), MODEL_DIR, TRAIN_STATE, live,
                        lead_mean=stats["mean"], lead_std=stats["std"], ids=ids)
        if rank == 0:
            metrics.update(protocol=p.split.protocol, pretrain_folds=p.split.pretrain_pool)
            write_json(TRAIN_METRICS, metrics)
            print(json.dumps(metrics, indent=2))
    finally:
        if live is not None:
            live.end()
        if world > 1:
            dist.destroy_process_group()


if __name__ == "__main__":
    from ecgalign.cost import measured
    from ecgalign.errors import run
    with measured("train"):
        run(main)
