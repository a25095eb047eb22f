"""The finetune stage: outcome CSV validation, the Cox loss (Breslow ties), the C-index, the stratified subsample,
a synthetic outcome the signal carries (and a control it does not), exact resume, and the stage under 2-process DDP."""
import io
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from ecgalign import finetune as ft
from ecgalign import synthetic
from ecgalign.labels import task_labels
from ecgalign.models import build_model, save_checkpoint
from ecgalign.outcomes import OutcomeError, Outcomes, c_index, c_index_resamples, cox_loss, read_outcomes
from ecgalign.params import ParamsError, validate

REPO = Path(__file__).resolve().parents[1]
STATEMENTS = pd.read_csv(io.StringIO(synthetic.STATEMENTS_CSV), index_col=0)


def synthetic_records(n: int, seed: int = 0):
    """(signals N x 12 x 1000 float32 mV, scp_codes, folds) of the synthetic source's first n records, in memory."""
    sig, codes = [], []
    for ecg_id in range(1, n + 1):
        rng = np.random.default_rng([seed, 0, ecg_id])
        c = synthetic.sample_codes(rng)
        x, _ = synthetic.synthesize(c, rng, 100)
        sig.append(x.T.astype(np.float32))
        codes.append(c)
    return np.stack(sig), codes, synthetic.folds(n, seed)


@pytest.fixture(scope="module")
def records():
    return synthetic_records(500)


def small(records, n: int, step: int = 4):
    """The first n records, every `step`-th sample (the encoder does not care about the rate; the tests run faster)."""
    sig, codes, folds = records
    return np.ascontiguousarray(sig[:n, :, ::step]), codes[:n], folds[:n]


def config(**kw):
    return {"task": "superdiagnostic", "label_fractions": [1.0], "epochs": 2, "batch_size": 32, "lr": 3e-3,
            "weight_decay": 0.01, "seed": 0, "device": "cpu", "train_folds": [1, 2, 3, 4, 5, 6, 7, 8],
            "val_folds": [9], "test_folds": [10], **kw}


def tiny_model(sig):
    torch.manual_seed(0)
    return build_model("cnn1d", 16, 8, 8, lead_mean=sig.mean((0, 2)), lead_std=sig.std((0, 2)))


def write_csv(path, text):
    path.write_text(text)
    return path


# --- the outcome CSV ----------------------------------------------------------------------------------------------

def test_reads_survival_and_binary_tables(tmp_path):
    ids = [10, 11, 12, 13]
    oc = read_outcomes(write_csv(tmp_path / "s.csv", "ecg_id,time,event,site\n12,3.5,1,a\n10,0,0,b\n"), ids)
    assert oc.kind == "survival" and oc.rows.tolist() == [0, 2] and oc.target.tolist() == [[0, 0], [3.5, 1]]
    oc = read_outcomes(write_csv(tmp_path / "b.csv", "ecg_id,label\n13,1\n11,0.0\n"), ids)
    assert oc.kind == "binary" and oc.rows.tolist() == [1, 3] and oc.target.tolist() == [[0], [1]]


@pytest.mark.parametrize("rows, message", [
    ("99,1,1", r"line 3 \(ecg_id 99\): ecg_id is not in the dataset"),
    ("x1,1,1", r"line 3 \(ecg_id x1\): ecg_id 'x1' is not an integer"),
    ("11,-2,1", r"line 3 \(ecg_id 11\): time '-2' is not a number >= 0"),
    ("11,soon,1", r"line 3 \(ecg_id 11\): time 'soon' is not a number >= 0"),
    ("11,,1", r"line 3 \(ecg_id 11\): time '' is not a number >= 0"),
    ("11,4,2", r"line 3 \(ecg_id 11\): event '2' is not 0 or 1"),
    ("10,4,0", r"line 3 \(ecg_id 10\): a second row for this ecg_id \(first on line 2\)"),
])
def test_bad_rows_are_named_or_skipped(tmp_path, rows, message):
    path = write_csv(tmp_path / "o.csv", f"ecg_id,time,event\n10,5,1\n{rows}\n12,1,0\n")
    with pytest.raises(OutcomeError, match=r"o.csv: " + message + ".*finetune.on_error: skip"):
        read_outcomes(path, [10, 11, 12])
    oc = read_outcomes(path, [10, 11, 12], on_error="skip")
    assert oc.n_skipped == 1 and oc.rows.tolist() == [0, 2] and oc.skipped[0].startswith("line 3")


def test_bad_tables(tmp_path):
    with pytest.raises(OutcomeError, match=r"columns \['ecg_id', 'time'\]; need ecg_id,time,event"):
        read_outcomes(write_csv(tmp_path / "a.csv", "ecg_id,time\n1,2\n"), [1])
    with pytest.raises(OutcomeError, match="both time,event and label"):
        read_outcomes(write_csv(tmp_path / "b.csv", "ecg_id,time,event,label\n1,2,1,0\n"), [1])
    with pytest.raises(OutcomeError, match="line 2 \\(ecg_id 1\\): label '3' is not 0 or 1"):
        read_outcomes(write_csv(tmp_path / "c.csv", "ecg_id,label\n1,3\n"), [1])
    with pytest.raises(OutcomeError, match="no such file"):
        read_outcomes(tmp_path / "missing.csv", [1])
    with pytest.raises(OutcomeError, match="no usable row"):
        read_outcomes(write_csv(tmp_path / "d.csv", "ecg_id,label\n5,1\n"), [1], on_error="skip")


def test_outcome_split_needs_events():
    oc = Outcomes("survival", np.arange(4), np.array([[1, 1], [2, 0], [3, 1], [4, 0]], dtype=np.float32))
    folds = np.array([1, 9, 10, 10])
    with pytest.raises(OutcomeError, match=r"cohort.csv: the 1 record\(s\) of split.val_folds = \[9\] have no event"):
        ft.outcome_task(oc, folds, config(), "cohort.csv")


# --- Cox loss, C-index --------------------------------------------------------------------------------------------

def test_cox_loss_is_breslow_partial_likelihood_by_hand():
    time = torch.tensor([2.0, 1.0, 3.0, 2.0])
    event = torch.tensor([1.0, 1.0, 0.0, 1.0])
    risk = torch.tensor([0.2, 0.1, 0.4, -0.3])
    e = math.exp
    # events: t=1 (risk set: all four), two tied at t=2 (Breslow: both with the risk set {t >= 2})
    at1 = 0.1 - math.log(e(0.1) + e(0.2) + e(0.4) + e(-0.3))
    at2 = (0.2 + -0.3) - 2 * math.log(e(0.2) + e(0.4) + e(-0.3))
    assert cox_loss(risk, time, event).item() == pytest.approx(-(at1 + at2) / 3, rel=1e-6)
    assert cox_loss(risk, time, torch.zeros(4)).item() == 0.0
    # shifting every risk by a constant leaves a partial likelihood unchanged
    assert cox_loss(risk + 5, time, event).item() == pytest.approx(cox_loss(risk, time, event).item(), rel=1e-5)


def test_c_index_by_hand_and_resamples():
    time, event = np.array([1.0, 2.0, 3.0, 4.0]), np.array([1, 1, 0, 1])
    # comparable pairs (earlier time has an event): (0,1) (0,2) (0,3) (1,2) (1,3)
    assert c_index(time, event, [4, 3, 2, 1]) == 1.0 and c_index(time, event, [1, 2, 3, 4]) == 0.0
    assert c_index(time, event, [4, 3, 3.5, 1]) == pytest.approx(4 / 5)
    assert c_index(time, event, [1, 1, 1, 1]) == 0.5
    counts = np.array([[1, 1, 1, 1], [2, 0, 1, 1]], dtype=np.float32)
    drawn = np.array([0, 0, 2, 3])
    risk = np.array([4.0, 1.0, 3.5, 2.0])
    assert c_index_resamples(time, event, risk, counts).tolist() == [c_index(time, event, risk),
                                                                      c_index(time[drawn], event[drawn], risk[drawn])]


# --- subsample, params --------------------------------------------------------------------------------------------

def test_stratified_subsample(records):
    _, codes, _ = records
    y, classes, _ = task_labels(codes, STATEMENTS, "superdiagnostic")
    small, large = ft.subsample(y, 0.05, 0), ft.subsample(y, 0.5, 0)
    assert len(y) == 500 and len(small) == 25 and len(large) == 250 and np.array_equal(small, ft.subsample(y, 0.05, 0))
    assert y[small].any(axis=0).all()                                   # every class keeps a positive
    assert abs(y[large].mean(0) - y.mean(0)).max() < 0.03                # shares kept
    assert np.isin(small, large).mean() > 0.8                           # (nearly) nested
    assert ft.subsample(y, 1.0, 0).tolist() == list(range(len(y)))
    assert [ft.pct_name(f) for f in (0.01, 0.1, 1.0, 0.005)] == ["f1", "f10", "f100", "f0p5"]


def test_params_check_fractions():
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    for bad in ([], [0.0], [1.5], [0.1, 0.1], ["a"]):
        raw["finetune"]["label_fractions"] = bad
        with pytest.raises(ParamsError, match="finetune.label_fractions"):
            validate(raw)


# --- learning: a synthetic outcome the signal carries, and a control it does not ----------------------------------

@pytest.mark.parametrize("dependence", [True, False])
def test_c_index_follows_the_signal(records, tmp_path, dependence):
    sig, _, folds = small(records, 500, step=2)   # 50 Hz: R peaks stay visible
    ids = list(range(1, len(sig) + 1))
    synthetic.outcomes(ids, dependence=dependence).to_csv(tmp_path / "o.csv", index=False)
    cfg = config(epochs=4, lr=3e-3, train_folds=[1, 2, 3, 4, 5, 6, 7], val_folds=[8], test_folds=[9, 10])
    tasks = ft.outcome_task(read_outcomes(tmp_path / "o.csv", ids), folds, cfg, "o.csv")
    results = ft.run_experiment(sig, tiny_model(sig), tasks, cfg, tmp_path / "state", inits=("aligned",),
                                log=lambda *a: None)
    t = tasks["outcome"]
    c = c_index(t["target"][t["test"], 0], t["target"][t["test"], 1], np.asarray(results["outcome"]["aligned"]
                                                                                 ["test_out"])[:, 0])
    if dependence:
        assert c > 0.65
    else:
        assert 0.4 < c < 0.6


# --- resume ------------------------------------------------------------------------------------------------------

def test_resumes_exactly_after_a_kill(records, tmp_path):
    sig, codes, folds = small(records, 80)
    y, _, keep = task_labels(codes, STATEMENTS, "superdiagnostic")
    cfg = config(label_fractions=[1.0])
    tasks = ft.classification_tasks(y, keep, folds, cfg)
    model = tiny_model(sig)
    quiet = lambda *a: None  # noqa: E731
    full = ft.run_experiment(sig, model, tasks, cfg, tmp_path / "a", log=quiet)

    def kill(run, epoch):
        if run == "f100/random" and epoch == 1:
            raise KeyboardInterrupt("killed")
    with pytest.raises(KeyboardInterrupt):
        ft.run_experiment(sig, model, tasks, cfg, tmp_path / "b", hook=kill, log=quiet)
    messages = []
    resumed = ft.run_experiment(sig, model, tasks, cfg, tmp_path / "b", log=messages.append)
    assert any("resuming from" in m and "2 run(s) done, f100/random after epoch 1" in m for m in messages)
    for name in tasks:
        for init in ft.INITS:
            a, b = full[name][init], resumed[name][init]
            assert torch.equal(a["test_out"], b["test_out"]), (name, init)
            assert [r["val"] for r in a["history"]] == [r["val"] for r in b["history"]]
    messages = []   # other params: the state is ignored
    ft.run_experiment(sig, model, tasks, {**cfg, "epochs": 1}, tmp_path / "b", log=messages.append)
    assert any("belongs to other params or inputs" in m for m in messages)


# --- the stage script under DDP -----------------------------------------------------------------------------------

def test_stage_under_two_process_ddp(records, tmp_path):
    """torchrun --nproc_per_node 2 src/finetune.py (gloo) in a scratch repo: metrics, plot, outputs."""
    sig, codes, folds = small(records, 80)
    data = tmp_path / "data"
    for sub in ("signals", "raw", "model"):
        (data / sub).mkdir(parents=True)
    np.save(data / "signals/signals.npy", sig)
    (data / "signals/stats.json").write_text(json.dumps({"mean": sig.mean((0, 2)).tolist(),
                                                         "std": sig.std((0, 2)).tolist(), "shape": list(sig.shape)}))
    (data / "raw/scp_statements.csv").write_text(synthetic.STATEMENTS_CSV)
    with open(data / "reports.jsonl", "w") as f:
        for i, (fold, c) in enumerate(zip(folds, codes)):
            f.write(json.dumps({"ecg_id": i + 1, "strat_fold": int(fold), "scp_codes": c, "report": "x"}) + "\n")
    save_checkpoint(data / "model/model.pt", tiny_model(sig))
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["ecg"]["encoder"] = "cnn1d"
    params["data"]["source"] = "synthetic"
    params["train"]["device"] = "cpu"
    params["finetune"].update(epochs=1, batch_size=32, label_fractions=[0.5, 1.0], outcomes="synthetic")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          str(REPO / "src/finetune.py")], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    m = json.loads((tmp_path / "metrics/finetune.json").read_text())
    assert m["finetune_world_size"] == 2 and m["outcome_kind"] == "survival" and m["finetune_f50_n_train"] == round(m["finetune_f100_n_train"] / 2)
    for init in ft.INITS:
        for tag in ("f50", "f100"):
            k = f"finetune_{init}_{tag}_auc_macro"
            assert m[k + "_ci_low"] <= m[k] <= m[k + "_ci_high"]
        assert 0 <= m[f"outcome_{init}_c_index"] <= 1 and m[f"outcome_{init}_best_epoch"] == 1
    assert m["finetune_gain_f100_auc_macro"] == pytest.approx(m["finetune_aligned_f100_auc_macro"]
                                                              - m["finetune_random_f100_auc_macro"], abs=2e-4)
    assert (tmp_path / "plots/label_efficiency.png").read_bytes()[:4] == b"\x89PNG"
    table = pd.read_csv(tmp_path / "data/finetune/outcomes.csv")
    assert list(table.columns) == ["ecg_id", "time", "event"] and len(table) == 80
    outputs = np.load(tmp_path / "data/finetune/test_outputs.npz")
    assert outputs["outcome__aligned"].shape == (len(outputs["outcome__rows"]), 1)
    assert "gain of pretraining" in run.stdout
