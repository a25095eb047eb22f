"""The evaluate stage's figures for one model, as flat metric keys: retrieval with its chance, majority and shuffle
levels, zero-shot and linear-probe AUC on the six PTB-XL benchmark tasks at each label fraction, percentile bootstrap
intervals over test records (95 % by default, `evaluate.ci_level`), and cheap validation-fold figures for design
choices (no bootstrap).

Intervals. Retrieval figures resample the test records as queries; the gallery (the test records' texts, or their
distinct reports) stays the one of the full test fold, so retrieval intervals are conditional on the gallery.
Macro AUCs resample each task's test records with `stats.class_complete_counts` (every scored class keeps a positive
and a negative in every resample, as the PTB-XL benchmark does); `{task}_bootstrap_rejected` counts the draws
rejected for missing one.

Each figure with an interval also keeps its values under the first resamples (ecgalign.resamples), for the grid's
paired two-level bootstrap.

Inputs are arrays: `prepare` builds everything that depends only on the records (labels, groups, subsamples);
`model_figures` takes one model's embeddings. Two stages use them: `baseline` (src/evaluate_baseline.py: the untrained
reference model, `untrained_model`, whose figures depend on the data, ecg.*, train.proj_dim and evaluate.* only, so
DVC's run cache serves them to every experiment that shares those) and `evaluate` (src/evaluate_alignment.py: the
trained model, and the JSON).
"""
from __future__ import annotations

import multiprocessing
import os
from types import SimpleNamespace

import numpy as np

from . import artifacts as art
from . import evaluation as ev
from . import labels as lb
from . import probe as pr
from . import stats
from . import transfer as tr
from .resamples import RESAMPLED, add_interval, add_mean_interval
from .artifacts import REPORTS
from .errors import ArtifactError
from .probe import fraction_key
from .ptbxl import DATABASE, read_statements
from .reports import code_set

KS = (1, 5, 10)
NOTIONS = {"": "exact", "_codes": "codes", "_super": "super"}   # key suffix -> relevance notion of a report hit


def text_keys(reports: list[dict], source: str = "statements") -> list:
    """Each record's text identity under text.source, for the exact retrieval notion (a hit = a retrieved record
    whose text is identical to the query's, the gallery = the distinct texts): the canonical code set for
    statements, the translated free-text report for report, the pair of both for both."""
    if source == "statements":
        return [code_set(r["scp_codes"]) for r in reports]
    if source not in ("report", "both"):
        raise ValueError(f"text.source={source!r} is not one of statements, report, both")
    if any("report_en" not in r for r in reports):
        raise ArtifactError(f"{REPORTS} has no report_en, which text.source={source} needs: rerun the "
                            f"reports stage (dvc repro -f reports)")
    if source == "report":
        return [r["report_en"] for r in reports]
    return [(code_set(r["scp_codes"]), r["report_en"]) for r in reports]


def prepare(reports: list[dict], statements, train, val, test, fractions, seed: int,
            source: str = "statements") -> SimpleNamespace:
    """Everything the figures need that does not depend on a model: per task (Y, classes, keep), the prompt
    statements of each class, the label-fraction subsamples of the training rows (seeded, the same for every
    model), and per record its report identities (exact: the record's text under text.source, see text_keys;
    codes without likelihoods; superclass set) and multi-hot codes (for Jaccard relevance)."""
    scp = [r["scp_codes"] for r in reports]
    tasks, class_codes, subsamples = {}, {}, {}
    for t, task in enumerate(lb.TASKS):
        y, classes, keep = lb.task_labels(scp, statements, task)
        tasks[task] = SimpleNamespace(y=y, classes=classes, keep=keep)
        class_codes[task] = lb.class_statements(statements, task)
        pool = train[keep[train]]
        for f in fractions:
            rows = pr.label_fraction(y[pool], f, seed=[seed, t, int(round(f * 1e6))])
            subsamples[task, f] = pool[rows]
    sup = tasks["superdiagnostic"]
    super_sets = [" ".join(c for c, v in zip(sup.classes, row) if v) for row in sup.y]
    groups = {"exact": ev.group_ids(text_keys(reports, source)),
              "codes": ev.group_ids([code_set(c, likelihoods=False) for c in scp]),
              "super": ev.group_ids(super_sets)}
    codes, _ = ev.multi_hot([list(c) for c in scp])
    return SimpleNamespace(train=train, val=val, test=test, tasks=tasks, class_codes=class_codes,
                           subsamples=subsamples, fractions=list(fractions), groups=groups, codes=codes)


def task_bootstrap(prep: SimpleNamespace, n_boot: int, seed: int) -> tuple[dict, dict]:
    """({task: class-complete resample multiplicities of the task's test records}, metrics: per task the number of
    rejected draws and of resamples kept). Model-free: the trained and untrained models share the resamples."""
    counts, m = {}, {}
    for task, t in prep.tasks.items():
        counts[task], rejected = stats.class_complete_counts(t.y[prep.test][t.keep[prep.test]], n_boot, seed)
        m[f"{task}_bootstrap_rejected"], m[f"{task}_bootstrap_resamples"] = rejected, int(len(counts[task]))
    return counts, m


def retrieval_levels(prep: SimpleNamespace, rows, n_random: int, seed: int) -> dict:
    """Model-free reference levels of the retrieval figures on `rows`: chance (exact expectation of a random
    ranking), majority (always the most common answer), and the Jaccard mAP (raw and normalised by the ideal
    ranking's) of random rankings."""
    m = {}
    g = {k: v[rows] for k, v in prep.groups.items()}
    gallery = ev.first_of_each(g["exact"])
    for k in KS:
        m[f"ecg_to_text_chance_r{k}"] = ev.chance_recall(g["exact"], k)
    m["ecg_to_text_majority_r1"] = ev.majority_share(g["exact"])
    m["report_gallery_size"] = int(len(gallery))
    for sfx, notion in NOTIONS.items():
        for k in KS:
            m[f"ecg_to_report{sfx}_chance_r{k}"] = ev.gallery_chance(g[notion], g[notion][gallery], k)
        m[f"ecg_to_report{sfx}_majority_r1"] = ev.majority_share(g[notion])
    rel = ev.jaccard(prep.codes[rows], prep.codes[rows][gallery])
    ideal = ev.ideal_average_precision(rel)
    rng = np.random.default_rng(seed)
    aps = [ev.graded_average_precision(rng.normal(size=(len(rows), 2)), rng.normal(size=(len(gallery), 2)), rel,
                                       seed=seed + i) for i in range(n_random)]
    m["report_map_jaccard_chance"] = float(np.mean([np.nanmean(ap) for ap in aps]))
    m["report_map_jaccard_norm_chance"] = float(np.mean([np.nanmean(ap / ideal) for ap in aps]))
    return m


def retrieval(prep: SimpleNamespace, rows, e_ecg, e_text, counts=None, n_shuffles: int = 5, seed: int = 0,
              prefix: str = "", level: float = stats.LEVEL) -> dict:
    """Retrieval figures of one model on `rows` (e_ecg, e_text row-aligned with rows; ranked by cosine): ECG -> text
    of every record (ecg_to_text_r*, a hit = the same text: the canonical code set under text.source=statements,
    see text_keys), ECG -> the gallery of distinct reports (ecg_to_report{,_codes,_super}_r*), Jaccard mAP over that gallery (raw, and
    normalised: each query's AP divided by its ideal ranking's, report_map_jaccard_norm), top-10 hubness, each
    recall's shuffle null; with bootstrap intervals at `level` when `counts` (B x len(rows): resampled queries,
    fixed gallery) is given."""
    m = {}
    g = {k: v[rows] for k, v in prep.groups.items()}
    gallery = ev.first_of_each(g["exact"])
    per_record = {}
    rel_text = [(g["exact"], g["exact"])]
    rel_report = [(g[n], g[n][gallery]) for n in NOTIONS.values()]
    (hits,) = ev.ranked_hits(e_ecg, e_text, rel_text, KS)
    per_record["ecg_to_text"] = hits
    for sfx, h in zip(NOTIONS, ev.ranked_hits(e_ecg, e_text[gallery], rel_report, KS)):
        per_record[f"ecg_to_report{sfx}"] = h
    nulls = {"ecg_to_text": ev.shuffle_null(e_ecg, e_text, rel_text, KS, n_shuffles, seed)[0]}
    for sfx, h in zip(NOTIONS, ev.shuffle_null(e_ecg, e_text[gallery], rel_report, KS, n_shuffles, seed)):
        nulls[f"ecg_to_report{sfx}"] = h
    for name, hits in per_record.items():
        for j, k in enumerate(KS):
            key = f"{prefix}{name}_r{k}"
            m[key] = float(hits[:, j].mean())
            if counts is not None:
                add_mean_interval(m, key, hits[:, j], counts, level)
            m[f"{prefix}{name}_shuffle_r{k}"] = float(nulls[name][j])
    rel = ev.jaccard(prep.codes[rows], prep.codes[rows][gallery])
    ideal = ev.ideal_average_precision(rel)
    ap = ev.graded_average_precision(e_ecg, e_text[gallery], rel, seed=seed)
    perm = np.random.default_rng(seed).permutation(len(rows))
    ap_shuffle = ev.graded_average_precision(np.asarray(e_ecg)[perm], e_text[gallery], rel, seed=seed)
    for name, per_query, null in (("report_map_jaccard", ap, ap_shuffle),
                                  ("report_map_jaccard_norm", ap / ideal, ap_shuffle / ideal)):
        m[f"{prefix}{name}"] = float(np.nanmean(per_query))
        if counts is not None:
            add_mean_interval(m, f"{prefix}{name}", np.nan_to_num(per_query), counts, level)
        m[f"{prefix}{name}_shuffle"] = float(np.nanmean(null))
    m[f"{prefix}report_hubness_k10"] = ev.hubness(e_ecg, e_text[gallery], 10)
    return m


def _auc_figures(m: dict, key: str, y, scores, classes, counts, per_class_prefix: str | None,
                 level: float = stats.LEVEL) -> int:
    """Macro AUC (and per class when per_class_prefix is given) of the columns of `scores` that are finite and
    have both label values, with intervals when counts is given; returns the number of classes scored."""
    ok = pr.two_valued(y) & np.isfinite(scores).all(axis=0)
    if not ok.any():
        m[key] = None
        return 0
    if counts is None:
        m[key] = float(np.mean(stats.auc_columns(y[:, ok], scores[:, ok])[0]))
        return int(ok.sum())
    s = stats.auc_summary(y[:, ok], scores[:, ok], counts, level)
    m[key] = s["macro"]
    add_interval(m, key, s["macro_ci"], s["macro_boot"])
    if per_class_prefix is not None:
        for c, auc, ci in zip(np.asarray(classes)[ok], s["auc"], s["ci"]):
            m[f"{per_class_prefix}{c}"] = float(auc)
            add_interval(m, f"{per_class_prefix}{c}", ci)
    return int(ok.sum())


def tasks(prep: SimpleNamespace, emb: dict, prompts_of, counts, c_grid, prefix: str = "", log=print,
          level: float = stats.LEVEL, jobs: int = 1) -> dict:
    """Zero-shot and linear-probe figures on every task; emb = {"e": {split: rows x d}, "z": {...}} for the
    splits "train" (all training rows), "val", "test", row-aligned with prep.train/val/test; prompts_of(task) ->
    (score, classes it scores): score(e rows) -> rows x len(classes) zero-shot scores (`prompt_scorer`,
    `label_head_scorer`), or prompts_of None: every zero-shot figure is then None. counts = {task: resamples of
    the task's test records} (`task_bootstrap`) or None
    for no intervals. Probes fit on each label-fraction subsample, C chosen on the validation rows.

    jobs > 1: the tasks run in that many forked processes (each probe fits on one thread anyway, probe.one_thread),
    the costliest tasks first; the figures are the same as with jobs = 1 (tested)."""
    prompts = {task: prompts_of(task) if prompts_of is not None else None for task in prep.tasks}
    args = (prep, emb, prompts, counts, c_grid, prefix, level)
    names = list(prep.tasks)
    if jobs > 1 and len(names) > 1 and "fork" in multiprocessing.get_all_start_methods():
        order = sorted(names, key=lambda task: -len(prep.tasks[task].classes))   # the most classes, the longest
        _FORKED["args"] = args
        try:
            with multiprocessing.get_context("fork").Pool(min(jobs, len(names))) as pool:
                parts = dict(zip(order, pool.map(_forked_task, order, chunksize=1)))
        finally:
            _FORKED.clear()
    else:
        parts = {task: task_figures(task, *args) for task in names}
    m = {}
    for task in names:   # the key order of one process, whatever the jobs
        m.update(parts[task])
        log(f"  {prefix or 'trained '}{task}: zero-shot {_fmt(m[f'{prefix}zero_shot_{task}_auc_macro'])}, probe "
            + ", ".join(f"{fraction_key(f)} {_fmt(m[f'{prefix}linear_probe_z_{task}_{fraction_key(f)}_auc_macro'])}"
                        + (f" (e {_fmt(m[f'{prefix}linear_probe_{task}_{fraction_key(f)}_auc_macro'])})"
                           if "e" in emb else "") for f in prep.fractions))
    return m


_FORKED: dict = {}   # the arguments a forked worker of `tasks` inherits (nothing is pickled but the task's name)


def _forked_task(task: str) -> dict:
    import torch
    torch.set_num_threads(1)   # one core per worker: the workers are the parallelism
    return task_figures(task, *_FORKED["args"])


def task_figures(task: str, prep: SimpleNamespace, emb: dict, prompts: dict, counts, c_grid, prefix: str,
                 level: float) -> dict:
    """One task's figures (see `tasks`); prompts[task]: (prompts, classes with a prompt) or None."""
    m = {}
    pos = {r: i for i, r in enumerate(prep.train)}
    full = max(prep.fractions)
    t = prep.tasks[task]
    keep_test, keep_val = t.keep[prep.test], t.keep[prep.val]
    y_test, y_val = t.y[prep.test][keep_test], t.y[prep.val][keep_val]
    c_test = None if counts is None else counts[task]
    m[f"{prefix}{task}_n_test"] = int(keep_test.sum())
    # zero-shot
    zero_shot = prompts[task] is not None
    score, with_prompt = prompts[task] if zero_shot else (None, [])
    scores = np.full(y_test.shape, np.nan)
    if len(with_prompt):
        cols = [t.classes.index(c) for c in with_prompt]
        scores[:, cols] = score(emb["e"]["test"][keep_test])
    per_class = f"{prefix}zero_shot_auc_" if task == "superdiagnostic" else None
    n = _auc_figures(m, f"{prefix}zero_shot_{task}_auc_macro", y_test, scores, t.classes, c_test, per_class, level)
    if not zero_shot:   # the classes a probe can score
        n = int(pr.two_valued(y_test).sum())
    m[f"{prefix}{task}_n_classes"] = n
    m[f"{prefix}{task}_n_classes_dropped"] = len(t.classes) - n
    if task == "superdiagnostic":
        for sfx in ("", "_ci_low", "_ci_high", RESAMPLED):
            m[f"{prefix}zero_shot_auc_macro{sfx}"] = m.get(f"{prefix}zero_shot_{task}_auc_macro{sfx}")
        if len(with_prompt):
            val_scores = score(emb["e"]["val"][keep_val])
            m[f"{prefix}val_zero_shot_auc_macro"] = _macro_or_none(t.y[prep.val][keep_val][:, cols], val_scores)
    # linear probes
    # z (the encoder's own features) is the primary probe: the same features for every model, aligned, supervised
    # or untrained; e (the projection, or the supervised control's class logits) is the secondary one
    for f in prep.fractions:
        rows = np.array([pos[r] for r in prep.subsamples[task, f]], dtype=np.int64)
        for space, name in (("e", "linear_probe"), ("z", "linear_probe_z")):
            if space not in emb:   # features without a projection (MiniRocket): the z probes only
                continue
            x = emb[space]
            fit = pr.probe(x["train"][rows], t.y[prep.subsamples[task, f]], x["val"][keep_val], y_val,
                           x["test"][keep_test], c_grid)
            key = f"{prefix}{name}_{task}_{fraction_key(f)}"
            per_class = f"{prefix}{name}_auc_" if (task == "superdiagnostic" and f == full) else None
            n = _auc_figures(m, f"{key}_auc_macro", y_test, fit["scores"], t.classes, c_test, per_class, level)
            m[f"{key}_c"], m[f"{key}_n_train"], m[f"{key}_n_classes"] = fit["c"], int(len(rows)), n
            if task == "superdiagnostic" and f == full:
                for sfx in ("", "_ci_low", "_ci_high", RESAMPLED):
                    m[f"{prefix}{name}_auc_macro{sfx}"] = m.get(f"{key}_auc_macro{sfx}")
                m[f"{prefix}val_{name}_auc_macro"] = fit["val_auc"]   # val_linear_probe(_z)_auc_macro
    return m


def _macro_or_none(y, scores):
    ok = pr.two_valued(y)
    return float(np.mean(stats.auc_columns(y[:, ok], scores[:, ok])[0])) if ok.any() else None


def _fmt(v) -> str:
    return "-" if v is None else f"{v:.3f}"


def validation(prep: SimpleNamespace, e_ecg_val, e_text_val, prefix: str = "") -> dict:
    """Cheap validation-fold retrieval figures (no bootstrap, no null): for design choices made on split.val_folds."""
    g = prep.groups["exact"][prep.val]
    m = {f"{prefix}val_alignment_loss": ev.alignment_loss(e_ecg_val, e_text_val)}
    for k, r in ev.recall_at_k(e_ecg_val, e_text_val, g, KS).items():
        m[f"{prefix}val_ecg_to_text_r{k}"] = r
    return m


# ------------------------------------------------------------------------------------------- the stages' shared part

def cores() -> int:
    """The cores this process may use (the `jobs` of `tasks`)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def load_inputs(data, split, embeddings: bool = True, text: bool = True) -> SimpleNamespace:
    """The stages' inputs under the folder `data`, checked to be row-aligned with reports.jsonl (ecgalign.artifacts:
    errors name the file); embeddings=False: without the trained model's ECG embeddings (the baseline stage, which
    encodes the signals itself); text=False: without data/text (the minirocket stage, which has no text side and
    so need not run again when only the text changes; its retrieval identities are the statements'). The signals
    are not among them: evaluate scores embeddings only."""
    reports_path = art.under(data, art.REPORTS)
    reports = art.load_reports(reports_path)
    n = len(reports)
    folds = np.array([r["strat_fold"] for r in reports])
    test = np.flatnonzero(np.isin(folds, split.test_folds))
    pretrain = np.flatnonzero(np.isin(folds, split.pretrain_pool))
    train = lb.label_pool(folds, split)
    val = np.flatnonzero(np.isin(folds, split.val_folds))
    if len(test) < 2 or len(train) < 2:
        raise ArtifactError(f"{reports_path}: {len(test)} records in split.test_folds={split.test_folds} and "
                            f"{len(train)} in the label pool (folds {split.label_folds}); need at least 2 in each")
    z_ecg = e_ecg = None
    if embeddings:
        z_ecg, e_ecg = art.load_ecg_embeddings(n, art.under(data, art.ECG_EMBEDDINGS), reports_path)
    record_text = statement_emb = None
    statements, text_source = [], "statements"
    if text:
        record_text = art.load_array(art.under(data, art.RECORD_EMBEDDINGS), n, "text_embeddings", reports_path)
        statements, statement_emb = art.load_statements(art.under(data, art.TEXT))
        text_source = art.load_text_source(art.under(data, art.TEXT))
    table = read_statements(art.under(data, art.RAW))
    sex, age = tr.demographics(art.under(data, art.RAW) / DATABASE, [r["ecg_id"] for r in reports])
    diagnostic_class = {code: c for code, c in table["diagnostic_class"].items() if isinstance(c, str)}
    return SimpleNamespace(
        reports=reports, test=test, train=train, val=val, pretrain=pretrain, table=table,
        primary=ev.primary_superclass([reports[i]["scp_codes"] for i in test], diagnostic_class, lb.SUPERCLASSES),
        statement_codes=[s["code"] for s in statements], statement_emb=statement_emb,
        e_ecg=e_ecg, z_ecg=z_ecg, text=record_text, sex=sex, age=age, text_source=text_source)


def prepared(inp: SimpleNamespace, ep) -> tuple[SimpleNamespace, np.ndarray, dict, dict]:
    """(prep, the test records' resamples, each task's class-complete resamples, their metrics) for evaluate.* =
    `ep`: model-free, the same in both stages."""
    prep = prepare(inp.reports, inp.table, inp.train, inp.val, inp.test, ep.label_fractions, ep.seed,
                   inp.text_source)
    counts = stats.bootstrap_counts(len(inp.test), ep.bootstrap, ep.seed)
    task_counts, boot_metrics = task_bootstrap(prep, ep.bootstrap, ep.seed)
    return prep, counts, task_counts, boot_metrics


def split_embeddings(inp: SimpleNamespace, z_ecg, e_ecg) -> dict:
    """{"e"|"z": {"train"|"val"|"test": rows}} of full-length embedding arrays."""
    splits = {"train": inp.train, "val": inp.val, "test": inp.test}
    return {space: {s: np.asarray(arr[rows]) for s, rows in splits.items()}
            for space, arr in (("e", e_ecg), ("z", z_ecg))}


def model_figures(model, inp: SimpleNamespace, prep, emb: dict, ep, counts, task_counts, prefix: str = "",
                  jobs: int = 1) -> tuple[dict, dict]:
    """Every figure of one model given its ECG embeddings emb = {"e"|"z": {"train"|"val"|"test": array}}, the
    test records' resamples (counts), each task's class-complete ones (task_counts) and evaluate.* (ep):
    (metrics with `prefix`, extras for the plots). A supervised control: the probes and the z collapse figure only.
    jobs: processes for the tasks (`tasks`)."""
    z_cos = {f"{prefix}ecg_z_mean_cosine": ev.mean_pairwise_cosine(emb["z"]["test"]),
             **tr.transfer_figures(emb["z"], inp.sex, inp.age, {"train": inp.train, "val": inp.val, "test": inp.test},
                                   ep.label_fractions, ep.seed, ep.probe_c_grid, prefix, counts, ep.ci_level)}
    if model.supervised:
        m, extras = label_head_figures(inp, prep, emb, ep, counts, task_counts, prefix, jobs)
        return {**z_cos, **m}, extras
    e_text = ev.project_text(model, np.asarray(inp.text[inp.test]))
    statements = ev.project_text(model, inp.statement_emb)
    m = {f"{prefix}alignment_loss": ev.alignment_loss(emb["e"]["test"], e_text),
         **retrieval(prep, inp.test, emb["e"]["test"], e_text, counts, ep.shuffles, ep.seed, prefix, ep.ci_level)}
    m[f"{prefix}ecg_embedding_mean_cosine"] = ev.mean_pairwise_cosine(emb["e"]["test"])
    m[f"{prefix}text_embedding_mean_cosine"] = ev.mean_pairwise_cosine(e_text)
    m.update(z_cos)
    if len(inp.val) >= 2:
        m.update(validation(prep, emb["e"]["val"], ev.project_text(model, np.asarray(inp.text[inp.val])), prefix))

    def prompts_of(task):
        return prompt_scorer(statements, inp.statement_codes, prep, task)

    m.update(tasks(prep, emb, prompts_of, task_counts, ep.probe_c_grid, prefix, level=ep.ci_level, jobs=jobs))
    sup = prep.tasks["superdiagnostic"]
    score, classes = prompts_of("superdiagnostic")
    y = sup.y[inp.test][:, [sup.classes.index(c) for c in classes]]
    return m, {"e_text": e_text, "classes": classes, "labels": y, "statement_keys": statements,
               "zero_shot_scores": score(emb["e"]["test"])}


def prompt_scorer(statement_keys: np.ndarray, statement_codes: list[str], prep: SimpleNamespace, task: str):
    """An aligned model's zero-shot on `task`: (score, classes): cosine between the ECG embeddings and each class's
    prompt ensemble of projected statements (`evaluation.class_prompts`)."""
    prompts, classes = ev.class_prompts(statement_keys, statement_codes, prep.class_codes[task],
                                        prep.tasks[task].classes)
    return (lambda e: ev.zero_shot_scores(e, prompts)), classes


def label_head_scorer(head_codes: list[str], prep: SimpleNamespace, task: str):
    """The supervised control's zero-shot on `task`: (score, classes): a class's score is the sum of the head's
    logits of the class's statements (as the aligned model's prompt ensemble pools them), for the classes with at
    least one statement among the head's codes. No fitting on the task's labels: the head's own output."""
    col = {c: i for i, c in enumerate(head_codes)}
    rows, classes = [], []
    for c in prep.tasks[task].classes:
        idx = [col[code] for code in prep.class_codes[task].get(c, []) if code in col]
        if idx:
            rows.append(np.zeros(len(head_codes)))
            rows[-1][idx] = 1.0
            classes.append(c)
    members = np.stack(rows) if rows else np.zeros((0, len(head_codes)))
    return (lambda logits: np.asarray(logits, dtype=np.float64) @ members.T), classes


def label_head_figures(inp: SimpleNamespace, prep: SimpleNamespace, emb: dict, ep, counts, task_counts,
                       prefix: str = "", jobs: int = 1) -> tuple[dict, dict]:
    """The supervised control's figures from its class head (e = the logits of the codes `labels.supervised_targets`
    gives over the pretraining rows, in that order): the probes; zero-shot (`label_head_scorer`); retrieval, each
    test ECG ranking the gallery of distinct reports by the head's log-likelihood of the report's code set
    (independent Bernoullis: up to a per-query constant, the sum of the logits of the set's codes; codes outside
    the head count as absent), so "alignment adds zero-shot and retrieval" is a comparison, not a definition.
    Returns (metrics, extras for the zero-shot ROC plot)."""
    y, codes = lb.supervised_targets([r["scp_codes"] for r in inp.reports], inp.table, inp.pretrain)
    logits = emb["e"]["test"]
    if logits.shape[1] != len(codes):
        raise ArtifactError(f"the supervised control's head has {logits.shape[1]} logits, but the pretraining folds "
                            f"hold {len(codes)} SCP codes: the model and the data disagree; re-run dvc repro train")
    q, k = ev.as_cosine(logits, y[inp.test])
    m = retrieval(prep, inp.test, q, k, counts, ep.shuffles, ep.seed, prefix, ep.ci_level)
    m.update(tasks(prep, emb, lambda task: label_head_scorer(codes, prep, task), task_counts, ep.probe_c_grid,
                   prefix, level=ep.ci_level, jobs=jobs))
    sup = prep.tasks["superdiagnostic"]
    score, classes = label_head_scorer(codes, prep, "superdiagnostic")
    return m, {"classes": classes, "labels": sup.y[inp.test][:, [sup.classes.index(c) for c in classes]],
               "zero_shot_scores": score(logits)}


def untrained_model(p, text_dim: int, lead_mean, lead_std, n_leads: int = 12, length: int = 1000):
    """The untrained reference (baseline_*): the aligned architecture of ecg.* and train.proj_dim with the training
    folds' lead normalisation, initialised from evaluate.seed, in eval mode. The same for every train.loss: for the
    supervised control too it is the aligned architecture (its z, the probes' primary features, are those of the
    same random encoder). With the trained model's config this is exactly the model the evaluate stage built
    before the baseline stage existed (same modules, same order, same seed). `length`: samples a lead (sizes the
    dual_attention encoder); no decoder: the reconstruction term does not change the untrained embeddings."""
    import torch

    from .models import build_model
    torch.manual_seed(p.evaluate.seed)
    return build_model(p.ecg.encoder, p.ecg.embed_dim, text_dim, p.train.proj_dim, lead_mean=lead_mean,
                       lead_std=lead_std, n_leads=n_leads, length=length, width=p.ecg.width).eval()
