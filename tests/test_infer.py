"""src/infer.py: the trained model applied to recordings from outside PTB-XL. The pipeline runs once for this module,
up to ecg_embeddings (200 synthetic records, the tiny text model, 2 epochs), in a fresh git + DVC repository; every
command then runs there as a user would run it (`python src/infer.py ...` at the repository's root)."""
from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, make_repo, run

LEADS = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory, tiny_text_model):
    """A repository whose pipeline ran up to ecg_embeddings: model, signals, text and ECG embeddings, reports, raw
    WFDB records. (test_pipeline.py's repository is its own module's and changes under its experiments.)"""
    root = tmp_path_factory.mktemp("infer-repo")
    env = make_repo(root, tiny_text_model, epochs=2)
    run(["dvc", "repro", "ecg_embeddings"], root, env)
    return root, env


def infer(root: Path, env: dict, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "src/infer.py", *map(str, args)], cwd=root, env=env, capture_output=True,
                          text=True, timeout=600)


def ok(out: subprocess.CompletedProcess) -> str:
    assert out.returncode == 0, f"infer failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out.stdout


def rows(folder: Path, kind: str) -> list[dict]:
    with open(folder / "scores.csv", newline="", encoding="utf-8") as f:
        return [r for r in csv.DictReader(f) if r["kind"] == kind]


def signal_of(root: Path, ecg_id: int) -> np.ndarray:
    """A record's (12, 1000) float64 mV from the pipeline's signal array."""
    reports = [json.loads(line) for line in (root / "data/reports.jsonl").read_text().splitlines()]
    row = [r["ecg_id"] for r in reports].index(ecg_id)
    return np.array(np.load(root / "data/signals/signals.npy", mmap_mode="r")[row], dtype=np.float64)


def write_wfdb(folder: Path, name: str, x: np.ndarray, fs: int, names: list[str]) -> Path:
    import wfdb

    wfdb.wrsamp(name, fs=fs, units=["mV"] * len(names), sig_name=names, p_signal=x.T, fmt=["16"] * len(names),
                adc_gain=[1000.0] * len(names), baseline=[0] * len(names), write_dir=str(folder))
    return folder / f"{name}.hea"


# --------------------------------------------------------------------------------------------------- behaviour

def test_the_same_recording_at_500_hz_in_another_lead_order_gives_the_same_top_statements(pipeline, tmp_path):
    """A 100 Hz WFDB record, its 500 Hz resampled copy with the leads permuted and named in other notations (WFDB),
    and the same copy as a .npy array: one call, identical top-5 statements, near-identical cosines."""
    from scipy.signal import resample_poly

    root, env = pipeline
    x = signal_of(root, 5)
    a = write_wfdb(tmp_path, "rec100", x, 100, LEADS)
    x500 = resample_poly(x, 5, 1, axis=1)
    perm = np.random.default_rng(0).permutation(12)
    notation = {"aVR": "avr", "II": "Lead II", "V1": "v1", "III": "DIII", "aVL": "AVL"}
    names = [notation.get(LEADS[i], LEADS[i]) for i in perm]
    b = write_wfdb(tmp_path, "rec500", x500[perm], 500, names)
    np.save(tmp_path / "rec500np.npy", x500[perm].astype(np.float32))
    out = tmp_path / "out"
    ok(infer(root, env, a, b, tmp_path / "rec500np.npy", "--rate", "500", "--leads", ",".join(names), "--out", out))
    tops = {n: rows(out / n, "statement")[:5] for n in ("rec100", "rec500", "rec500np")}
    order = [r["key"] for r in tops["rec100"]]
    assert len(order) == 5
    e100 = np.load(out / "rec100" / "e.npy")
    for n in ("rec500", "rec500np"):
        assert [r["key"] for r in tops[n]] == order, n
        assert np.allclose([float(r["score"]) for r in tops[n]], [float(r["score"]) for r in tops["rec100"]],
                           atol=2e-4)
        # the tiny model's top-5 barely moves even with two leads swapped; its embedding does: swapping I and II
        # moves e by 3e-3 (V5 and V6: 1.6e-2), the round trip through 500 Hz by 2e-4
        assert np.abs(np.load(out / n / "e.npy") - e100).max() < 1e-3, n
    facts = json.loads((out / "rec500" / "input.json").read_text())
    assert facts["resampled"] and facts["sampling_rate_hz"] == 500 and facts["leads_missing"] == []
    assert facts["lead_names_in_file"]["aVR"] == "avr" and facts["lead_names_in_file"]["II"] == "Lead II"
    assert not json.loads((out / "rec100" / "input.json").read_text())["resampled"]
    with open(out / "summary.csv", newline="") as f:
        assert [r["name"] for r in csv.DictReader(f)] == ["rec100", "rec500", "rec500np"]


def test_a_ptbxl_record_fed_back_gives_the_pipelines_embedding_and_scores(pipeline, tmp_path):
    """The raw WFDB file of a PTB-XL record: z and e equal its rows of data/ecg_embeddings (1e-5), the top statements
    are show_record's (evaluation.nearest_statements), the zero-shot scores the evaluate stage's prompts', its
    nearest PTB-XL record is itself; scores.csv's layout; --plot draws the printout."""
    from ecgalign import artifacts as art
    from ecgalign import evaluation as ev
    from ecgalign import labels as lb
    from ecgalign.models import load_model
    from ecgalign.ptbxl import read_statements

    root, env = pipeline
    data = root / "data"
    reports = art.load_reports(data / "reports.jsonl")
    row = 7
    record = reports[row]
    hea = data / "raw" / f"{record['filename_lr']}.hea"
    out = tmp_path / "out"
    shown = ok(infer(root, env, hea, "--out", out, "--plot", "--steps", "4", "--top", "8"))
    folder = out / Path(record["filename_lr"]).name
    assert f"wrote {folder}/" in shown and "missing leads" not in shown
    z, e = np.load(folder / "z.npy"), np.load(folder / "e.npy")
    np.testing.assert_allclose(z, np.load(data / "ecg_embeddings/z_ecg.npy")[row], atol=1e-5)
    np.testing.assert_allclose(e, np.load(data / "ecg_embeddings/e_ecg.npy")[row], atol=1e-5)

    with open(folder / "scores.csv", newline="") as f:
        table = list(csv.reader(f))
    assert table[0] == ["kind", "rank", "key", "score", "text"]
    kinds = [r[0] for r in table[1:]]
    assert kinds == ["statement"] * 8 + ["zero_shot"] * 5 + ["probe"] * 5 + ["neighbour"] * 5
    nearest = ev.nearest_statements(record["ecg_id"], k=8, data_dir=data)
    statements = rows(folder, "statement")
    assert [r["key"] for r in statements] == [code for code, _, _ in nearest]
    assert [r["text"] for r in statements] == [text for _, text, _ in nearest]
    assert [int(r["rank"]) for r in statements] == list(range(1, 9))
    np.testing.assert_allclose([float(r["score"]) for r in statements], [c for _, _, c in nearest], atol=1e-5)

    model = load_model(data / "model/model.pt")
    codes_table, emb = art.load_statements(data / "text")
    table = read_statements(data / "raw")
    _, classes, _ = lb.task_labels([r["scp_codes"] for r in reports], table, "superdiagnostic")
    prompts, kept = ev.class_prompts(ev.project_text(model, emb), [s["code"] for s in codes_table],
                                     lb.class_statements(table, "superdiagnostic"), classes)
    expected = dict(zip(kept, ev.zero_shot_scores(np.load(data / "ecg_embeddings/e_ecg.npy")[row:row + 1],
                                                  prompts)[0]))
    zero_shot = {r["key"]: float(r["score"]) for r in rows(folder, "zero_shot")}
    assert zero_shot == pytest.approx(expected, abs=1e-5)

    probe = rows(folder, "probe")
    assert {r["key"] for r in probe} == {"NORM", "MI", "STTC", "CD", "HYP"}
    p = [float(r["score"]) for r in probe]
    assert all(0 <= v <= 1 for v in p) and p == sorted(p, reverse=True)
    facts = json.loads((folder / "input.json").read_text())
    assert facts["probe"]["features"] == "z_ecg" and facts["probe"]["val_folds"] == [9]
    assert facts["probe"]["c"] in (0.001, 0.01, 0.1, 1.0, 10.0)
    assert facts["window_s"] == [0.0, 10.0] and facts["leads_missing"] == [] and not facts["resampled"]

    neighbours = rows(folder, "neighbour")
    assert neighbours[0]["key"] == str(record["ecg_id"]) and float(neighbours[0]["score"]) == pytest.approx(1, abs=1e-5)
    assert neighbours[0]["text"] == " | ".join(record["report"].splitlines())
    assert (folder / "ecg.png").stat().st_size > 10_000


def test_missing_leads_are_filled_with_the_training_mean_and_reported(pipeline, tmp_path):
    """A .npy with 9 of the 12 leads (another order, plus a non-ECG channel left out by --skip-unknown-leads): the
    3 missing leads read as 0 after the model's normalisation, as augment.lead_dropout blanks them, and are named in
    the terminal, input.json and summary.csv."""
    import torch

    from ecgalign.models import load_model

    root, env = pipeline
    x = signal_of(root, 11)
    kept = [lead for lead in LEADS if lead not in ("aVL", "V4", "V5")][::-1]
    array = np.stack([x[LEADS.index(lead)] for lead in kept] + [np.zeros(1000)])
    np.save(tmp_path / "partial.npy", array.astype(np.float32))
    out = tmp_path / "out"
    shown = ok(infer(root, env, tmp_path / "partial.npy", "--rate", "100", "--leads", ",".join(kept + ["RESP"]),
                     "--skip-unknown-leads", "--out", out))
    assert "  missing leads: aVL, V4, V5, set to the training-fold mean" in shown
    assert "  leads left out (--skip-unknown-leads): RESP" in shown
    facts = json.loads((out / "partial" / "input.json").read_text())
    assert facts["leads_missing"] == ["aVL", "V4", "V5"] and facts["leads_ignored"] == ["RESP"]
    assert facts["leads_found"] == [lead for lead in LEADS if lead in kept]
    with open(out / "summary.csv", newline="") as f:
        (summary,) = list(csv.DictReader(f))
    assert summary["leads_missing"] == "aVL V4 V5" and summary["leads_ignored"] == "RESP"
    model = load_model(root / "data/model/model.pt")
    filled = np.array(x, dtype=np.float32)
    for lead in ("aVL", "V4", "V5"):
        filled[LEADS.index(lead)] = model.lead_mean[LEADS.index(lead)].item()
    with torch.no_grad():
        xt = torch.from_numpy(filled)[None]
        assert model.normalise(xt)[0, [LEADS.index(lead) for lead in ("aVL", "V4", "V5")]].abs().max() == 0
        z = model.encode_ecg(xt)[0].numpy()
    np.testing.assert_allclose(np.load(out / "partial" / "z.npy"), z, atol=1e-5)


def test_a_long_recording_is_cropped_to_the_window_it_names(pipeline, tmp_path):
    """25 s at 100 Hz with --start 12: the embedding of the 12-22 s window cut beforehand (two files, one call)."""
    root, env = pipeline
    long = np.concatenate([signal_of(root, 3), signal_of(root, 4), signal_of(root, 6)[:, :500]], axis=1)
    np.save(tmp_path / "long.npy", long.astype(np.float32))
    np.save(tmp_path / "cut.npy", long[:, 1200:2200].astype(np.float32))
    out = tmp_path / "out"
    shown = ok(infer(root, env, tmp_path / "long.npy", "--rate", "100", "--leads", ",".join(LEADS), "--start", "12",
                     "--out", out))
    assert f"long ({tmp_path / 'long.npy'}: npy at 100 Hz, 25.00 s; used 12-22 s)" in shown
    facts = json.loads((out / "long" / "input.json").read_text())
    assert facts["window_s"] == [12.0, 22.0] and facts["duration_s"] == 25.0
    ok(infer(root, env, tmp_path / "cut.npy", "--rate", "100", "--leads", ",".join(LEADS), "--out", out))
    np.testing.assert_allclose(np.load(out / "long" / "z.npy"), np.load(out / "cut" / "z.npy"), atol=1e-6)


# --------------------------------------------------------------------------------------------------- bad input

def bad_inputs(folder: Path, root: Path) -> list[tuple[list, str]]:
    """(arguments, the one stderr line expected) per bad input."""
    x = signal_of(root, 5)
    leads = ",".join(LEADS)
    write_wfdb(folder, "v7", x, 100, LEADS[:-1] + ["V7"])
    np.save(folder / "short.npy", x[:, :400].astype(np.float32))
    nan = x.astype(np.float32)
    nan[3, 17] = nan[3, 40] = np.nan
    np.save(folder / "nan.npy", nan)
    np.save(folder / "ok.npy", x.astype(np.float32))
    f = folder
    return [
        ([f / "v7.hea"], f"error: {f / 'v7.hea'}: unknown lead name(s) 'V7': expected the 12 standard leads (I, II, "
                         f"III, aVR, aVL, aVF, V1, V2, V3, V4, V5, V6); rename them in the header, or use "
                         f"--skip-unknown-leads to leave them out"),
        ([f / "ok.npy", "--rate", "100", "--leads", leads.replace("V6", "X")],
         f"error: {f / 'ok.npy'}: unknown lead name(s) 'X': expected the 12 standard leads (I, II, III, aVR, aVL, "
         f"aVF, V1, V2, V3, V4, V5, V6); rename them in --leads, or use --skip-unknown-leads to leave them out"),
        ([f / "short.npy", "--rate", "100", "--leads", leads],
         f"error: {f / 'short.npy'}: 4.00 s of signal (400 samples at 100 Hz), but the model needs 10 s: too short; "
         f"use a recording of at least 10 s"),
        ([f / "ok.npy", "--rate", "100", "--leads", leads, "--start", "5"],
         f"error: {f / 'ok.npy'}: 10.00 s of signal (1000 samples at 100 Hz), but the model needs 10 s from --start "
         f"5 s: too short; use a recording of at least 15 s"),
        ([f / "nan.npy", "--rate", "100", "--leads", leads],
         f"error: {f / 'nan.npy'}: 2 non-finite sample(s) (NaN or inf), first in lead aVR at sample 17: fix or "
         f"remove them (e.g. interpolate the gap) before inference"),
        ([f / "ok.npy", "--leads", leads],
         f"error: {f / 'ok.npy'}: a .npy array carries no sampling rate: set it with --rate HZ (e.g. --rate 500)"),
        ([f / "ok.npy", "--rate", "0", "--leads", leads],
         f"error: {f / 'ok.npy'}: --rate 0 is not a sampling rate: set --rate to a positive number of Hz"),
        ([f / "ok.npy", "--rate", "fast", "--leads", leads],
         f"error: {f / 'ok.npy'}: --rate fast is not a sampling rate: set --rate to a positive number of Hz"),
        ([f / "ok.npy", "--rate", "100"],
         f"error: {f / 'ok.npy'}: a .npy array carries no lead names: set them with --leads I,II,III,... (one per "
         f"row, in the array's row order)"),
        ([f / "ok.npy", "--rate", "100", "--leads", "I,II,III"],
         f"error: {f / 'ok.npy'}: shape (12, 1000), but --leads names 3 lead(s): expected leads x samples (3 rows); "
         f"check --leads, or transpose a samples x leads array"),
        ([f / "absent.hea"],
         f"error: {f / 'absent.hea'}: no such file; check the path (a WFDB record needs its .hea and .dat)"),
    ]


def test_each_bad_input_is_one_error_line_naming_the_file_with_status_2(pipeline, tmp_path):
    root, env = pipeline
    out = tmp_path / "out"
    for args, expected in bad_inputs(tmp_path, root):
        result = infer(root, env, *args, "--out", out)
        assert result.returncode == 2, (args, result.stderr[-2000:])
        assert result.stderr.strip().splitlines() == [expected], args
        assert "Traceback" not in result.stderr
    assert not out.exists()   # nothing written for a call with a bad input


def test_a_bad_file_among_good_ones_stops_the_call_before_anything_is_written(pipeline, tmp_path):
    root, env = pipeline
    x = signal_of(root, 5)
    np.save(tmp_path / "good.npy", x.astype(np.float32))
    np.save(tmp_path / "short.npy", x[:, :900].astype(np.float32))
    result = infer(root, env, tmp_path / "good.npy", tmp_path / "short.npy", "--rate", "100", "--leads",
                   ",".join(LEADS), "--out", tmp_path / "out")
    assert result.returncode == 2 and result.stderr.strip().splitlines()[-1].startswith(
        f"error: {tmp_path / 'short.npy'}: 9.00 s of signal")
    assert not (tmp_path / "out").exists()


def test_without_a_trained_model_the_command_says_to_run_make_repro(tmp_path):
    """A fresh checkout (no data/): one line pointing at make repro."""
    shutil.copytree(REPO / "src", tmp_path / "src", ignore=shutil.ignore_patterns("__pycache__"))
    np.save(tmp_path / "x.npy", np.zeros((12, 1000), dtype=np.float32))
    result = subprocess.run([sys.executable, "src/infer.py", "x.npy", "--rate", "100", "--leads", ",".join(LEADS)],
                            cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: data/model/model.pt not found: there is no trained model yet; run `make repro` (or dvc repro) first"]


# --------------------------------------------------------------------------------------------------- the library

def test_lead_names_match_whatever_the_notation():
    from ecgalign.inference import lead_key

    assert {lead_key(n) for n in ("aVR", "AVR", "avr", " Lead aVR", "LEAD_AVR")} == {"AVR"}
    assert [lead_key(n) for n in ("i", "DII", "D3", "v1", "V 6")] == ["I", "II", "III", "V1", "V6"]
    assert lead_key("-aVR") != "AVR"   # Cabrera's inverted aVR is another signal


def test_two_inputs_with_one_name_are_refused_and_a_record_given_twice_is_read_once(tmp_path):
    from ecgalign.inference import InferenceError, output_names, unique_inputs

    assert unique_inputs([Path("a/r.hea"), Path("a/r.dat"), Path("b/s.npy")]) == [Path("a/r.hea"), Path("b/s.npy")]
    assert output_names([Path("a/r.hea"), Path("b/s.npy")]) == ["r", "s"]
    with pytest.raises(InferenceError, match="both are named 'r'"):
        output_names([Path("a/r.hea"), Path("b/r.npy")])


def test_resampling_keeps_the_waveform_and_its_timing():
    from ecgalign.inference import resample

    t = np.arange(5000) / 500
    x = np.stack([np.sin(2 * np.pi * 1.3 * t), np.cos(2 * np.pi * 7 * t)])
    y = resample(x, 500, 100)
    assert y.shape == (2, 1000)
    t100 = np.arange(1000) / 100
    inner = slice(20, 980)   # away from the edges
    np.testing.assert_allclose(y[:, inner], np.stack([np.sin(2 * np.pi * 1.3 * t100),
                                                      np.cos(2 * np.pi * 7 * t100)])[:, inner], atol=1e-2)
    assert resample(x, 100, 100) is x
    assert resample(np.zeros((1, 3600)), 360, 100).shape == (1, 1000)


def test_a_collapsed_space_is_named_instead_of_ranking_noise():
    from ecgalign.inference import collapsed
    row = lambda rank, score: ("statement", rank, f"S{rank}", score, "")    # noqa: E731
    # the study grid's cosine-trained model (study-s0) on ecg_id 1: its top statements SR, NORM, PACE, ABQRS
    assert collapsed([row(1, 0.999693), row(2, 0.999680), row(3, 0.999677), row(4, 0.999623),
                      ("probe", 1, "NORM", 0.92, "")])
    assert not collapsed([row(1, 0.62), row(2, 0.41), row(3, 0.40)])
    assert not collapsed([row(1, 0.99)])
