"""evaluate stage: how well the trained model aligns ECGs with their reports, on the test folds, beside the same
figures for the untrained model (baseline_*, computed by the baseline stage), the chance, majority and shuffle levels,
with percentile bootstrap intervals at evaluate.ci_level (95 % by default; 0.9 gives the PTB-XL benchmark's 5-95 %);
plus cheap validation-fold figures (val_*) for design choices. The tasks' probes run in one process per core.

    python src/evaluate_alignment.py

Reads data/{reports.jsonl, model/, ecg_embeddings/, baseline/, text/, raw/scp_statements.csv}, dvclive's loss
curves;
writes metrics/eval.json, metrics/eval_resamples.json (the figures under the first bootstrap resamples, for the grid's
paired two-level bootstrap: ecgalign.resamples) and plots/{loss, embedding_map, zero_shot_roc, tasks}.png. Metric definitions:
src/ecgalign/benchmark.py (and evaluation.py, probe.py, stats.py, labels.py).

The probes draw their labels from the label pool (labels.label_pool): all training folds under the in-sample
protocol, the training folds minus split.pretrain_folds under the disjoint one (`protocol`, `label_pool_size`).
A supervised control (train.loss = supervised) has no text head: its e_ecg are class logits, so the probes run on
z_ecg (linear_probe_z_*) as for an aligned model and on the logits (linear_probe_*); its zero-shot and retrieval
figures come from the class head itself (benchmark.label_head_figures: a class scores the sum of its statements'
logits, a report the log-likelihood of its code set), under the same keys, so the two arms compare on them; what
needs a shared ECG-text space (alignment loss, the e_ecg and text mean cosines, validation text retrieval, statement
directions) is null and listed in `not_defined` (fnmatch patterns of the keys, space-separated: DVC drops lists
and nulls from the metrics it reports, so the grid could not see a list) with `not_defined_reason`.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from ecgalign import benchmark as bm
from ecgalign import labels as lb
from ecgalign import params as params_mod
from ecgalign import artifacts as art
from ecgalign import plots
from ecgalign.atomic import write_json
from ecgalign.attribution import statement_directions, statement_metrics
from ecgalign.ecgplot import plot_statement_auc
from ecgalign.errors import ArtifactError, MissingArtifactError
from ecgalign.models import load_model
from ecgalign.resamples import write_metrics


# what a supervised control has no value for (fnmatch patterns of eval.json keys)
NOT_DEFINED = ("alignment_loss", "text_embedding_mean_cosine", "ecg_embedding_mean_cosine", "val_alignment_loss",
               "val_ecg_to_text_*")
NOT_DEFINED_REASON = ("supervised control (train.loss = supervised): no text head, so no shared ECG-text space; "
                      "the alignment loss and the embeddings' mean cosines are not defined; its e_ecg are class "
                      "logits, and its zero-shot and retrieval figures are the class head's own (sum of a class's "
                      "statements' logits; a report's code-set log-likelihood); ecg_z_mean_cosine is the collapse "
                      "figure")
NULL_KEYS = ("alignment_loss", "text_embedding_mean_cosine", "ecg_embedding_mean_cosine")   # contract keys, null


def not_defined_figures() -> dict:
    """The eval.json entries that say what a supervised control does not have: the contract keys as null, the
    patterns of every undefined key, and why. Its untrained reference (baseline_*) is the aligned architecture
    (benchmark.untrained_model), for which every figure is defined."""
    return {**{k: None for k in NULL_KEYS}, "not_defined": " ".join(NOT_DEFINED),
            "not_defined_reason": NOT_DEFINED_REASON}


def load_baseline(data: Path, n_test: int) -> dict:
    """The untrained model's figures (baseline_*) written by the baseline stage, checked to be of this test fold."""
    path = art.under(data, art.BASELINE_METRICS)
    if not path.exists():
        raise MissingArtifactError(f"{path} not found: run the baseline stage first (dvc repro baseline)")
    figures = json.loads(path.read_text())
    if figures.get("n_test") != n_test:
        raise ArtifactError(f"{path} is of {figures.get('n_test')} test records, the evaluation of {n_test}: re-run "
                            f"dvc repro baseline")
    return {k: v for k, v in figures.items() if k.startswith("baseline_")}


def print_summary(m: dict, fractions, level: float) -> None:
    """Readable tables: retrieval (trained, untrained, chance, majority, shuffle null) and the tasks."""
    f3 = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731

    def ci(k):
        v = m.get(k)
        return f"{f3(v)} [{f3(m.get(k + '_ci_low'))}, {f3(m.get(k + '_ci_high'))}]" if v is not None else "-"

    print(f"\nprotocol {m['protocol']}: probe labels from {m['label_pool_size']} records (folds {m['label_folds']})")
    if m.get("not_defined"):
        print(f"not defined: {m['not_defined_reason']}")
        print(f"ECG z mean cosine {f3(m['ecg_z_mean_cosine'])} (untrained {f3(m['baseline_ecg_z_mean_cosine'])})")
    _print_retrieval(m, f3, ci, level)
    _print_tasks(m, fractions, f3, ci, level)
    _print_transfer(m, fractions, f3)


def _print_transfer(m: dict, fractions, f3) -> None:
    """Sex and age, probed on z: tasks the text never names (ecgalign.transfer)."""
    rows = [("sex AUC", "sex", "auc"), ("age MAE (years)", "age", "mae"), ("age R2", "age", "r2")]
    if not any(f"transfer_{task}_n_test" in m for _, task, _ in rows):
        return
    print("\ntransfer, tasks the text never names (probe on z; trained / untrained)")
    print(f"{'figure':<18}" + "".join(f"{bm.fraction_key(f):>24}" for f in fractions))
    for label, task, fig in rows:
        cells = [" / ".join(f3(m.get(f"{p}transfer_{task}_{bm.fraction_key(f)}_{fig}"))
                            for p in ("", "baseline_")) for f in fractions]
        print(f"{label:<18}" + "".join(f"{c:>24}" for c in cells))


def _print_retrieval(m: dict, f3, ci, level: float) -> None:
    print(f"\nretrieval (test folds, n={m['n_test']}; distinct reports: {m['report_gallery_size']})")
    print(f"{'figure':<24}{f'trained [{level:.0%} CI]':>26}{'untrained':>11}{'chance':>9}{'majority':>10}{'shuffle':>9}")
    names = [(f"ecg_to_text_r{k}", f"ecg_to_text_chance_r{k}", "ecg_to_text_majority_r1" if k == 1 else None)
             for k in bm.KS]
    for sfx in bm.NOTIONS:
        names += [(f"ecg_to_report{sfx}_r{k}", f"ecg_to_report{sfx}_chance_r{k}",
                   f"ecg_to_report{sfx}_majority_r1" if k == 1 else None) for k in bm.KS]
    for key, chance, major in names:
        print(f"{key:<24}{ci(key):>26}{f3(m.get('baseline_' + key)):>11}{f3(m[chance]):>9}"
              f"{f3(m.get(major)):>10}{f3(m[_shuffle(key)]):>9}")
    for key in ("report_map_jaccard", "report_map_jaccard_norm"):
        print(f"{key:<24}{ci(key):>26}{f3(m.get('baseline_' + key)):>11}"
              f"{f3(m[key + '_chance']):>9}{'':>10}{f3(m[key + '_shuffle']):>9}")
    print(f"{'report_hubness_k10':<24}{f3(m['report_hubness_k10']):>26}{f3(m['baseline_report_hubness_k10']):>11}")
    for k in ("alignment_loss", "ecg_embedding_mean_cosine", "text_embedding_mean_cosine"):
        print(f"{k:<24}{f3(m[k]):>26}{f3(m['baseline_' + k]):>11}")


def _print_tasks(m: dict, fractions, f3, ci, level: float) -> None:
    print(f"\nAUC macro (test folds), trained [{level:.0%} CI] / untrained; probe C chosen on split.val_folds")
    cols = ["zero-shot"] + [f"probe {bm.fraction_key(f)}" for f in fractions]
    print(f"{'task':<17}{'classes':>8}" + "".join(f"{c:>36}" for c in cols))
    for task in lb.TASKS:
        keys = [f"zero_shot_{task}_auc_macro"] + [f"linear_probe_{task}_{bm.fraction_key(f)}_auc_macro"
                                                  for f in fractions]
        cells = [f"{ci(k)} / {f3(m.get('baseline_' + k))}" for k in keys]
        print(f"{task:<17}{m[task + '_n_classes']:>8}" + "".join(f"{c:>36}" for c in cells))
    print("\nprobe on z (the encoder's features): trained / untrained")
    print(f"{'task':<17}" + "".join(f"{'probe ' + bm.fraction_key(f):>24}" for f in fractions))
    for task in lb.TASKS:
        keys = [f"linear_probe_z_{task}_{bm.fraction_key(f)}_auc_macro" for f in fractions]
        cells = [" / ".join(f3(m.get(p + k)) for p in ("", "baseline_")) for k in keys]
        print(f"{task:<17}" + "".join(f"{c:>24}" for c in cells))
    val = [k for k in m if k.startswith("val_")]
    print("\nvalidation folds (for design choices): " + ", ".join(f"{k} {f3(m[k])}" for k in val))


def _shuffle(key: str) -> str:
    head, k = key.rsplit("_r", 1)
    return f"{head}_shuffle_r{k}"


def reconstruction_figures(path: Path, model, inp) -> dict:
    """The decoder's test-fold reconstruction error (mean squared error on the normalised signal, in units of the
    lead's training-fold variance): reconstruction_mse (all leads) and reconstruction_mse_<lead>; {} for a model
    trained without the reconstruction term."""
    if model.decoder is None:
        return {}
    from ecgalign.ptbxl import LEADS

    err = np.asarray(art.load_array(path, len(inp.reports), "ecg_embeddings"))[inp.test]
    leads = LEADS if err.shape[1] == len(LEADS) else [str(i) for i in range(err.shape[1])]
    return {"reconstruction_mse": round(float(err.mean()), 6),
            **{f"reconstruction_mse_{lead}": round(float(v), 6) for lead, v in zip(leads, err.mean(axis=0))}}


def main(data_dir: str | Path = art.DATA, params_path: str | Path = art.PARAMS,
         metrics_path: str | Path = art.EVAL_METRICS, plots_dir: str | Path = art.PLOTS,
         dvclive_dir: str | Path = art.DVCLIVE, statements_path: str | Path | None = None) -> dict:
    """Run the stage; returns the metrics written to metrics_path. statements_path (default: beside metrics_path,
    statements.json) gets the per-statement detector AUCs (ecgalign.attribution.statement_directions); beside
    metrics_path, <stem>_resamples.json gets the figures under the kept bootstrap resamples."""
    start = time.time()
    p = params_mod.load(params_path)
    ep = p.evaluate
    data, plots_dir = Path(data_dir), Path(plots_dir)
    inp = bm.load_inputs(data, p.split)
    test, train, val = inp.test, inp.train, inp.val
    model = load_model(art.under(data, art.MODEL))
    print(f"evaluate: {len(test)} test records (folds {p.split.test_folds}), {len(train)} train (folds "
          f"{p.split.label_folds}, {p.split.protocol} protocol) and {len(val)} validation records for the probes, "
          f"{model.config['encoder']} {'supervised control' if model.supervised else 'aligned'} model")
    prep, counts, task_counts, boot_metrics = bm.prepared(inp, ep)
    emb = bm.split_embeddings(inp, inp.z_ecg, inp.e_ecg)
    trained, extras = bm.model_figures(model, inp, prep, emb, ep, counts, task_counts, jobs=bm.cores())
    emb_trained_test = emb["e"]["test"]
    untrained = load_baseline(data, len(test))
    levels = bm.retrieval_levels(prep, test, ep.shuffles, ep.seed)
    metrics = {"n_test": int(len(test)), "n_train": int(len(train)), "n_val": int(len(val)),
               "ci_level": ep.ci_level, **boot_metrics, "objective": "supervised" if model.supervised else "alignment",
               "protocol": p.split.protocol, "pretrain_folds": p.split.pretrain_pool,
               "label_folds": p.split.label_folds, "label_pool_size": int(len(train)), **levels, **trained,
               **untrained}
    metrics.update(reconstruction_figures(art.under(data, art.RECON_ERROR), model, inp))
    if model.supervised:
        metrics.update(not_defined_figures())

    metrics = {k: None if isinstance(v, float) and not np.isfinite(v) else v for k, v in metrics.items()}
    metrics = write_metrics(metrics_path, metrics, ep.seed, ep.bootstrap)
    curve = "objective" if model.supervised else "alignment_loss"   # the supervised control: its BCE
    curves = {s: plots.read_curve(Path(dvclive_dir) / "plots" / "metrics" / s / f"{curve}.tsv")
              for s in ("train", "val")}
    if plots.plot_loss(curves, plots_dir / "loss.png", "BCE" if model.supervised else "alignment loss") is None:
        print(f"plots/loss.png skipped: no {dvclive_dir}/plots/metrics/{{train,val}}/{curve}.tsv")
    statements_path = statements_path or Path(metrics_path).with_name("statements.json")
    if model.supervised:
        plots.plot_embedding_map(np.asarray(inp.z_ecg[test]), None, inp.primary, plots_dir / "embedding_map.png",
                                 ep.map_points, ep.seed)
        plots.plot_not_defined(plots_dir / "statement_auc.png", "Statement directions", NOT_DEFINED_REASON)
        write_json(statements_path, {"statement_auc_macro": None, "not_defined_reason": NOT_DEFINED_REASON})
    else:
        plots.plot_embedding_map(np.asarray(inp.e_ecg[test]), extras["e_text"], inp.primary,
                                 plots_dir / "embedding_map.png", ep.map_points, ep.seed)
        directions = statement_directions(emb_trained_test, extras["statement_keys"], inp.statement_codes,
                                          [inp.reports[i]["scp_codes"] for i in test])
        write_json(statements_path, statement_metrics(directions))
        plot_statement_auc(directions, plots_dir / "statement_auc.png")
    head = "class head's" if model.supervised else "zero-shot"
    plots.plot_roc(extras["labels"], extras["zero_shot_scores"], extras["classes"], plots_dir / "zero_shot_roc.png",
                   title=f"Superclass ROC, {head} scores, test folds (n={len(test)})")
    plots.plot_tasks(metrics, lb.TASKS, [bm.fraction_key(f) for f in ep.label_fractions], plots_dir / "tasks.png")
    print_summary(metrics, ep.label_fractions, ep.ci_level)
    print(f"wrote {metrics_path} and {plots_dir}/*.png in {time.time() - start:.1f} s")
    return metrics


if __name__ == "__main__":
    from ecgalign.cost import measured
    from ecgalign.errors import run
    with measured("evaluate"):
        run(main)
