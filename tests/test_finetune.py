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
from ecgalign import stats, synthetic
from ecgalign.labels import task_labels
from ecgalign.models import build_model, save_checkpoint
from ecgalign.outcomes import OutcomeError, Outcomes, c_index, c_index_resamples, cox_loss, read_outcomes
from ecgalign.params import ParamsError, validate

REPO = Path(__file__).resolve().parents[1]
CPU = torch.device("cpu")
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
    return {"task": "superdiagnostic", "label_fractions": [1.0], "max_epochs": 2, "patience": 2,
            "min_steps_per_epoch": 1, "head_warmup_epochs": 1, "bn_records": 64, "batch_size": 32, "lr_grid": [3e-3],
            "weight_decay": 0.01, "seed": 0, "device": "cpu", "precision": "fp32", "train_folds": [1, 2, 3, 4, 5, 6, 7, 8],
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


def test_a_bad_outcome_file_ends_the_stage_with_one_error_line(tmp_path, capsys):
    from ecgalign.errors import run
    with pytest.raises(SystemExit):
        run(read_outcomes, tmp_path / "missing.csv", [1])
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "missing.csv" in err and err.count("\n") == 1 and "Traceback" not in err


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
    cfg = config(max_epochs=4, patience=4, head_warmup_epochs=0, train_folds=[1, 2, 3, 4, 5, 6, 7], val_folds=[8],
                 test_folds=[9, 10])
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
    cfg = config(label_fractions=[1.0], lr_grid=[1e-3, 3e-3], max_epochs=2)
    tasks = ft.classification_tasks(y, keep, folds, cfg)
    model = tiny_model(sig)
    quiet = lambda *a: None  # noqa: E731
    full = ft.run_experiment(sig, model, tasks, cfg, tmp_path / "a", log=quiet)
    assert {i: sorted(full["f100"][i]["by_lr"]) for i in ft.INITS} == {   # the head alone has a grid of its own
        "aligned": [1e-3, 3e-3], "frozen": [1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 0.3], "random": [1e-3, 3e-3]}

    def kill(run, epoch):
        if run == "f100/random/lr0.003" and epoch == 1:
            raise KeyboardInterrupt("killed")
    with pytest.raises(KeyboardInterrupt):
        ft.run_experiment(sig, model, tasks, cfg, tmp_path / "b", hook=kill, log=quiet)
    messages = []
    resumed = ft.run_experiment(sig, model, tasks, cfg, tmp_path / "b", log=messages.append)
    assert any("resuming from" in m and "9 run(s) done, f100/random/lr0.003 after epoch 1" in m for m in messages)
    for name in tasks:
        for init in ft.INITS:
            a, b = full[name][init], resumed[name][init]
            assert torch.equal(a["test_out"], b["test_out"]), (name, init)
            course = lambda r: {lr: [{k: v for k, v in e.items() if k != "seconds"} for e in run["history"]]  # noqa
                                for lr, run in r["by_lr"].items()}
            assert a["lr"] == b["lr"] and course(a) == course(b) and len(course(a)) == len(ft.lr_grid_of(cfg, init))
    messages = []   # other params: the state is ignored
    ft.run_experiment(sig, model, tasks, {**cfg, "max_epochs": 1}, tmp_path / "b", log=messages.append)
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
    params["finetune"].update(max_epochs=2, min_steps_per_epoch=2, batch_size=32, lr_grid=[0.001],
                              label_fractions=[0.5, 1.0], outcomes="synthetic")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          str(REPO / "src/finetune.py")], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    m = json.loads((tmp_path / "metrics/finetune.json").read_text())
    assert m["finetune_precision"] == "fp32" and m["finetune_precision_requested"] == "fp32"
    assert m["finetune_world_size"] == 2 and m["outcome_kind"] == "survival" and m["finetune_f50_n_train"] == round(m["finetune_f100_n_train"] / 2)
    for init in ft.INITS:
        for tag in ("f50", "f100"):
            k = f"finetune_{init}_{tag}_auc_macro"
            assert m[k + "_ci_low"] <= m[k] <= m[k + "_ci_high"]
        assert 0 <= m[f"outcome_{init}_c_index"] <= 1 and m[f"outcome_{init}_best_epoch"] in (0, 1, 2)
        assert m[f"outcome_{init}_stopped_epoch"] == 2 and m["finetune_frozen_lr_grid"] == [0.001, 0.01, 0.1]
        assert m[f"finetune_{init}_f50_lr"] in ([0.001, 0.01, 0.1] if init == "frozen" else [0.001])
    assert m["finetune_gain_f100_auc_macro"] == pytest.approx(m["finetune_aligned_f100_auc_macro"]
                                                              - m["finetune_random_f100_auc_macro"], abs=2e-4)
    assert not any(k.endswith("_kept") for k in m)   # the kept resamples go beside the metrics file
    kept = json.loads((tmp_path / "metrics/finetune_resamples.json").read_text())
    assert kept["seed"] == 0 and kept["kept"] == 200
    assert {f"finetune_{i}_f100_auc_macro" for i in ft.INITS} <= set(kept["figures"])
    assert len(kept["figures"]["outcome_random_c_index"]) == 200
    assert (tmp_path / "plots/label_efficiency.png").read_bytes()[:4] == b"\x89PNG"
    table = pd.read_csv(tmp_path / "data/finetune/outcomes.csv")
    assert list(table.columns) == ["ecg_id", "time", "event"] and len(table) == 80
    outputs = np.load(tmp_path / "data/finetune/test_outputs.npz")
    assert outputs["outcome__aligned"].shape == (len(outputs["outcome__rows"]), 1)
    assert "gain of pretraining" in run.stdout


# --- the protocol: epochs of enough steps, early stopping, lr chosen on validation, BatchNorm, warm-up, seeds -------

def test_epoch_batches_make_enough_steps():
    tiny = ft.epoch_batches(16, 64, 20, seed=0, epoch=1)
    assert len(tiny) == 20 and all(sorted(b.tolist()) == list(range(16)) for b in tiny)   # 20 passes, one batch each
    assert [len(b) for b in ft.epoch_batches(160, 64, 20, 0, 1)] == [64] * 20        # 10 passes of 2 full batches
    assert [len(b) for b in ft.epoch_batches(1600, 64, 20, 0, 1)] == [64] * 25       # one pass is enough
    assert all(np.array_equal(a, b) for a, b in zip(ft.epoch_batches(160, 64, 20, 0, 1),
                                                    ft.epoch_batches(160, 64, 20, 0, 1)))
    assert not np.array_equal(ft.epoch_batches(160, 64, 1, 0, 1)[0], ft.epoch_batches(160, 64, 1, 0, 2)[0])
    ranks = [ft.epoch_batches(8, 4, 1, 0, 1, rank=r, world=2) for r in (0, 1)]        # DistributedSampler-like split
    assert [len(b) for b in ranks[0]] == [2, 2] and np.array_equal(
        np.sort(np.concatenate(ranks[0] + ranks[1])), np.arange(8))


def test_the_frozen_head_runs_at_the_grid_times_1_10_100_without_repeats():
    assert ft.lr_grid_of(config(lr_grid=[1e-4, 1e-3]), "frozen") == [1e-4, 1e-3, 1e-2, 1e-1]
    assert ft.lr_grid_of(config(lr_grid=[1e-4, 1e-3]), "random") == [1e-4, 1e-3]


def test_stopping_rule():
    h = lambda *vals: [{"epoch": i + 1, "val": v} for i, v in enumerate(vals)]  # noqa: E731
    assert not ft.stopped(h(), 2, 10) and not ft.stopped(h(0.5, 0.7, 0.6), 2, 10)
    assert ft.stopped(h(0.5, 0.7, 0.6, 0.7), 2, 10)              # an equal value is no improvement
    assert not ft.stopped(h(0.5, 0.7, 0.6, 0.71), 2, 10)
    assert ft.stopped(h(0.5, 0.6, 0.7), 2, 3)                     # max_epochs
    assert ft.best_record(h(np.nan, 0.6, 0.6))["epoch"] == 2


def features_task(n=240, dim=8, seed=0, noisy_val=False):
    """Features that carry a binary label linearly (a frozen-style Linear net learns it), folds 1-8 / 9 / 10; with
    noisy_val the validation labels are coin flips, so the validation figure stops improving."""
    g = np.random.default_rng(seed)
    x = g.normal(size=(n, dim)).astype(np.float32)
    y = (x[:, :1] + 0.5 * g.normal(size=(n, 1)) > 0).astype(np.float32)
    folds = np.arange(n) % 10 + 1
    if noisy_val:
        y[folds == 9] = (g.random(((folds == 9).sum(), 1)) < 0.5)
    return x, y, folds


def test_early_stopping_stops_and_keeps_the_best_weights():
    x, y, folds = features_task(noisy_val=True)
    train, val = np.flatnonzero(folds <= 8), np.flatnonzero(folds == 9)
    cfg = config(max_epochs=60, patience=3, min_steps_per_epoch=2)
    torch.manual_seed(0)
    net = torch.nn.Linear(8, 1)
    out = ft.fit(net, x, y, train, val, "bce", cfg, 0.05, CPU, None, lambda s: None, None,
                 lambda *a: None)
    vals = [r["val"] for r in out["history"]]
    assert out["stopped_epoch"] == out["best_epoch"] + 3 < 60 and len(vals) == out["stopped_epoch"]
    assert max(vals[out["best_epoch"]:]) <= vals[out["best_epoch"] - 1] == out["val"]
    net.load_state_dict(out["best_state"])
    assert ft.score("bce", y[val], ft.predict(net, x, val, 256, CPU)) == out["val"]


def test_lr_is_chosen_on_validation_not_test(records, tmp_path):
    """Validation labels are the test task's labels flipped: the lr that learns the task scores worse on
    validation, so the lr chosen on validation is the one with the lower test figure, and that is what is reported."""
    x, y, folds = features_task(n=400)
    y[folds == 9] = 1 - y[folds == 9]
    t = {"kind": "bce", "target": y, "prefix": "finetune", "tag": "f100", "metric": "auc_macro",
         "train": np.flatnonzero(folds <= 8), "val": np.flatnonzero(folds == 9), "test": np.flatnonzero(folds == 10)}
    cfg = config(lr_grid=[1e-5, 0.05], max_epochs=4, patience=4, min_steps_per_epoch=3)
    by_lr = {}
    for lr in cfg["lr_grid"]:
        torch.manual_seed(0)
        net = torch.nn.Linear(8, 1)
        torch.nn.init.normal_(net.weight, std=0.01)   # a nonzero start so that the small lr stays near a bad model
        out = ft.fit(net, x, y, t["train"], t["val"], "bce", cfg, lr, CPU, None, lambda s: None,
                     None, lambda *a: None)
        net.load_state_dict(out["best_state"])
        by_lr[lr] = {**out, "test_out": ft.predict(net, x, t["test"], 256, CPU)}
    test = {lr: ft.score("bce", y[t["test"]], r["test_out"]) for lr, r in by_lr.items()}
    chosen = ft.choose_lr(by_lr)
    assert chosen == 1e-5 and by_lr[1e-5]["val"] > by_lr[0.05]["val"] and test[1e-5] < test[0.05]
    results = {"f100": {i: {**by_lr[chosen], "lr": chosen} for i in ft.INITS}}
    m = ft.summarise(results, {"f100": t}, n_boot=20)
    assert m["finetune_aligned_f100_auc_macro"] == round(test[1e-5], 4) and m["finetune_aligned_f100_lr"] == 1e-5


def test_bn_is_re_estimated_on_the_training_rows(records):
    """A random-init encoder whose running statistics are still those of the init (mean 0, var 1): evaluated as
    is, its outputs are far from what the same weights give with the training records' statistics; after
    recalibrate_bn the eval-mode output equals the train-mode output on those records (one batch)."""
    sig, _, _ = small(records, 64)
    net = ft.make_net("random", tiny_model(sig), 5, 0)
    torch.nn.init.normal_(net.head.weight)
    rows = np.arange(0, 64, 2)
    x = torch.from_numpy(sig[rows])
    net.train()
    with torch.no_grad():
        reference = net(x)        # batch statistics (this forward moves the running stats by one momentum step)
    net.apply(lambda m: m.reset_running_stats() if isinstance(m, torch.nn.BatchNorm1d) else None)
    before = ft.predict(net, sig, rows, 256, CPU)
    ft.recalibrate_bn(net, sig, rows, CPU)
    after = ft.predict(net, sig, rows, 256, CPU)
    assert np.abs(before - reference.numpy()).max() > 0.1
    np.testing.assert_allclose(after, reference.numpy(), rtol=0.02, atol=0.01)   # unbiased vs biased variance
    assert ft.bn_rows(np.arange(100), 200, 0).tolist() == list(range(100))
    picked = ft.bn_rows(np.arange(100, 200), 10, 0)
    assert len(picked) == 10 and np.array_equal(picked, np.sort(picked)) and np.array_equal(picked, ft.bn_rows(
        np.arange(100, 200), 10, 0)) and set(picked) <= set(range(100, 200))


def test_head_warmup_trains_the_head_alone_first(records, tmp_path):
    sig, codes, folds = small(records, 80)
    y, _, keep = task_labels(codes, STATEMENTS, "superdiagnostic")
    cfg = config(max_epochs=2, patience=2, head_warmup_epochs=1, bn_records=0)
    t = ft.classification_tasks(y, keep, folds, cfg)["f100"]
    net = ft.make_net("aligned", tiny_model(sig), y.shape[1], 0)
    encoder0 = {k: v.clone() for k, v in net.base.state_dict().items() if "running" not in k and "tracked" not in k}
    snapshots = []
    ft.fit(net, sig, y, t["train"], t["val"], "bce", cfg, 1e-2, CPU, None, lambda s: None,
           lambda epoch: snapshots.append({k: v.clone() for k, v in net.state_dict().items()}), lambda *a: None)
    after1, after2 = snapshots
    assert all(torch.equal(after1["base." + k], v) for k, v in encoder0.items())   # epoch 1: encoder untouched
    assert after1["head.weight"].abs().sum() > 0                                     # ... head trained
    conv = "base.encoder.features.0.0.weight"
    assert not torch.equal(after2[conv], after1[conv])                               # epoch 2: encoder trained


def test_probe_then_fine_tune_starts_every_trainable_init_from_its_own_probe(records, tmp_path):
    """head_init probe: the aligned init's epoch 0 is the frozen init's chosen head, the random init's the probe on
    the random encoder's own features (recorded as random-probe); epoch 0 is a candidate for the best epoch."""
    sig, codes, folds = small(records, 80)
    y, _, keep = task_labels(codes, STATEMENTS, "superdiagnostic")
    cfg = config(max_epochs=2, patience=2, head_init="probe", bn_records=0)
    tasks = ft.classification_tasks(y, keep, folds, cfg)
    started = []   # the head each fine-tuning run starts from, in run order (aligned, then random)
    real_fit = ft.fit

    def spy(net, *args, **kw):
        if isinstance(net, ft.Net):
            assert kw["from_probe"]
            started.append({k: v.clone() for k, v in net.head.state_dict().items()})
        return real_fit(net, *args, **kw)

    ft.fit = spy
    try:
        results = ft.run_experiment(sig, tiny_model(sig), tasks, cfg, tmp_path / "state", log=lambda *a: None)
    finally:
        ft.fit = real_fit
    runs = results["f100"]
    assert set(runs) == {"aligned", "frozen", "random", "random-probe"}
    for init in ("aligned", "random"):
        history = runs[init]["history"]
        assert history[0]["epoch"] == 0 and history[0]["steps"] == 0 and history[0]["train_loss"] is None
        assert [h["epoch"] for h in history] == [0, 1, 2] and not any(h["head_only"] for h in history)
        assert runs[init]["stopped_epoch"] == 2 and runs[init]["best_epoch"] in (0, 1, 2)
    # the fine-tuning runs started from the heads the probes chose (heads are not all zero)
    assert len(started) == 2
    for start, probe in zip(started, ("frozen", "random-probe")):
        assert all(torch.equal(start[k], runs[probe]["head"][k]) for k in start) and start["weight"].abs().sum() > 0
    assert runs["random-probe"]["history"][0]["epoch"] == 1          # a head-only run has no epoch 0
    m = ft.summarise(results, {"f100": {**tasks["f100"], "prefix": "finetune", "tag": "f100", "metric": "auc_macro"}},
                     n_boot=20)
    assert 0 <= m["finetune_random_probe_f100_auc_macro"] <= 1
    for init in ("aligned", "frozen", "random", "random_probe"):
        r = runs[init.replace("_", "-")]
        assert m[f"finetune_{init}_f100_capped"] == int(r["best_epoch"] == r["stopped_epoch"])
    assert m["finetune_capped_runs"] == sum(m[f"finetune_{i}_f100_capped"] for i in
                                            ("aligned", "frozen", "random", "random_probe"))
    # each init's figure under the bootstrap resamples, kept for the grid's pairing: the resamples drawn from the
    # test labels and the seed alone, so the same for every init (and every experiment of that seed)
    truth = tasks["f100"]["target"][tasks["f100"]["test"]] > 0.5
    counts = stats.class_complete_counts(truth, 20, 0)[0]
    for init in ("aligned", "random"):
        expected = np.nanmean(stats.auc_columns(truth, np.asarray(runs[init]["test_out"]), counts), axis=1)
        assert m[f"finetune_{init}_f100_auc_macro_kept"] == [round(float(v), 5) for v in expected]


def test_epoch_zero_can_be_the_best_and_stops_on_patience(records):
    """A run from a probe whose fine-tuning never beats it keeps the probe: best epoch 0, the probe's weights."""
    sig, codes, folds = small(records, 80)
    y, _, keep = task_labels(codes, STATEMENTS, "superdiagnostic")
    cfg = config(max_epochs=5, patience=2, head_init="probe", bn_records=0)
    t = ft.classification_tasks(y, keep, folds, cfg)["f100"]
    net = ft.make_net("aligned", tiny_model(sig), y.shape[1], 0)
    torch.nn.init.normal_(net.head.weight)
    start = {k: v.clone() for k, v in net.state_dict().items()}
    vals = iter([0.9, 0.8, 0.7, 0.6])
    real_score = ft.score
    ft.score = lambda kind, truth, out: next(vals)
    try:
        out = ft.fit(net, sig, y, t["train"], t["val"], "bce", cfg, 1e-2, CPU, None, lambda s: None, None,
                     lambda *a: None, from_probe=True)
    finally:
        ft.score = real_score
    assert out["best_epoch"] == 0 and out["stopped_epoch"] == 2 and [h["val"] for h in out["history"]] == [0.9, 0.8, 0.7]
    assert all(torch.equal(out["best_state"][k], v) for k, v in start.items() if "running" not in k and "tracked" not in k)
    assert ft.stopped([{"epoch": 0, "val": 0.9}, {"epoch": 1, "val": 0.8}], 2, 5) is False
    assert ft.stopped([{"epoch": 0, "val": 0.5}, {"epoch": 1, "val": 0.8}], 2, 1) is True   # max_epochs trained


def test_same_seed_same_metrics_other_seed_other_subsample(records, tmp_path):
    sig, codes, folds = small(records, 120)
    y, _, keep = task_labels(codes, STATEMENTS, "superdiagnostic")
    model = tiny_model(sig)

    def run(seed, state):
        cfg = config(label_fractions=[0.25], seed=seed, lr_grid=[1e-3, 1e-2])
        tasks = ft.classification_tasks(y, keep, folds, cfg)
        results = ft.run_experiment(sig, model, tasks, cfg, tmp_path / state, log=lambda *a: None)
        return tasks["f25"]["train"], ft.summarise(results, tasks, n_boot=50, seed=seed)

    pool_a = ft.label_pool(folds, np.flatnonzero(keep), config())
    rows_a, a = run(0, "a")
    rows_b, b = run(0, "b")
    rows_c, c = run(1, "c")
    assert np.array_equal(rows_a, rows_b) and a == b and np.isin(rows_a, pool_a).all()
    assert not np.array_equal(rows_a, rows_c) and a != c
    assert len(rows_a) == len(rows_c) and {"finetune_random_f25_lr", "finetune_random_f25_stopped_epoch",
                                           "finetune_random_f25_val_auc_macro"} <= set(a)


def test_params_renamed_keys_say_what_to_write():
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["finetune"]["epochs"] = 4
    with pytest.raises(ParamsError, match=r"finetune.epochs was renamed: write finetune.max_epochs"):
        validate(raw)
    del raw["finetune"]["epochs"]
    raw["finetune"]["lr"] = 0.001
    with pytest.raises(ParamsError, match=r"finetune.lr was renamed: write finetune.lr_grid, a list"):
        validate(raw)


def test_resume_key_changes_with_the_fine_tuning_code(records, tmp_path, monkeypatch):
    """A resume state saved by other code is not resumed: the key hashes the source files in ft.CODE."""
    sig, _, _ = small(records, 40)
    model = tiny_model(sig)
    tasks = {"t": {"kind": "bce", "target": np.zeros((40, 2), np.float32), "train": np.arange(20),
                   "val": np.arange(20, 30), "test": np.arange(30, 40)}}
    code = tmp_path / "finetune.py"
    code.write_text("a = 1\n")
    monkeypatch.setattr(ft, "CODE", (code,))
    before = ft.fingerprint(config(), model, sig, tasks, 1)
    assert ft.fingerprint(config(), model, sig, tasks, 1) == before
    code.write_text("a = 2\n")
    assert ft.fingerprint(config(), model, sig, tasks, 1) != before


def test_the_code_in_the_resume_key_exists():
    import ecgalign.finetune as module
    assert len(module.CODE) == 5 and all(path.is_file() for path in module.CODE)


# --- the study's risk-model options: event-stratified batches, batch-wise dropout ---------------------------------

def test_with_2_percent_events_and_batch_64_every_batch_holds_an_event():
    event = np.zeros(3200, bool)
    event[np.random.default_rng(0).choice(3200, 64, replace=False)] = True       # 2 % events
    batches = ft.event_batches(event, 64, 1, seed=0, epoch=1)
    assert len(batches) == 50 and all(event[b].any() for b in batches)
    assert sorted(np.concatenate(batches).tolist()) == list(range(3200))         # every record once a pass
    assert all(64 <= len(b) < 128 for b in batches)
    again = ft.event_batches(event, 64, 1, seed=0, epoch=1)
    assert all(np.array_equal(a, b) for a, b in zip(batches, again))              # seeded
    assert not all(np.array_equal(a, b) for a, b in zip(batches, ft.event_batches(event, 64, 1, seed=0, epoch=2)))
    plain = ft.epoch_batches(3200, 64, 1, seed=0, epoch=1)
    assert not all(event[b].any() for b in plain)                                  # what the option fixes
    few = np.zeros(640, bool)
    few[:3] = True                                                                 # 3 events, 10 batches
    assert all(few[b].any() for b in ft.event_batches(few, 64, 1, seed=0, epoch=1))
    assert len(ft.event_batches(few, 64, 25, seed=0, epoch=1)) >= 25              # min_steps: more passes


def test_batch_dropout_masks_the_same_features_for_the_whole_batch():
    torch.manual_seed(0)
    drop = ft.BatchDropout(0.5).train()
    z = torch.ones(64, 200)
    out = drop(z)
    dropped = out[0] == 0
    assert 0 < int(dropped.sum()) < 200
    assert torch.equal(out == 0, dropped.expand(64, -1))                          # one mask across the batch
    assert torch.allclose(out[:, ~dropped], torch.full_like(out[:, ~dropped], 2.0))
    assert torch.equal(drop.eval()(z), z)
    with pytest.raises(ValueError, match="must lie in"):
        ft.BatchDropout(1.0)


def test_risk_model_options_train_and_leave_classification_alone(records, tmp_path):
    sig, _, folds = small(records, 200, step=2)
    ids = list(range(1, len(sig) + 1))
    synthetic.outcomes(ids, dependence=True).to_csv(tmp_path / "o.csv", index=False)
    cfg = config(max_epochs=1, head_warmup_epochs=0, train_folds=[1, 2, 3, 4, 5, 6, 7], val_folds=[8],
                 test_folds=[9, 10], event_batches=True, batch_dropout=0.2)
    tasks = ft.outcome_task(read_outcomes(tmp_path / "o.csv", ids), folds, cfg, "o.csv")
    results = ft.run_experiment(sig, tiny_model(sig), tasks, cfg, tmp_path / "state", inits=("aligned", "frozen"),
                                log=lambda *a: None)
    assert np.isfinite(results["outcome"]["aligned"]["val"])
    net = ft.make_net("aligned", tiny_model(sig), 1, 0, dropout=0.2)
    assert isinstance(net.head[0], ft.BatchDropout)
    assert isinstance(ft.make_net("aligned", tiny_model(sig), 1, 0), ft.Net)
    assert isinstance(ft.make_net("frozen", tiny_model(sig), 5, 0), torch.nn.Linear)


@pytest.mark.parametrize("key, value, message", [
    ("batch_dropout", 0.95, "finetune.batch_dropout = 0.95 is outside [0.0, 0.9]"),
    ("event_batches", "yes", "finetune.event_batches must be bool"),
])
def test_risk_model_options_are_validated(key, value, message):
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["finetune"][key] = value
    with pytest.raises(ParamsError, match=message.replace(".", r"\.").replace("[", r"\[")):
        validate(raw)
