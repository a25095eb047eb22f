"""The supervised control (train.loss = supervised) and the two label protocols (split.pretrain_folds): training,
the stage scripts, evaluate's not-defined figures, fine-tuning's init, the label pool and the grid's n/a cells."""
import copy
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml

from ecgalign import finetune as ft
from ecgalign import grid as g
from ecgalign import params
from ecgalign.labels import label_pool, supervised_targets
from ecgalign.models import build_model, encode_all, load_model, save_checkpoint
from ecgalign.ptbxl import read_statements
from ecgalign.training import train
from test_evaluation import N_RECORDS, STATEMENTS, run_stage, stage_dir  # noqa: F401 (a fixture)
from test_training import REPO, Recorder, assert_same_weights, config, make_data, state_dict

BASE = yaml.safe_load((REPO / "params.yaml").read_text())
QUIET = dict(log=lambda *a: None)


def split(**kw):
    raw = copy.deepcopy(BASE)
    raw["split"].update(kw)
    return params.parse(raw).split


# --- params and the label pool --------------------------------------------------------------------------------------

def test_pretrain_folds_default_is_the_in_sample_protocol():
    s = split()
    assert s.pretrain_folds is None and s.protocol == "in-sample"
    assert s.pretrain_pool == s.label_folds == [1, 2, 3, 4, 5, 6, 7, 8]
    # naming every training fold is the in-sample protocol too
    assert split(pretrain_folds=[8, 7, 6, 5, 4, 3, 2, 1]).protocol == "in-sample"


def test_disjoint_protocol_splits_the_training_folds():
    s = split(pretrain_folds=[1, 2, 3, 4])
    assert s.protocol == "disjoint" and s.pretrain_pool == [1, 2, 3, 4] and s.label_folds == [5, 6, 7, 8]
    assert s.val_folds == [9] and s.test_folds == [10]


@pytest.mark.parametrize("value, message", [
    ([1, 9], "split.pretrain_folds has fold(s) [9] that are not in split.train_folds = [1, 2, 3, 4, 5, 6, 7, 8]"),
    ([11], "split.pretrain_folds has [11]; strat_fold values are 1-10"),
    ([], "split.pretrain_folds must name at least one fold"),
    ("1-4", "split.pretrain_folds must be list, got '1-4'"),
])
def test_bad_pretrain_folds_are_named(value, message):
    with pytest.raises(params.ParamsError) as e:
        split(pretrain_folds=value)
    assert message in str(e.value)


def test_label_pool_is_the_training_folds_pretraining_did_not_see():
    folds = np.array([1, 2, 3, 5, 9, 10, 5, 4, 8])
    assert label_pool(folds, split()).tolist() == [0, 1, 2, 3, 6, 7, 8]
    assert label_pool(folds, split(pretrain_folds=[1, 2, 3, 4])).tolist() == [3, 6, 8]
    with pytest.raises(params.ParamsError, match=r"the label pool is empty: split.train_folds \[1, 2, 3, 4, 5, 6, 7, "
                                                 r"8\] minus split.pretrain_folds \[1, 2, 3, 4, 5, 8\] = folds \[6, 7\]"
                                                 r" hold no record \(strat_fold values present: \[1, 2, 3, 4, 5, 8, "
                                                 r"9, 10\]\)"):
        label_pool(folds, split(pretrain_folds=[1, 2, 3, 4, 5, 8]))


def test_supervised_targets_are_every_code_of_the_pretraining_rows():
    import pandas as pd

    table = pd.DataFrame({"diagnostic": [1.0, 1.0, None]}, index=["NORM", "IMI", "SR"])
    scp = [{"NORM": 100.0, "SR": 0.0}, {"IMI": 15.0}, {"NORM": 0.0}]
    y, codes = supervised_targets(scp, table, [0, 2])   # IMI only on row 1, outside the pool: no column
    assert codes == ["NORM", "SR"] and y.dtype == np.float32
    assert y.tolist() == [[1, 1], [0, 0], [1, 0]]   # likelihood 0.0 counts, as for the benchmark labels


# --- training -------------------------------------------------------------------------------------------------------

def labels(n):
    """Multi-hot codes of make_data's 4 report classes: class c carries code c and, for odd c, a shared code 4."""
    cls = np.arange(n) % 4
    y = np.zeros((n, 5), dtype=np.float32)
    y[np.arange(n), cls] = 1
    y[cls % 2 == 1, 4] = 1
    return y


def test_supervised_control_learns_and_its_checkpoint_says_so(tmp_path):
    sig, _, folds = make_data(n=64)
    live = Recorder()
    m = train(sig, labels(64), folds, config(loss="supervised", epochs=3), tmp_path, tmp_path, live, **QUIET)
    objective = [v for _, v in live.logged["train/objective"]]
    assert objective[-1] < 0.7 * objective[0], objective
    assert m["objective"] == "supervised" and m["alignment_loss"] is None and m["temperature"] is None
    assert m["val_objective"] == min(v for _, v in live.logged["val/objective"][1:])   # selected on validation BCE
    assert "train/alignment_loss" not in live.logged
    ckpt = torch.load(tmp_path / "model.pt", weights_only=True)
    assert ckpt["objective"] == "supervised" and ckpt["config"]["objective"] == "supervised"
    model = load_model(tmp_path / "model.pt")
    assert model.supervised and model.text_proj is None
    z, logits = encode_all(model, sig)
    assert z.shape == (64, 16) and logits.shape == (64, 5)
    with pytest.raises(ValueError, match="a supervised model .* has no text head"):
        model.project_text(torch.zeros(1, 16))


@pytest.mark.parametrize("loss", ["infonce", "supervised"])
def test_pretraining_reads_only_the_pretraining_and_validation_folds(tmp_path, loss):
    """Rows of the label pool (folds 5-8) and the test fold: NaN there, in the targets and in the signals, changes
    nothing."""
    sig, text, folds = make_data(n=64)
    targets = labels(64) if loss == "supervised" else text
    hidden = np.isin(folds, [5, 6, 7, 8, 10])
    poisoned, poisoned_sig = targets.copy(), sig.copy()
    poisoned[hidden], poisoned_sig[hidden] = np.nan, np.nan
    cfg = config(loss=loss, epochs=2, train_folds=[1, 2, 3, 4])
    a = train(sig, targets, folds, cfg, tmp_path / "a", tmp_path / "sa", **QUIET)
    b = train(poisoned_sig, poisoned, folds, cfg, tmp_path / "b", tmp_path / "sb", **QUIET)
    assert a["n_train"] == 28 and np.isfinite(b["val_objective"])
    assert {k: v for k, v in a.items() if k not in ("train_seconds", "epoch_seconds")} == {k: v for k, v in b.items() if k not in ("train_seconds", "epoch_seconds")}
    assert_same_weights(state_dict(tmp_path / "a/model.pt"), state_dict(tmp_path / "b/model.pt"))


def test_signals_stage_normalises_with_the_pretraining_folds_only(ptbxl_mini, tmp_path):
    """src/extract_signals.py under the disjoint protocol: the statistics come from folds 1-4; random bytes in every
    other fold's WFDB files change those records' signals and not one bit of the statistics."""
    import wfdb
    from test_signals import table_rows

    rows = table_rows(ptbxl_mini, 60, 100)
    records = tmp_path / "records"
    for r in rows:
        for ext in (".hea", ".dat"):
            (records / r["filename_lr"]).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(ptbxl_mini / f"{r['filename_lr']}{ext}", records / f"{r['filename_lr']}{ext}")
    raw = tmp_path / "data/raw"
    raw.mkdir(parents=True)
    (raw / "dataset.json").write_text(json.dumps({"records_root": str(records), "sampling_rate": 100}))
    (tmp_path / "data/reports.jsonl").write_text("".join(json.dumps({**r, "scp_codes": {}}) + "\n" for r in rows))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def signals(pretrain_folds):
        p = copy.deepcopy(BASE)
        p["split"]["pretrain_folds"] = pretrain_folds
        (tmp_path / "params.yaml").write_text(yaml.safe_dump(p))
        run = subprocess.run([sys.executable, str(REPO / "src/extract_signals.py")], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stderr[-2000:]
        return (json.loads((tmp_path / "data/signals/stats.json").read_text()),
                np.load(tmp_path / "data/signals/signals.npy"))

    stats, x = signals([1, 2, 3, 4])
    seen = np.array([r["strat_fold"] in (1, 2, 3, 4) for r in rows])
    assert stats["train_folds"] == [1, 2, 3, 4] and stats["n_train_records"] == seen.sum() < len(rows)
    np.testing.assert_allclose(stats["mean"], x[seen].astype(np.float64).mean(axis=(0, 2)), rtol=1e-6, atol=1e-9)
    rng = np.random.default_rng(0)
    for r in np.array(rows)[~seen]:   # valid WFDB records (checksums and all) of loud noise
        path = records / r["filename_lr"]
        head = wfdb.rdheader(str(path))
        wfdb.wrsamp(path.name, fs=head.fs, units=head.units, sig_name=head.sig_name, fmt=["16"] * head.n_sig,
                    p_signal=rng.normal(0, 3, (head.sig_len, head.n_sig)), write_dir=str(path.parent))
    poisoned_stats, poisoned_x = signals([1, 2, 3, 4])
    assert poisoned_stats == stats
    np.testing.assert_array_equal(poisoned_x[seen], x[seen])
    assert not np.array_equal(poisoned_x[~seen], x[~seen])
    assert signals(None)[0]["mean"] != stats["mean"]   # the in-sample protocol: all training folds


# --- the stage scripts ----------------------------------------------------------------------------------------------

def write_table(path):
    import pandas as pd

    table = pd.DataFrame([s[:5] for s in STATEMENTS], columns=[
        "code", "Statement Category", "SCP-ECG Statement Description", "diagnostic_class",
        "diagnostic_subclass"]).set_index("code").replace("", None)
    for j, col in enumerate(("diagnostic", "form", "rhythm")):
        table[col] = [float(s[5][j]) if s[5][j] else None for s in STATEMENTS]
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(path)


def test_supervised_stage_scripts_disjoint(tmp_path):
    """src/train_alignment.py with train.loss = supervised on folds 1-4, then src/embed_ecg.py: no text is read."""
    sig, _, folds = make_data(n=64)
    codes = [{"NORM": 100.0, "SR": 0.0}, {"IMI": 50.0}, {"CLBBB": 100.0}, {"LVH": 50.0, "SR": 0.0}]
    data = tmp_path / "data"
    (data / "signals").mkdir(parents=True)
    np.save(data / "signals/signals.npy", sig)
    (data / "signals/stats.json").write_text(json.dumps({"mean": sig.mean((0, 2)).tolist(),
                                                         "std": sig.std((0, 2)).tolist(), "sampling_rate": 100,
                                                         "shape": list(sig.shape)}))
    write_table(data / "raw/scp_statements.csv")
    with open(data / "reports.jsonl", "w") as f:
        for i, fold in enumerate(folds):
            f.write(json.dumps({"ecg_id": i + 1, "strat_fold": int(fold), "scp_codes": codes[i % 4],
                                "report": "x"}) + "\n")
    p = copy.deepcopy(BASE)
    p["ecg"]["embed_dim"] = 16
    p["train"].update(loss="supervised", epochs=2, batch_size=16, device="cpu", threads=1)
    p["split"]["pretrain_folds"] = [1, 2, 3, 4]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(p))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    for script in ("train_alignment.py", "embed_ecg.py"):
        run = subprocess.run([sys.executable, str(REPO / "src" / script)], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stderr[-3000:]
    metrics = json.loads((tmp_path / "metrics/train.json").read_text())
    assert metrics["objective"] == "supervised" and metrics["protocol"] == "disjoint"
    assert metrics["pretrain_folds"] == [1, 2, 3, 4] and metrics["n_train"] == 28 and metrics["alignment_loss"] is None
    z, e = np.load(data / "ecg_embeddings/z_ecg.npy"), np.load(data / "ecg_embeddings/e_ecg.npy")
    assert z.shape == (64, 16) and e.shape == (64, 5)   # logits of the 5 codes of folds 1-4: NORM SR IMI CLBBB LVH

    # an empty label pool is one error line, before any work (evaluate reads the reports, then stops)
    p["split"].update(train_folds=[1, 2, 3, 4, 5, 6], pretrain_folds=[1, 2, 3, 4, 5])
    kept = [line for line in (data / "reports.jsonl").read_text().splitlines() if json.loads(line)["strat_fold"] != 6]
    (data / "reports.jsonl").write_text("\n".join(kept) + "\n")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(p))
    run = subprocess.run([sys.executable, str(REPO / "src/evaluate_alignment.py")], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 1 and run.stderr.strip().splitlines() == [
        "error: the label pool is empty: split.train_folds [1, 2, 3, 4, 5, 6] minus split.pretrain_folds "
        "[1, 2, 3, 4, 5] = folds [6] hold no record (strat_fold values present: [1, 2, 3, 4, 5, 7, 8, 9, 10]); set "
        "split.pretrain_folds to fewer folds, or null"]


# --- evaluate -------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def supervised_dir(stage_dir, tmp_path_factory):  # noqa: F811 (the fixture imported above)
    """test_evaluation's data dir with a supervised control in place of the aligned model, disjoint protocol."""
    root = tmp_path_factory.mktemp("supervised")
    shutil.copytree(stage_dir / "data", root / "data")
    p = copy.deepcopy(BASE)
    p["split"]["pretrain_folds"] = [1, 2, 3, 4]
    (root / "params.yaml").write_text(yaml.safe_dump(p))
    torch.manual_seed(1)
    reports = [json.loads(line) for line in (root / "data/reports.jsonl").read_text().splitlines()]
    folds = np.array([r["strat_fold"] for r in reports])
    _, codes = supervised_targets([r["scp_codes"] for r in reports], read_statements(root / "data/raw"),
                                  np.flatnonzero(np.isin(folds, [1, 2, 3, 4])))
    model = build_model("cnn1d", 8, 16, 4, lead_mean=np.zeros(12), lead_std=np.full(12, 2.0),
                        n_classes=len(codes))
    save_checkpoint(root / "data/model/model.pt", model, objective="supervised")
    z, e = encode_all(model, np.load(root / "data/signals/signals.npy"), batch_size=32)
    np.save(root / "data/ecg_embeddings/z_ecg.npy", z)
    np.save(root / "data/ecg_embeddings/e_ecg.npy", e)
    for s, values in (("train", [0.7, 0.5]), ("val", [0.7, 0.6])):
        curve = root / "dvclive/plots/metrics" / s
        curve.mkdir(parents=True)
        (curve / "objective.tsv").write_text("step\tobjective\n" + "".join(f"{i}\t{v}\n" for i, v in enumerate(values)))
    return root


def test_evaluate_says_what_a_supervised_control_has_not(supervised_dir):
    m = run_stage(supervised_dir)
    assert json.loads((supervised_dir / "metrics/eval.json").read_text()) == m
    assert m["objective"] == "supervised" and m["protocol"] == "disjoint" and m["label_folds"] == [5, 6, 7, 8]
    assert m["label_pool_size"] == m["n_train"] == 32 and m["pretrain_folds"] == [1, 2, 3, 4]
    for key in ("alignment_loss", "ecg_embedding_mean_cosine", "text_embedding_mean_cosine"):
        assert m[key] is None, key
    assert not any(k.startswith(("val_ecg_to", "val_alignment")) and m[k] is not None for k in m)
    assert set(m["not_defined"].split()) == {"alignment_loss", "text_embedding_mean_cosine",
                                             "ecg_embedding_mean_cosine", "val_alignment_loss", "val_ecg_to_text_*"}
    # the class head's own zero-shot and code-set retrieval, under the aligned model's keys
    for key in ("zero_shot_auc_macro", "zero_shot_all_auc_macro", "val_zero_shot_auc_macro"):
        assert 0 <= m[key] <= 1, key
    for key in ("ecg_to_report_codes_r10", "ecg_to_report_r1", "ecg_to_text_r10", "report_map_jaccard"):
        assert 0 <= m[key] <= 1 and m[f"{key}_ci_low"] <= m[key] <= m[f"{key}_ci_high"], key
    assert m["ecg_to_report_codes_chance_r10"] > 0
    # the untrained reference is the aligned architecture (the baseline stage): every baseline_ figure is defined
    assert not any(p.startswith("baseline_") for p in m["not_defined"].split())
    assert 0 <= m["baseline_zero_shot_auc_macro"] <= 1 and 0 <= m["baseline_ecg_to_text_r10"] <= 1
    assert "supervised control" in m["not_defined_reason"]
    # what applies: probes on every task and fraction (labels from folds 5-8 only), the untrained baseline, z collapse
    assert m["linear_probe_superdiagnostic_100pct_n_train"] == 32
    for task in ("superdiagnostic", "diagnostic", "all"):
        for f in ("1pct", "10pct", "100pct"):
            for space in ("", "_z"):
                assert 0 <= m[f"linear_probe{space}_{task}_{f}_auc_macro"] <= 1
                assert 0 <= m[f"baseline_linear_probe{space}_{task}_{f}_auc_macro"] <= 1
    assert m["superdiagnostic_n_classes"] == 5 and 0 <= m["linear_probe_z_auc_macro"] <= 1
    assert -1 <= m["ecg_z_mean_cosine"] <= 1 and -1 <= m["baseline_ecg_z_mean_cosine"] <= 1
    assert json.loads((supervised_dir / "metrics/statements.json").read_text())["statement_auc_macro"] is None
    for name in ("loss", "embedding_map", "zero_shot_roc", "tasks", "statement_auc"):
        assert (supervised_dir / "plots" / f"{name}.png").read_bytes()[:4] == b"\x89PNG"


def test_probe_subsamples_come_from_the_label_pool(stage_dir):  # noqa: F811
    """bm.prepare's label-fraction subsamples under the disjoint protocol hold rows of folds 5-8 only."""
    from ecgalign import benchmark as bm
    from ecgalign.ptbxl import read_statements

    reports = [json.loads(line) for line in (stage_dir / "data/reports.jsonl").read_text().splitlines()]
    folds = np.array([r["strat_fold"] for r in reports])
    pool = label_pool(folds, split(pretrain_folds=[1, 2, 3, 4]))
    prep = bm.prepare(reports, read_statements(stage_dir / "data/raw"), pool, np.flatnonzero(folds == 9),
                      np.flatnonzero(folds == 10), [0.1, 1.0], 0)
    for rows in prep.subsamples.values():
        assert len(rows) and set(folds[rows].tolist()) <= {5, 6, 7, 8}
    assert len(prep.subsamples["all", 1.0]) == N_RECORDS * 4 // 10


# --- fine-tuning ----------------------------------------------------------------------------------------------------

def test_finetune_draws_labels_from_the_pool_and_starts_from_a_supervised_encoder():
    raw = copy.deepcopy(BASE)
    raw["split"]["pretrain_folds"] = [1, 2, 3, 4]
    cfg = ft.config_from_params(params.parse(raw))
    assert cfg["train_folds"] == [5, 6, 7, 8] and cfg["val_folds"] == [9] and cfg["test_folds"] == [10]
    y = np.eye(2, dtype=bool)[np.arange(40) % 2]
    tasks = ft.classification_tasks(y, np.ones(40, bool), np.arange(40) % 10 + 1, cfg)
    assert all(set((np.arange(40) % 10 + 1)[t["train"]].tolist()) <= {5, 6, 7, 8} for t in tasks.values())

    torch.manual_seed(0)
    pretrained = build_model("cnn1d", 8, 16, 4, n_classes=3)
    net = ft.make_net("aligned", pretrained, 2, seed=0)
    for name, a in pretrained.encoder.state_dict().items():
        assert torch.equal(a, net.base.encoder.state_dict()[name]), name
    assert net(torch.zeros(2, 12, 64)).shape == (2, 2)
    assert not any(p.requires_grad for p in net.base.ecg_proj.parameters())
    assert ft.make_net("random", pretrained, 2, seed=0).base.supervised


# --- the grid -------------------------------------------------------------------------------------------------------

def test_grid_shows_a_metric_that_is_not_defined_as_n_a():
    results = {"experiments": [
        {"config": "aligned", "seed": s, "metrics": {"metrics/eval.json": {"zero_shot_auc_macro": 0.8 + s / 100}}}
        for s in (0, 1)] + [
        {"config": "supervised", "seed": s, "metrics": {"metrics/eval.json": {
            "zero_shot_auc_macro": None, "not_defined": "ecg_to_text_r* zero_shot_*", "linear_probe_auc_macro": 0.9}}}
        for s in (0, 1)]}
    metric = {"key": "zero_shot_auc_macro", "label": "zero-shot", "format": ".3f"}
    assert g.cell(results, "supervised", metric) == "n/a"
    assert g.cell(results, "aligned", metric) == "0.805 ± 0.007"
    assert g.cell(results, "supervised", {"key": "linear_probe_auc_macro", "format": ".3f"}) == "0.900 ± 0.000"
    assert g.cell(results, "supervised", {"key": "ecg_to_text_r1", "format": ".3f"}) == "n/a"
    assert g.cell(results, "supervised", {"key": "ecg_to_report_r1", "format": ".3f"}) == "–"   # absent only
    grid = g.Grid(seeds=[0, 1], seed_params=["train.seed"], configs={"aligned": {}, "supervised": {}},
                  metrics=[metric], claims=[g.Claim("zero-shot beats the control", "aligned", "supervised",
                                                    "zero_shot_auc_macro", "higher")])
    table = g.render(grid, results)
    row = next(line for line in table.splitlines() if line.startswith("| supervised |"))
    assert row.endswith("| 0, 1 | n/a |") and table.rstrip().endswith("| 0 | – | – | n/a (not defined) |")


def test_label_head_zero_shot_sums_each_class_statements_logits():
    from types import SimpleNamespace

    from ecgalign import benchmark as bm
    prep = SimpleNamespace(tasks={"t": SimpleNamespace(classes=["MI", "NORM", "HYP"])},
                           class_codes={"t": {"MI": ["IMI", "AMI", "LMI"], "NORM": ["NORM"], "HYP": ["LVH"]}})
    score, classes = bm.label_head_scorer(["AMI", "NORM", "IMI", "SR"], prep, "t")
    assert classes == ["MI", "NORM"]    # HYP: no statement among the head's codes; LMI: not a head code
    logits = np.array([[1.0, -2.0, 0.5, 3.0], [-1.0, 4.0, -0.25, 0.0]])
    np.testing.assert_array_equal(score(logits), [[1.5, -2.0], [-1.25, 4.0]])


def test_evaluate_names_a_head_that_does_not_match_the_pretraining_codes(supervised_dir, tmp_path):
    root = tmp_path / "wrong"
    shutil.copytree(supervised_dir, root)
    model = build_model("cnn1d", 8, 16, 4, lead_mean=np.zeros(12), lead_std=np.full(12, 2.0), n_classes=3)
    save_checkpoint(root / "data/model/model.pt", model, objective="supervised")
    z, e = encode_all(model, np.load(root / "data/signals/signals.npy"), batch_size=32)
    np.save(root / "data/ecg_embeddings/z_ecg.npy", z)
    np.save(root / "data/ecg_embeddings/e_ecg.npy", e)
    from ecgalign.errors import ArtifactError
    with pytest.raises(ArtifactError, match=r"head has 3 logits, but the pretraining folds hold \d+ SCP codes"):
        run_stage(root)
