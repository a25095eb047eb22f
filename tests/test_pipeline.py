"""End to end: the repository copied into a temp dir, `git init`, `dvc repro`, artifacts checked, an experiment run."""
import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import make_repo, run

STAGES = ("download", "reports", "text_embeddings", "signals", "train", "finetune", "ecg_embeddings", "baseline",
          "evaluate")


@pytest.fixture(scope="module")
def repo(tmp_path_factory, tiny_text_model):
    """A fresh repository with the project's files and small params: 200 synthetic records, a tiny text model."""
    root = tmp_path_factory.mktemp("repo")
    return root, make_repo(root, tiny_text_model, epochs=2)


def test_dvc_repro_writes_every_artifact(repo):
    root, env = repo
    out = run(["dvc", "repro"], root, env)
    for stage in STAGES:
        assert f"'{stage}'" in out
    reports = [json.loads(line) for line in (root / "data/reports.jsonl").read_text().splitlines()]
    assert len(reports) == 200 and [r["ecg_id"] for r in reports] == list(range(1, 201))
    assert all(r["report"].count("\n") + 1 == len(r["scp_codes"]) for r in reports)
    assert json.loads((root / "data/raw/dataset.json").read_text())["records_root"] == "."
    assert np.load(root / "data/text/record_embeddings.npy").shape == (200, 32)
    assert np.load(root / "data/signals/signals.npy", mmap_mode="r").shape == (200, 12, 1000)
    train = json.loads((root / "metrics/train.json").read_text())
    assert {"alignment_loss_initial", "alignment_loss", "epochs", "train_seconds"} <= set(train)
    assert train["epochs"] == 2
    assert np.load(root / "data/ecg_embeddings/e_ecg.npy").shape[0] == 200
    metrics = json.loads((root / "metrics/eval.json").read_text())
    for name in ("alignment_loss", "ecg_to_text_r1", "ecg_to_text_r5", "ecg_to_text_r10", "zero_shot_auc_macro",
                 "linear_probe_auc_macro", "ecg_embedding_mean_cosine", "text_embedding_mean_cosine",
                 "transfer_sex_100pct_auc", "transfer_age_100pct_mae", "transfer_age_1pct_r2"):
        assert np.isfinite(metrics[name]) and np.isfinite(metrics["baseline_" + name]), name
    assert metrics["transfer_sex_n_test"] == metrics["transfer_age_n_test"] == metrics["n_test"]   # all known
    for png in ("loss", "embedding_map", "zero_shot_roc"):
        assert (root / f"plots/{png}.png").stat().st_size > 1000
    # nothing changed: a second repro does no work
    assert "Data and pipelines are up to date" in run(["dvc", "repro"], root, env)
    # the synthetic free text is English: it passes through the translator unchanged, no word unknown
    assert all(r["report_en"] == r["report_de"] != "" for r in reports)
    free = json.loads((root / "metrics/reports.json").read_text())["free_text"]
    assert free["share_unknown"] == 0.0 and free["share_english"] == 1.0
    # the record command prints the report, its free text (original, English), the latent text embedding and the
    # nearest statements
    shown = run([sys.executable, "src/show_record.py", "1"], root, env)
    assert shown.startswith(f"{reports[0]['report']}\nFree-text report (original): {reports[0]['report_de']}\n"
                            f"Free-text report (English):  {reports[0]['report_en']}\n"
                            f"Latent text code embedding: tensor([")


def test_experiment_with_another_loss_shows_in_metrics_diff(repo):
    root, env = repo
    run(["dvc", "exp", "run", "-S", "train.loss=cosine", "-S", "train.epochs=1", "evaluate"], root, env)
    shown = run(["dvc", "exp", "show", "--csv"], root, env)
    assert "cosine" in shown
    diff = run(["dvc", "metrics", "diff", "--json"], root, env)
    assert "metrics/eval.json" in diff


def test_study_configuration_runs_end_to_end(repo):
    """The study's method (dual_attention + cosine + reconstruction) through every stage: the reconstruction loss
    is logged per epoch and the test fold's reconstruction error per lead is in metrics/eval.json."""
    root, env = repo
    refused = subprocess.run([sys.executable, "src/show_record.py", "1", "--plot", "out/a.png", "--attention"],
                             cwd=root, env=env, capture_output=True, text=True)
    assert refused.returncode != 0 and refused.stderr.strip().splitlines() == [
        "error: --attention: data/model/model.pt holds a cnn1d encoder, which has no attention; retrain with "
        "ecg.encoder=dual_attention"]
    run(["dvc", "exp", "run", "-S", "ecg.encoder=dual_attention", "-S", "train.loss=cosine",
         "-S", "train.recon_weight=1", "-S", "train.epochs=1",   # finetune briefly: all of its labels, one epoch
         "-S", "finetune.label_fractions=[1.0]", "-S", "finetune.max_epochs=1", "-S", "finetune.min_steps_per_epoch=2"],
        root, env)
    finetuned = json.loads((root / "metrics/finetune.json").read_text())
    assert np.isfinite(finetuned["finetune_aligned_f100_auc_macro"])
    train = json.loads((root / "metrics/train.json").read_text())
    assert train["reconstruction_loss"] > 0
    assert (root / "dvclive/plots/metrics/val/reconstruction_loss.tsv").exists()
    metrics = json.loads((root / "metrics/eval.json").read_text())
    leads = ("I", "II", "III", "AVR", "AVL", "AVF", "V1", "V2", "V3", "V4", "V5", "V6")
    per_lead = [metrics[f"reconstruction_mse_{lead}"] for lead in leads]
    assert metrics["reconstruction_mse"] == pytest.approx(np.mean(per_lead), abs=1e-5)
    assert np.isfinite(metrics["zero_shot_auc_macro"]) and np.isfinite(metrics["baseline_zero_shot_auc_macro"])
    # the attention maps: each lead's temporal attention under its trace, the 12 x 12 cross-lead map beside it
    run([sys.executable, "src/show_record.py", "1", "--plot", "out/ecg1.png", "--attention"], root, env)
    assert (root / "out/ecg1.png").stat().st_size > 10_000 and (root / "out/ecg1_leads.png").stat().st_size > 5_000
    shown = run([sys.executable, "src/show_record.py", "--attention-agreement", "out", "--records", "6",
                 "--steps", "4"], root, env)
    agreement = json.loads((root / "out/attention_agreement.json").read_text())
    assert agreement["n_records"] == 6 and len(agreement["per_record"]["spearman"]) == 6
    assert -1 <= agreement["spearman"]["mean"] <= 1 and "top-3 overlap" in shown


def test_make_real_on_a_folder_without_records_leaves_the_workspace_alone(tmp_path, tiny_text_model):
    """`make real` runs as a temporary DVC experiment: a failed run changes no tracked file (params.yaml, metrics)."""
    import hashlib
    import shutil
    import subprocess
    from pathlib import Path

    from conftest import REPO
    root = tmp_path / "repo"
    root.mkdir()
    env = make_repo(root, tiny_text_model, epochs=1)
    for name in ("Makefile", "requirements.txt", "pyproject.toml"):
        shutil.copy(REPO / name, root / name)
    run(["git", "add", "-A"], root, env)
    run(["git", "commit", "-qm", "make"], root, env)
    (root / ".venv").symlink_to(Path(sys.executable).parents[1])   # the installed venv: make skips the install
    stamp = hashlib.sha256((root / "requirements.txt").read_bytes()).hexdigest()[:12]
    (root / ".venv" / f".installed-{stamp}").touch()
    folder = tmp_path / "ptbxl"
    folder.mkdir()
    (folder / "ptbxl_database.csv").write_text("ecg_id,patient_id,scp_codes,strat_fold,filename_lr,filename_hr\n"
                                               "1,1,\"{'NORM': 100.0}\",1,records100/00000/00001_lr,x\n")
    (folder / "scp_statements.csv").write_text("code,description\nNORM,normal ECG\n")
    out = subprocess.run(["make", "real", f"PTBXL={folder}"], cwd=root, env=env, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode != 0 and "error:" in out.stdout + out.stderr
    assert run(["git", "status", "--porcelain"], root, env).strip() == ""
