"""finetune stage: does the aligned encoder make a better ECG model than training from scratch?

    python src/finetune.py                                  # one process
    torchrun --nproc_per_node 8 src/finetune.py             # DDP (nccl on GPUs, gloo on CPU)

Labels come from split.label_folds (all training folds, or under the disjoint protocol those not in
split.pretrain_folds). Fine-tunes the aligned encoder (data/model/model.pt; a supervised control's encoder when
train.loss = supervised), the same encoder frozen, and the same architecture from a
random init, on finetune.task at each finetune.label_fractions and on finetune.outcomes (a CSV ecg_id,time,event or
ecg_id,label; `synthetic` / `synthetic_null`: the synthetic source's generated outcome, which the signal carries /
does not carry; '' none); each run to early stopping at every lr of finetune.lr_grid (times 1, 10 and 100 for the
frozen encoder's head: ft.FROZEN_LR_FACTORS), the lr chosen on validation
(docs/finetune.md). Writes metrics/finetune.json, metrics/finetune_resamples.json (each init's test figures under
the first bootstrap resamples, for the grid's paired two-level bootstrap), plots/label_efficiency.png and
data/finetune/ (the outcome table used, every run's test outputs, runs.json: every run's per-epoch course at every
lr). A killed run, re-run with the
same params, resumes from data/finetune_state/last.pt. Library: src/ecgalign/finetune.py, src/ecgalign/outcomes.py.
"""
import tempfile
import time
from pathlib import Path

import numpy as np
import torch.distributed as dist

from ecgalign import finetune as ft
from ecgalign import params
from ecgalign.artifacts import (FINETUNE, FINETUNE_METRICS, FINETUNE_PLOT, FINETUNE_STATE, MODEL, RAW, load_reports,
                                load_signals)
from ecgalign.atomic import atomic_dir, write_json
from ecgalign.labels import label_pool, task_labels
from ecgalign.models import load_model
from ecgalign.outcomes import read_outcomes
from ecgalign.ptbxl import read_statements
from ecgalign.precision import record
from ecgalign.resamples import write_metrics
from ecgalign.stats import N_BOOT
from ecgalign.training import init_distributed, resolve_device


def outcome_source(p, ecg_ids, folder: Path) -> Path | None:
    """The outcome CSV to use: finetune.outcomes, or the synthetic outcome written into `folder`; None for none."""
    name = p.finetune.outcomes
    if name in ("synthetic", "synthetic_null"):
        if p.data.source != "synthetic":
            print(f"finetune.outcomes = {name}: only the synthetic source has a generated outcome "
                  f"(data.source = {p.data.source}); no outcome task")
            return None
        from ecgalign.synthetic import outcomes

        path = folder / "outcomes.csv"
        outcomes(ecg_ids, p.data.seed, p.data.sampling_rate, dependence=name == "synthetic").to_csv(path, index=False)
        return path
    return Path(name) if name else None


def main():
    start = time.time()
    p = params.load()
    rank, world = init_distributed(p.train.device)
    try:
        cfg = ft.config_from_params(p)
        reports = load_reports()
        signals, _ = load_signals(n_records=len(reports))
        folds = np.array([r["strat_fold"] for r in reports])
        ecg_ids = [r["ecg_id"] for r in reports]
        pool = label_pool(folds, p.split)   # clear error when the disjoint protocol leaves no record
        y, classes, keep = task_labels([r["scp_codes"] for r in reports], read_statements(RAW), cfg["task"])
        tasks = ft.classification_tasks(y, keep, folds, cfg)
        # rank 0 writes data/finetune/; the other ranks read the same outcome table from a scratch folder
        with (atomic_dir(FINETUNE) if rank == 0 else tempfile.TemporaryDirectory()) as out:
            out = Path(out)
            source = outcome_source(p, ecg_ids, out)
            outcome = read_outcomes(source, ecg_ids, p.finetune.on_error) if source else None
            if outcome is not None:
                tasks.update(ft.outcome_task(outcome, folds, cfg, str(p.finetune.outcomes)))
            pretrained = load_model(MODEL, encoder=p.ecg.encoder)
            print(f"finetune: task {cfg['task']} ({len(classes)} classes: {', '.join(classes)}), fractions "
                  f"{cfg['label_fractions']}, outcome: {source or 'none'}; lr grid {cfg['lr_grid']} (frozen: "
                  f"{ft.lr_grid_of(cfg, 'frozen')}), up to "
                  f"{cfg['max_epochs']} epoch(s) per run (patience {cfg['patience']}); trainable inits start from "
                  + ("their linear probe" if cfg["head_init"] == "probe" else "a zero head"))
            results = ft.run_experiment(signals, pretrained, tasks, cfg, FINETUNE_STATE)
            if rank == 0:
                np.savez(out / "test_outputs.npz", **{f"{name}__{init}": np.asarray(r["test_out"])
                                                       for name, runs in results.items() for init, r in runs.items()},
                         **{f"{name}__rows": t["test"] for name, t in tasks.items()})
                write_json(out / "runs.json", ft.run_log(results))
        if rank != 0:
            return
        metrics = {"finetune_task": cfg["task"], "finetune_classes": classes, "finetune_max_epochs": cfg["max_epochs"],
                   "finetune_patience": cfg["patience"], "finetune_lr_grid": cfg["lr_grid"],
                   "finetune_frozen_lr_grid": ft.lr_grid_of(cfg, "frozen"),
                   **{f"finetune_{k}": v for k, v in record(cfg["precision"], resolve_device(cfg["device"])).items()},
                   "finetune_world_size": world, "finetune_protocol": p.split.protocol,
                   "finetune_pretrain_objective": "supervised" if pretrained.supervised else "alignment",
                   "finetune_label_folds": p.split.label_folds, "finetune_label_pool_size": int(len(pool)),
                   "finetune_head_init": cfg["head_init"],
                   # records whose SCP labels pretraining saw (through the text, or the control's head): every
                   # fraction's labels come on top of these
                   "finetune_pretraining_labels": int(np.isin(folds, p.split.pretrain_pool).sum()),
                   "finetune_n_val": len(tasks[ft.pct_name(cfg["label_fractions"][0])]["val"]),
                   "finetune_n_test": len(tasks[ft.pct_name(cfg["label_fractions"][0])]["test"]),
                   **{f"finetune_{ft.pct_name(f)}_n_train": len(tasks[ft.pct_name(f)]["train"])
                      for f in cfg["label_fractions"]}}
        if outcome is not None:
            t = tasks["outcome"]
            metrics.update(outcome_kind=outcome.kind, outcome_n=len(outcome.rows), outcome_n_skipped=outcome.n_skipped,
                           outcome_skipped=outcome.skipped, outcome_n_train=len(t["train"]),
                           outcome_n_test=len(t["test"]), outcome_n_test_positive=int(t["target"][t["test"], -1].sum()))
        else:
            metrics["outcome_kind"] = "none"
        metrics.update(ft.summarise(results, tasks, seed=cfg["seed"]))
        metrics["finetune_seconds"] = round(time.time() - start, 1)
        metrics = write_metrics(FINETUNE_METRICS, metrics, cfg["seed"], N_BOOT)
        ft.plot_label_efficiency(metrics, cfg["label_fractions"], FINETUNE_PLOT,
                                 f"{cfg['task']}: test macro AUC (n={metrics['finetune_n_test']})")
        print(ft.report(metrics, cfg["label_fractions"]))
        print(f"wrote {FINETUNE_METRICS}, {FINETUNE_PLOT} and {FINETUNE}/ in {time.time() - start:.1f} s")
    finally:
        if world > 1:
            dist.destroy_process_group()


if __name__ == "__main__":
    from ecgalign.cost import measured
    from ecgalign.errors import run
    with measured("finetune"):
        run(main)
