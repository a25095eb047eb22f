"""evaluate stage: how well the trained model aligns ECGs with their reports, on the test folds, beside the same
metrics for the untrained model (baseline_*) and the chance levels, so that neither a collapse nor a gain hides.

    python src/evaluate_alignment.py

Reads data/{reports.jsonl, model/, ecg_embeddings/, text/, signals/, raw/scp_statements.csv}, dvclive's loss curves;
writes metrics/eval.json and plots/{loss, embedding_map, zero_shot_roc}.png. Metric definitions:
src/ecgalign/evaluation.py.
"""
from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from ecgalign import evaluation as ev
from ecgalign import params as params_mod
from ecgalign import plots
from ecgalign.atomic import write_json
from ecgalign.models import AlignmentModel, encode_all, load_model
from ecgalign.ptbxl import SUPERCLASSES, read_statements
from ecgalign.reports import read_reports


def load_inputs(data: Path, split) -> SimpleNamespace:
    """The stage's inputs, checked to be row-aligned with reports.jsonl (errors name the file)."""
    reports = read_reports(data / "reports.jsonl")
    n = len(reports)
    folds = np.array([r["strat_fold"] for r in reports])
    test = np.flatnonzero(np.isin(folds, split.test_folds))
    train = np.flatnonzero(np.isin(folds, split.train_folds))
    if len(test) < 2 or len(train) < 2:
        raise ValueError(f"{data / 'reports.jsonl'}: {len(test)} records in split.test_folds={split.test_folds} and "
                         f"{len(train)} in split.train_folds={split.train_folds}; need at least 2 in each")
    arrays = {}
    for name, path in [("e_ecg", "ecg_embeddings/e_ecg.npy"), ("z_ecg", "ecg_embeddings/z_ecg.npy"),
                       ("text", "text/record_embeddings.npy"), ("signals", "signals/signals.npy")]:
        if not (data / path).exists():
            raise FileNotFoundError(f"{data / path} not found: run the pipeline up to this stage (dvc repro)")
        arrays[name] = np.load(data / path, mmap_mode="r")
        if len(arrays[name]) != n:
            raise ValueError(f"{data / path} has {len(arrays[name])} rows but {data / 'reports.jsonl'} has {n} "
                             f"records: the artifacts are out of date, rerun dvc repro")
    statements = ev.read_jsonl(data / "text" / "statements.jsonl")
    statement_emb = np.load(data / "text" / "statement_embeddings.npy")
    if len(statements) != len(statement_emb):
        raise ValueError(f"{data / 'text'}: statements.jsonl has {len(statements)} rows, statement_embeddings.npy "
                         f"has {len(statement_emb)}")
    table = read_statements(data / "raw")
    diagnostic_class = {code: c for code, c in table["diagnostic_class"].items() if isinstance(c, str)}
    scp = [r["scp_codes"] for r in reports]
    labels = ev.superclass_labels(scp, diagnostic_class, SUPERCLASSES)
    return SimpleNamespace(
        reports=reports, test=test, train=train, labels=labels, diagnostic_class=diagnostic_class,
        primary=ev.primary_superclass([scp[i] for i in test], diagnostic_class, SUPERCLASSES),
        statement_codes=[s["code"] for s in statements], statement_emb=statement_emb, **arrays)


def model_metrics(model, inp: SimpleNamespace, e_test, e_train, z_test, z_train, probe_c: float):
    """All metrics of one model given its ECG embeddings of the test and train rows: (metrics, extras)."""
    test, train = inp.test, inp.train
    e_text = ev.project_text(model, np.asarray(inp.text[test]))
    prompts, classes = ev.class_prompts(ev.project_text(model, inp.statement_emb), inp.statement_codes,
                                        inp.diagnostic_class, SUPERCLASSES)
    labels = inp.labels[:, [SUPERCLASSES.index(c) for c in classes]]
    m, extras = ev.alignment_metrics(e_test, e_text, [inp.reports[i]["report"] for i in test], labels[test],
                                     prompts, classes)
    m.update(ev.probe_metrics(e_train, labels[train], e_test, labels[test], classes, probe_c))
    m.update(ev.probe_metrics(z_train, labels[train], z_test, labels[test], classes, probe_c, "linear_probe_z"))
    extras.update(e_text=e_text, classes=classes, labels=labels[test],
                  no_prompt=[c for c in SUPERCLASSES if c not in classes])
    return m, extras


def baseline_model(model: AlignmentModel, seed: int) -> AlignmentModel:
    """The untrained model: the trained model's config and lead normalisation, freshly initialised from `seed`."""
    torch.manual_seed(seed)
    return AlignmentModel(model.config, lead_mean=model.lead_mean, lead_std=model.lead_std).eval()


def print_summary(m: dict) -> None:
    """trained | untrained | chance, for the headline metrics."""
    rows = ["alignment_loss", "ecg_to_text_r1", "ecg_to_text_r5", "ecg_to_text_r10", "zero_shot_auc_macro",
            "linear_probe_auc_macro", "linear_probe_z_auc_macro", "ecg_embedding_mean_cosine",
            "text_embedding_mean_cosine"]
    fmt = lambda v: "-" if v is None else f"{v:.4f}"  # noqa: E731
    print(f"{'metric (test folds, n=' + str(m['n_test']) + ')':<34}{'trained':>10}{'untrained':>11}{'chance':>10}")
    for k in rows:
        chance = m.get(k.replace("ecg_to_text_r", "ecg_to_text_chance_r")) if k.startswith("ecg_to_text_r") else None
        print(f"{k:<34}{fmt(m.get(k)):>10}{fmt(m.get('baseline_' + k)):>11}{fmt(chance):>10}")
    print(f"{'ecg_to_text_majority_r1':<34}{fmt(m['ecg_to_text_majority_r1']):>10}")


def main(data_dir: str | Path = "data", params_path: str | Path = "params.yaml",
         metrics_path: str | Path = "metrics/eval.json", plots_dir: str | Path = "plots",
         dvclive_dir: str | Path = "dvclive") -> dict:
    """Run the stage; returns the metrics written to metrics_path."""
    start = time.time()
    p = params_mod.load(params_path)
    data, plots_dir = Path(data_dir), Path(plots_dir)
    inp = load_inputs(data, p.split)
    test, train = inp.test, inp.train
    model = load_model(data / "model" / "model.pt")
    print(f"evaluate: {len(test)} test records (folds {p.split.test_folds}), {len(train)} train records for the "
          f"probe, {model.config['encoder']} model")

    trained, extras = model_metrics(model, inp, np.asarray(inp.e_ecg[test]), np.asarray(inp.e_ecg[train]),
                                    np.asarray(inp.z_ecg[test]), np.asarray(inp.z_ecg[train]), p.evaluate.probe_c)
    base = baseline_model(model, p.evaluate.seed)
    z, e = encode_all(base, inp.signals, rows=np.concatenate([test, train]))
    n = len(test)
    untrained, _ = model_metrics(base, inp, e[:n], e[n:], z[:n], z[n:], p.evaluate.probe_c)

    chance_keys = [k for k in trained if "_chance_" in k or "_majority_" in k]
    metrics = {"n_test": int(n), "n_train": int(len(train)), **trained,
               **{f"baseline_{k}": v for k, v in untrained.items() if k not in chance_keys}}
    skipped = extras["zero_shot_skipped"] + extras["no_prompt"]
    if skipped:
        print(f"zero-shot/probe: superclass(es) {skipped} left out of the macro AUC (no statement of that class, "
              f"or only one label value among the test records)")
    positives = dict(zip(extras["classes"], extras["labels"].sum(axis=0).tolist()))
    print(f"test positives per superclass: {positives}")

    curves = {s: plots.read_curve(Path(dvclive_dir) / "plots" / "metrics" / s / "alignment_loss.tsv")
              for s in ("train", "val")}
    if plots.plot_loss(curves, plots_dir / "loss.png") is None:
        print(f"plots/loss.png skipped: no {dvclive_dir}/plots/metrics/{{train,val}}/alignment_loss.tsv")
    plots.plot_embedding_map(np.asarray(inp.e_ecg[test]), extras["e_text"], inp.primary,
                             plots_dir / "embedding_map.png", p.evaluate.map_points, p.evaluate.seed)
    plots.plot_roc(extras["labels"], extras["zero_shot_scores"], extras["classes"], plots_dir / "zero_shot_roc.png",
                   title=f"Zero-shot superclass ROC, test folds (n={n})")
    write_json(metrics_path, metrics)
    print_summary(metrics)
    print(f"wrote {metrics_path} and {plots_dir}/*.png in {time.time() - start:.1f} s")
    return metrics


if __name__ == "__main__":
    from ecgalign.errors import run
    run(main)
