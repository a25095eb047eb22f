"""The training loop: schedule, determinism, resume, learning, the stage scripts under 2-process DDP."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from ecgalign import training
from ecgalign.training import check_ids, lr_factor, split_rows, stop_reason, text_ids, train

REPO = Path(__file__).resolve().parents[1]


def make_data(n=64, T=1000, k=4, d=16, seed=0):
    """A learnable toy problem: k report classes; class c's ECGs are sines of frequency c+1 Hz in noise, its text
    embedding one random vector (so identical reports repeat, as in PTB-XL). Folds cycle 1-10."""
    g = np.random.default_rng(seed)
    cls = np.arange(n) % k
    t = np.arange(T) / 100.0
    sig = np.sin(2 * np.pi * (1 + cls)[:, None, None] * t + g.uniform(0, 2 * np.pi, (n, 12, 1)))
    sig = (sig + 0.3 * g.standard_normal((n, 12, T))).astype(np.float32)
    return sig, g.standard_normal((k, d)).astype(np.float32)[cls], np.arange(n) % 10 + 1


def config(**kw):
    return {"encoder": "cnn1d", "embed_dim": 16, "loss": "infonce", "temperature": 0.07, "learn_temperature": True,
            "proj_dim": 8, "epochs": 2, "batch_size": 16, "lr": 3e-3, "weight_decay": 0.01, "warmup_epochs": 1,
            "seed": 0, "device": "cpu", "num_workers": 0, "threads": 2, "train_folds": [1, 2, 3, 4, 5, 6, 7, 8],
            "val_folds": [9], **kw}


class Recorder:
    """A stand-in for dvclive.Live that keeps what was logged, and can 'kill' the run at a given step."""

    def __init__(self, kill_at=None):
        self.step, self.kill_at, self.logged = 0, kill_at, {}

    def log_metric(self, name, value):
        if self.step == self.kill_at:
            raise KeyboardInterrupt(f"killed at epoch {self.step}")
        self.logged.setdefault(name, []).append((self.step, value))

    def next_step(self):
        self.step += 1


def state_dict(path):
    return torch.load(path, weights_only=True)["state_dict"]


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_schedule_and_split():
    assert [lr_factor(s, 2, 6) for s in range(2)] == [0.5, 1.0]
    assert lr_factor(2, 2, 6) == pytest.approx(1.0) and lr_factor(4, 2, 6) == pytest.approx(0.5)
    assert lr_factor(6, 2, 6) == pytest.approx(0.0)
    train_rows, val_rows = split_rows([1, 9, 2, 9, 10], [1, 2], [9])
    assert train_rows.tolist() == [0, 2] and val_rows.tolist() == [1, 3]
    with pytest.raises(ValueError, match=r"split.val_folds = \[8\] selects no record \(strat_fold values present: "
                                         r"\[1, 2, 9, 10\]\)"):
        split_rows([1, 9, 2, 9, 10], [1, 2], [8])
    assert text_ids(np.array([[1, 2], [0, 0], [1, 2]], dtype=np.float32)).tolist() == [1, 0, 1]


def test_deterministic_and_resumes_exactly(tmp_path):
    sig, text, folds = make_data()
    runs = {}
    for name in ("a", "b"):
        live = Recorder()
        m = train(sig, text, folds, config(), tmp_path / name, tmp_path / f"state_{name}", live, log=lambda *a: None)
        runs[name] = (m, live.logged)
    (ma, la), (mb, lb) = runs["a"], runs["b"]
    for m in (ma, mb):   # timing
        m.pop("train_seconds"), m.pop("epoch_seconds")
    assert ma == mb and la == lb  # same params + seed -> identical metrics and curves
    assert_same_weights(state_dict(tmp_path / "a/model.pt"), state_dict(tmp_path / "b/model.pt"))
    assert sorted(la) == ["train/alignment_loss", "train/objective", "train/temperature", "val/alignment_loss",
                          "val/objective"]
    assert [s for s, _ in la["val/alignment_loss"]] == [0, 1, 2] and [s for s, _ in la["train/objective"]] == [1, 2]
    assert ma["alignment_loss_initial"] == la["val/alignment_loss"][0][1] and ma["n_train"] == 52
    assert ma["val_objective"] == min(v for _, v in la["val/objective"][1:])

    # "kill" the run after epoch 1 is checkpointed, then re-run: it resumes and ends with the same weights
    with pytest.raises(KeyboardInterrupt):
        train(sig, text, folds, config(), tmp_path / "c", tmp_path / "state_c", Recorder(kill_at=1),
              log=lambda *a: None)
    assert not (tmp_path / "c/model.pt").exists()
    messages, live = [], Recorder()
    mc = train(sig, text, folds, config(), tmp_path / "c", tmp_path / "state_c", live, log=messages.append)
    assert any("resuming from" in m and "1 epoch(s) done" in m for m in messages)
    assert_same_weights(state_dict(tmp_path / "a/model.pt"), state_dict(tmp_path / "c/model.pt"))
    assert_same_weights(torch.load(tmp_path / "state_a/last.pt", weights_only=True)["model"],
                        torch.load(tmp_path / "state_c/last.pt", weights_only=True)["model"])
    mc.pop("train_seconds"), mc.pop("epoch_seconds")
    assert mc == ma and live.logged == la  # the resumed run replays the curves of epoch 1

    # a last.pt of other params is ignored
    messages = []
    train(sig, text, folds, config(epochs=1), tmp_path / "d", tmp_path / "state_c", None, log=messages.append)
    assert any("belongs to other params or inputs" in m and "starting fresh" in m for m in messages)


def test_stop_reason():
    hist = [{"epoch": 0, "val/objective": 9.0}] + [{"epoch": e, "val/objective": v}
                                                   for e, v in enumerate([3.0, 2.0, 2.5, 2.0, 2.1], 1)]
    assert stop_reason(hist, 0) is None and stop_reason(hist[:1], 1) is None
    assert stop_reason(hist[:3], 1) is None                 # epoch 2 improved
    assert stop_reason(hist[:4], 1) == ("the validation objective has not improved for 1 epoch(s) (train.patience = "
                                        "1): best 2.0000 at epoch 2")
    assert stop_reason(hist[:5], 3) is None                 # a tie is no improvement, but 2 epochs < 3
    assert stop_reason(hist, 3).endswith("improved for 3 epoch(s) (train.patience = 3): best 2.0000 at epoch 2")


def test_early_stopping_and_resume_after_the_decision(tmp_path):
    """patience 2 stops the toy run at epoch 6 of 8 (best 4); the first 6 epochs are those of the full run (the
    schedule is defined by train.epochs); a run killed after epoch 6 was checkpointed, before the stop was decided,
    resumes into the same stop: no 7th epoch, the same weights, metrics and curves."""
    sig, text, folds = make_data()
    messages, live = [], Recorder()
    ma = train(sig, text, folds, config(epochs=8, patience=2), tmp_path / "a", tmp_path / "sa", live,
               log=messages.append)
    assert (ma["best_epoch"], ma["epochs_run"], ma["stopped_epoch"], ma["epochs"]) == (4, 6, 6, 8)
    assert re.fullmatch(r"early stop after epoch 6/8: the validation objective has not improved for 2 epoch\(s\) "
                        r"\(train.patience = 2\): best \d\.\d{4} at epoch 4; the weights of epoch 4 are kept",
                        messages[-1])
    assert [s for s, _ in live.logged["train/objective"]] == [1, 2, 3, 4, 5, 6]
    assert ma["val_objective"] == live.logged["val/objective"][4][1] < live.logged["val/objective"][6][1]
    assert torch.load(tmp_path / "a/model.pt", weights_only=True)["epoch"] == 4

    full = Recorder()
    m0 = train(sig, text, folds, config(epochs=8, patience=0), tmp_path / "full", tmp_path / "sfull", full,
               log=lambda *a: None)
    assert (m0["epochs_run"], m0["stopped_epoch"]) == (8, 0)
    assert {k: v[:7] for k, v in full.logged.items() if k.startswith("val/")} == \
        {k: v for k, v in live.logged.items() if k.startswith("val/")}

    with pytest.raises(KeyboardInterrupt):
        train(sig, text, folds, config(epochs=8, patience=2), tmp_path / "c", tmp_path / "sc", Recorder(kill_at=6),
              log=lambda *a: None)
    messages, live_c = [], Recorder()
    mc = train(sig, text, folds, config(epochs=8, patience=2), tmp_path / "c", tmp_path / "sc", live_c,
               log=messages.append)
    assert "resuming from" in messages[0] and "6 epoch(s) done" in messages[0]
    assert not any(m.startswith("epoch 7/") for m in messages) and messages[-1].startswith("early stop after epoch 6/8")
    assert_same_weights(state_dict(tmp_path / "a/model.pt"), state_dict(tmp_path / "c/model.pt"))
    for m in (ma, mc):   # timing
        m.pop("train_seconds"), m.pop("epoch_seconds")
    assert mc == ma and live_c.logged == live.logged


def test_augmentations_touch_training_batches_only_and_resume(tmp_path, monkeypatch):
    """All five on: called on each training batch and nothing else (not the validation); a killed and resumed run
    ends with the weights of an uninterrupted one (the generator is re-seeded per epoch)."""
    from ecgalign import augment as augmentations
    seen = []
    real = augmentations.augment

    def spy(x, *a, **k):
        seen.append(tuple(x.shape))
        return real(x, *a, **k)

    monkeypatch.setattr(augmentations, "augment", spy)
    aug = {"crop": 0.2, "scale": 0.2, "noise": 0.05, "wander": 0.1, "lead_dropout": 0.1}
    sig, text, folds = make_data()
    off, on = Recorder(), Recorder()
    train(sig, text, folds, config(), tmp_path / "off", tmp_path / "soff", off, log=lambda *a: None)
    assert seen == []
    train(sig, text, folds, config(augment=aug), tmp_path / "on", tmp_path / "son", on, log=lambda *a: None)
    assert seen == [(16, 12, 1000)] * 6                        # 3 training batches of 16 a epoch, 2 epochs
    assert on.logged["val/objective"][0] == off.logged["val/objective"][0]
    assert on.logged["train/objective"][0] != off.logged["train/objective"][0]
    with pytest.raises(KeyboardInterrupt):
        train(sig, text, folds, config(augment=aug), tmp_path / "c", tmp_path / "sc", Recorder(kill_at=1),
              log=lambda *a: None)
    resumed = Recorder()
    train(sig, text, folds, config(augment=aug), tmp_path / "c", tmp_path / "sc", resumed, log=lambda *a: None)
    assert_same_weights(state_dict(tmp_path / "on/model.pt"), state_dict(tmp_path / "c/model.pt"))
    assert resumed.logged == on.logged


def test_omp_wait_policy_changes_no_bit(tmp_path):
    """src/train_alignment.py sets OMP_WAIT_POLICY=PASSIVE (idle OpenMP threads sleep instead of spinning: several
    times faster steps on shared cores). It changes how idle threads wait, not how work is split: 2 threads train
    bit-identical weights under PASSIVE and ACTIVE (each in a fresh process: the policy is read when torch loads)."""
    assert 'os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")' in (REPO / "src/train_alignment.py").read_text()
    code = ("import sys; sys.path[:0] = [sys.argv[1], sys.argv[2]]; from test_training import make_data, config; "
            "from ecgalign.training import train; sig, text, folds = make_data(n=48); "
            "train(sig, text, folds, config(threads=2), sys.argv[3], sys.argv[3], log=lambda *a: None)")
    for policy in ("PASSIVE", "ACTIVE"):
        subprocess.run([sys.executable, "-c", code, str(REPO / "src"), str(REPO / "tests"), str(tmp_path / policy)],
                       env={**os.environ, "OMP_WAIT_POLICY": policy}, check=True, timeout=300)
    assert_same_weights(state_dict(tmp_path / "PASSIVE/model.pt"), state_dict(tmp_path / "ACTIVE/model.pt"))


@pytest.mark.parametrize("loss", ["infonce", "cosine"])
def test_training_loss_falls(tmp_path, loss):
    sig, text, folds = make_data(n=64)
    live = Recorder()
    m = train(sig, text, folds, config(loss=loss, epochs=3), tmp_path, tmp_path, live, log=lambda *a: None)
    objective = [v for _, v in live.logged["train/objective"]]
    assert objective[-1] < 0.9 * objective[0], objective
    assert m["objective"] == loss and m["epochs"] == 3 and 1 <= m["best_epoch"] <= 3
    if loss == "cosine":  # the cosine loss has no temperature: it stays at its initial value
        assert live.logged["train/temperature"][-1][1] == pytest.approx(0.07)


def test_rejects_misaligned_inputs(tmp_path):
    sig, text, folds = make_data(n=20)
    with pytest.raises(ValueError, match="not row-aligned: 20 signals, 19 text embeddings, 20 folds"):
        train(sig, text[:19], folds, config(), tmp_path, tmp_path)


def test_stage_scripts_under_two_process_ddp(tmp_path):
    """torchrun --nproc_per_node 2 src/train_alignment.py (gloo), then src/embed_ecg.py, in a scratch repo."""
    sig, text, folds = make_data(n=64)
    data = tmp_path / "data"
    for sub in ("signals", "text"):
        (data / sub).mkdir(parents=True)
    np.save(data / "signals/signals.npy", sig)
    (data / "signals/stats.json").write_text(json.dumps({"mean": sig.mean((0, 2)).tolist(),
                                                         "std": sig.std((0, 2)).tolist(), "sampling_rate": 100,
                                                         "shape": list(sig.shape)}))
    np.save(data / "text/record_embeddings.npy", text)
    np.save(data / "text/record_ids.npy", text_ids(text))
    with open(data / "reports.jsonl", "w") as f:
        for i, fold in enumerate(folds):
            f.write(json.dumps({"ecg_id": i + 1, "strat_fold": int(fold), "report": "x"}) + "\n")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["ecg"]["embed_dim"] = 16
    params["train"].update(proj_dim=8, epochs=1, batch_size=16, device="cpu", threads=1)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          str(REPO / "src/train_alignment.py")],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    metrics = json.loads((tmp_path / "metrics/train.json").read_text())
    assert metrics["world_size"] == 2 and metrics["n_train"] == 52 and metrics["epochs"] == 1
    assert (tmp_path / "data/model/model.pt").exists() and (tmp_path / "data/train_state/last.pt").exists()
    assert (tmp_path / "dvclive/plots/metrics/train/alignment_loss.tsv").exists()
    assert len((tmp_path / "dvclive/plots/metrics/val/alignment_loss.tsv").read_text().splitlines()) == 3  # head+2

    run = subprocess.run([sys.executable, str(REPO / "src/embed_ecg.py")], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr[-3000:]
    z, e = np.load(data / "ecg_embeddings/z_ecg.npy"), np.load(data / "ecg_embeddings/e_ecg.npy")
    assert z.shape == (64, 16) and e.shape == (64, 8) and z.dtype == e.dtype == np.float32


def test_report_ids_are_the_positives(tmp_path):
    """The given ids, not the float rows, decide which records are each other's positives."""
    sig, text, folds = make_data(n=40)
    first = {}
    for name, ids in (("classes", text_ids(text)), ("all distinct", np.arange(40)), ("default", None)):
        live = Recorder()
        train(sig, text, folds, config(epochs=1), tmp_path / name, tmp_path / f"s{name}", live, log=lambda *a: None,
              ids=ids)
        first[name] = live.logged["train/objective"][0][1]
    assert first["classes"] == first["default"] != first["all distinct"]
    with pytest.raises(ValueError, match=r"report ids must be 40 integers \(one per record\), got float32 of shape "
                                         r"\(40,\): re-run dvc repro text_embeddings"):
        check_ids(np.zeros(40, np.float32), 40)
    with pytest.raises(ValueError, match=r"got int64 of shape \(39,\)"):
        train(sig, text, folds, config(), tmp_path, tmp_path, ids=np.arange(39))


def _ddp_train(rank, store, out, cfg, sync):
    """One of 2 gloo processes running train() (torch.multiprocessing.spawn's target)."""
    import torch.distributed as dist
    if not sync:
        training.sync_batchnorm = lambda model, device: model
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    try:
        sig, text, folds = make_data()
        train(sig, text, folds, cfg, out / "model", out / "state", log=lambda *a: None)
    finally:
        dist.destroy_process_group()


def test_ddp_batchnorm_is_global(tmp_path):
    """2 processes on half batches end with the weights of 1 process on the whole batches (BatchNorm statistics,
    running means included, over the global batch): the same batches, as sets, in both cases. Measured: weights
    within 7.7e-5 of each other after 3 AdamW steps; with per-rank BatchNorm statistics they differ by up to 3.4e-2."""
    cfg = config(threads=1, epochs=1)
    sig, text, folds = make_data()
    train(sig, text, folds, cfg, tmp_path / "one", tmp_path / "one_state", log=lambda *a: None)
    torch.multiprocessing.spawn(_ddp_train, args=(tmp_path / "store", tmp_path / "two", cfg, True), nprocs=2)
    one, two = state_dict(tmp_path / "one/model.pt"), state_dict(tmp_path / "two/model/model.pt")
    assert one.keys() == two.keys() and "encoder.features.0.1.running_var" in one
    for k in one:
        torch.testing.assert_close(two[k], one[k], rtol=0, atol=5e-4, msg=k)


def test_cuda_runs_are_deterministic_and_threads_pinned(monkeypatch):
    """configure_runtime on a CUDA device sets every determinism switch (checked without a GPU: only flags)."""
    from ecgalign.training import configure_runtime
    before = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.deterministic,
              torch.backends.cudnn.benchmark, torch.get_num_threads())
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    try:
        configure_runtime(0, torch.device("cpu"))
        assert torch.get_num_threads() == before[3] and not torch.are_deterministic_algorithms_enabled()
        configure_runtime(1, torch.device("cuda", 0))
        assert torch.get_num_threads() == 1 and torch.are_deterministic_algorithms_enabled()
        assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    finally:
        torch.use_deterministic_algorithms(before[0])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = before[1], before[2]
        torch.set_num_threads(before[3])


def test_bf16_training_is_deterministic_close_to_fp32_and_recorded(tmp_path):
    """train.precision: bf16 autocast gives other weights than fp32 (it is another arithmetic), the same weights on a
    re-run, learns as fp32 does, and says what ran; an explicit fp32 is the config without the key."""
    sig, text, folds = make_data()
    runs = {}
    for name, kw in (("fp32", {}), ("fp32_explicit", {"precision": "fp32"}), ("bf16", {"precision": "bf16"}),
                     ("bf16_again", {"precision": "bf16"})):
        runs[name] = train(sig, text, folds, config(**kw), tmp_path / name, tmp_path / f"state_{name}", None,
                           log=lambda *a: None)
    assert_same_weights(state_dict(tmp_path / "fp32/model.pt"), state_dict(tmp_path / "fp32_explicit/model.pt"))
    assert_same_weights(state_dict(tmp_path / "bf16/model.pt"), state_dict(tmp_path / "bf16_again/model.pt"))
    a, b = state_dict(tmp_path / "fp32/model.pt"), state_dict(tmp_path / "bf16/model.pt")
    assert any(not torch.equal(a[k], b[k]) for k in a)
    assert runs["fp32"]["precision"] == "fp32" and runs["bf16"]["precision"] == "bf16"
    assert runs["bf16"]["precision_requested"] == "bf16"
    assert runs["bf16"]["precision_hardware"] in ("amx_bf16", "avx512_bf16", "none")
    assert runs["bf16"]["val_objective"] == pytest.approx(runs["fp32"]["val_objective"], rel=0.05)


def test_auto_precision_follows_the_hardware(monkeypatch):
    from ecgalign import precision

    cpu = torch.device("cpu")
    for amx, avx512_bf16, expected, unit in ((True, True, "bf16", "amx_bf16"), (False, True, "bf16", "avx512_bf16"),
                                             (False, False, "fp32", "none")):
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda amx=amx: amx)
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda v=avx512_bf16: v)
        assert precision.resolve("auto", cpu) == expected and precision.hardware(cpu) == unit
        assert precision.resolve("fp32", cpu) == "fp32" and precision.resolve("bf16", cpu) == "bf16"
        assert precision.record("auto", cpu) == {"precision": expected, "precision_requested": "auto",
                                                 "precision_hardware": unit}
    with pytest.raises(ValueError, match="precision 'fp16' is not one of auto, fp32, bf16"):
        precision.resolve("fp16", cpu)


def test_supervised_log_prints_no_alignment_figure():
    record = {"epoch": 1, "train/objective": 0.5, "train/alignment_loss": float("nan"), "val/objective": 0.4,
              "val/alignment_loss": float("nan"), "train/temperature": 0.07, "seconds": 1.0}
    assert training.epoch_line(record, "supervised") == "train objective 0.5000, val objective 0.4000"
    assert training.epoch_line(record, "infonce") == ("train objective 0.5000, val objective 0.4000, train 1-cos nan, "
                                                      "val 1-cos nan, temperature 0.0700")
    assert training.epoch_line(record, "cosine") == ("train objective 0.5000, val objective 0.4000, train 1-cos nan, "
                                                     "val 1-cos nan")


def test_reconstruction_weight_zero_is_byte_identical_and_a_positive_weight_trains_a_decoder(tmp_path):
    sig, text, folds = make_data()
    runs = {}
    for name, extra in (("without", {}), ("zero", {"recon_weight": 0.0}), ("on", {"recon_weight": 1.0})):
        live = Recorder()
        metrics = train(sig, text, folds, config(**extra), tmp_path / name, tmp_path / name / "state", live,
                        log=lambda *a: None)
        runs[name] = (metrics, live.logged, (tmp_path / name / "model.pt").read_bytes())
    assert runs["zero"][2] == runs["without"][2]          # the same checkpoint, byte for byte
    assert runs["zero"][1] == runs["without"][1]
    strip = lambda m: {k: v for k, v in m.items() if "seconds" not in k}
    assert strip(runs["zero"][0]) == strip(runs["without"][0])
    assert "reconstruction_loss" not in runs["zero"][0]
    metrics, logged, _ = runs["on"]
    assert {"train/reconstruction_loss", "val/reconstruction_loss"} <= set(logged)
    rec = [v for _, v in logged["val/reconstruction_loss"]]
    assert rec[-1] < rec[0]                               # the decoder learns
    assert metrics["reconstruction_loss"] == pytest.approx(rec[metrics["best_epoch"]])
    obj = [v for _, v in logged["val/objective"]]
    align = [v for _, v in logged["val/alignment_loss"]]
    infonce_only = train(sig, text, folds, config(), tmp_path / "x", tmp_path / "x" / "state", Recorder(),
                         log=lambda *a: None)
    assert infonce_only["val_objective"] != pytest.approx(metrics["val_objective"])
    assert obj[0] > rec[0] and align[0] > 0           # objective = alignment objective + weight x reconstruction
    model = torch.load(tmp_path / "on" / "model.pt", weights_only=True)
    assert model["config"]["reconstruct"] and any(k.startswith("decoder.") for k in model["state_dict"])


def test_study_configuration_trains_and_resumes(tmp_path):
    """dual_attention + cosine + reconstruction (the study's objective) learns, and a killed run resumes to the
    same weights."""
    sig, text, folds = make_data(n=40)
    cfg = config(encoder="dual_attention", embed_dim=16, loss="cosine", recon_weight=1.0, batch_size=8, epochs=2)
    metrics = train(sig, text, folds, cfg, tmp_path / "a", tmp_path / "a" / "state", log=lambda *a: None)
    assert metrics["alignment_loss"] < metrics["alignment_loss_initial"]
    with pytest.raises(KeyboardInterrupt):
        train(sig, text, folds, cfg, tmp_path / "b", tmp_path / "b" / "state", Recorder(kill_at=2),
              log=lambda *a: None)
    train(sig, text, folds, cfg, tmp_path / "b", tmp_path / "b" / "state", log=lambda *a: None)
    assert_same_weights(state_dict(tmp_path / "a" / "model.pt"), state_dict(tmp_path / "b" / "model.pt"))
