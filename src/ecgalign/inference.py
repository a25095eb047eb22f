"""Inference on a user's own ECG recordings (src/infer.py): the trained model of data/model/model.pt applied to WFDB
records or NumPy arrays that are not in PTB-XL, scored against what the pipeline built.

    recording (any rate, any lead order) --read--> (leads, samples) mV, lead names
        --match leads by name--> --resample to the model's rate--> --crop 10 s--> (12, T) mV in PTB-XL lead order,
        a missing lead filled with its training-fold mean (0 after the model's normalisation, as augment.lead_dropout)
        --model.encode_ecg / project_ecg (models.encode_all, the ecg_embeddings stage's code)--> z, e
    e vs every SCP statement's projected text embedding   -> top statements (cosine)
    e vs the superclass prompts (evaluation.class_prompts) -> zero-shot scores, as the evaluate stage computes them
    z -> logistic probe fitted now on the label pool's z_ecg, C chosen on split.val_folds (probe.probe, as evaluate)
    e vs data/ecg_embeddings/e_ecg.npy                     -> nearest PTB-XL records and their reports

Normalisation is the model's own (AlignmentModel.normalise: its lead_mean / lead_std buffers are the training folds'
stats of data/signals/stats.json), so a PTB-XL record read from its WFDB file gives the z_ecg row of the pipeline.

Every expected failure is an InferenceError (a ProjectError) naming the file; `run` prints it as one `error: ...` line
(errors.describe, the stages' format) and exits with status 2, the status of a command-line usage error.
"""
from __future__ import annotations

import csv
import io
import re
import sys
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from . import artifacts as art
from .errors import MissingArtifactError, ProjectError, describe

REPO = Path(__file__).resolve().parents[2]
EXIT_STATUS = 2                     # bad input to a command: argparse's status for usage errors
SUPERCLASS_NAMES = {"NORM": "normal ECG", "MI": "myocardial infarction", "STTC": "ST/T change",
                    "CD": "conduction disturbance", "HYP": "hypertrophy"}
DISPLAY = {"AVR": "aVR", "AVL": "aVL", "AVF": "aVF"}   # PTB-XL's upper-case names as printed on an ECG
ALIASES = {"DI": "I", "DII": "II", "DIII": "III", "D1": "I", "D2": "II", "D3": "III"}   # European notation
MARGIN = 1.0                        # seconds resampled either side of the window (prepare)
COLLAPSE_SPREAD = 1e-3              # top statements' cosines closer than this: a collapsed space (describe_result)
MICROVOLT_HINT_MV = 20.0            # a window peaking above this many mV is probably in microvolts
UNITS = {"mv": 1.0, "uv": 1e-3, "v": 1e3}   # factor to millivolts; µV and μV are read as uV
CSV_COLUMNS = ("kind", "rank", "key", "score", "text")
SUMMARY_COLUMNS = ("name", "input", "format", "rate_hz", "duration_s", "window_start_s", "window_end_s",
                   "resampled", "leads_missing", "leads_ignored", "top_statement", "top_statement_cosine",
                   "top_probe_class", "top_probe_probability")


class InferenceError(ProjectError, ValueError):
    """A recording or command line the inference command cannot use; the message names the file and what to do."""
    hint = "fix the recording or the command line named above"


def display(lead: str) -> str:
    """A PTB-XL lead name as printed: AVR -> aVR."""
    return DISPLAY.get(lead, lead)


def lead_key(name: str) -> str:
    """A lead name in the notation of data/signals/stats.json ("I", "AVR", "V1"), whatever the case, spacing or
    a "lead" prefix: "aVR", "avr", "Lead aVR", "LEAD_V1", "v1" and "DII" (European notation) are all matched. A sign
    ("-aVR", Cabrera's inverted lead) is kept, so it matches no standard lead."""
    key = re.sub(r"[\s_]+", "", str(name)).upper()
    key = key[4:] if key.startswith("LEAD") and len(key) > 4 else key
    return ALIASES.get(key, key)


# ------------------------------------------------------------------------------------------------ reading a file

@dataclass
class Raw:
    """A recording as read: (leads, samples) float64 millivolts, the file's lead names, its sampling rate."""
    path: Path
    format: str            # "wfdb" | "npy"
    signal: np.ndarray
    names: list[str]
    rate: float


def parse_rate(value: str | None, path: Path) -> float:
    """--rate for a .npy file: a positive, finite number of Hz."""
    if value is None:
        raise InferenceError(f"{path}: a .npy array carries no sampling rate: set it with --rate HZ (e.g. --rate 500)")
    try:
        rate = float(value)
    except ValueError:
        rate = float("nan")
    if not (np.isfinite(rate) and rate > 0):
        raise InferenceError(f"{path}: --rate {value} is not a sampling rate: set --rate to a positive number of Hz")
    return rate


def read_npy(path: Path, rate: str | None, leads: str | None) -> Raw:
    """A .npy array (leads x samples, millivolts) with its rate and lead names from the command line."""
    hz = parse_rate(rate, path)
    if not leads:
        raise InferenceError(f"{path}: a .npy array carries no lead names: set them with --leads I,II,III,... "
                             f"(one per row, in the array's row order)")
    names = [n.strip() for n in leads.split(",") if n.strip()]
    try:
        x = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise InferenceError(f"{path}: not a readable .npy array ({str(e)[:200]}); check the file") from None
    if x.ndim != 2 or x.shape[0] != len(names):
        raise InferenceError(f"{path}: shape {tuple(x.shape)}, but --leads names {len(names)} lead(s): expected "
                             f"leads x samples ({len(names)} rows); check --leads, or transpose a samples x leads "
                             f"array")
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise InferenceError(f"{path}: dtype {x.dtype} is not numeric; write the array as float32 millivolts")
    return Raw(path, "npy", np.asarray(x, dtype=np.float64), names, hz)


def read_wfdb(path: Path) -> Raw:
    """A WFDB record (any format wfdb reads, any rate); physical values converted to millivolts from the header's
    units (mV, uV, V)."""
    import wfdb

    base = path.with_suffix("")
    try:
        record = wfdb.rdrecord(str(base))
    except Exception as e:   # wfdb raises many types; report them as this file's error
        raise InferenceError(f"{path}: wfdb could not read the record ({type(e).__name__}: {str(e)[:200]}); check "
                             f"its .hea and .dat files") from None
    if record.p_signal is None or record.p_signal.ndim != 2 or not record.sig_name:
        raise InferenceError(f"{path}: the record holds no single-segment signal; check its .hea file")
    x = np.asarray(record.p_signal, dtype=np.float64).T
    units = record.units or ["mV"] * len(record.sig_name)
    scale = []
    for name, unit in zip(record.sig_name, units):
        factor = UNITS.get((unit or "mV").strip().replace("µ", "u").replace("μ", "u").lower())
        if factor is None:
            raise InferenceError(f"{path}: lead {name} is in {unit!r}; set the header's units to mV, uV or V")
        scale.append(factor)
    if not record.fs or record.fs <= 0:
        raise InferenceError(f"{path}: sampling frequency {record.fs!r} in the header; fix the header's record line")
    return Raw(path, "wfdb", x * np.asarray(scale)[:, None], list(record.sig_name), float(record.fs))


def read(path: Path, rate: str | None = None, leads: str | None = None) -> Raw:
    """A recording by its path: .npy, or a WFDB record named by its .hea, its .dat or its name without extension."""
    if path.suffix.lower() == ".npy":
        if not path.is_file():
            raise InferenceError(f"{path}: no such file; check the path")
        return read_npy(path, rate, leads)
    if path.suffix.lower() in (".hea", ".dat") or not path.suffix:
        hea = path.with_suffix(".hea")
        if not hea.is_file():
            raise InferenceError(f"{hea}: no such file; check the path (a WFDB record needs its .hea and .dat)")
        return read_wfdb(hea)
    raise InferenceError(f"{path}: not a WFDB record (.hea, .dat) or a NumPy array (.npy); convert it to one of these")


# ------------------------------------------------------------------------------------------- to the model's input

@dataclass
class Recording:
    """A recording ready for the model: `signal` (12, T) float32 mV at the model's rate, PTB-XL lead order."""
    name: str
    path: Path
    format: str
    rate: float
    n_samples: int
    window: tuple[float, float]          # seconds of the recording that were used
    signal: np.ndarray
    found: list[str]                     # PTB-XL leads read from the file (stats.json notation)
    missing: list[str]                   # PTB-XL leads absent: filled with the training-fold mean
    ignored: list[str] = field(default_factory=list)   # the file's leads left out (--skip-unknown-leads)
    lead_map: dict = field(default_factory=dict)       # PTB-XL lead -> the file's name for it
    model_rate: int = 0                                # the rate of `signal`
    peak_mv: float = 0.0                               # largest |amplitude| read in the window (a units check)

    @property
    def duration(self) -> float:
        return self.n_samples / self.rate

    @property
    def resampled(self) -> bool:
        return self.model_rate != self.rate


def match_leads(raw: Raw, leads: list[str], skip_unknown: bool = False) -> tuple[dict, list[str]]:
    """{PTB-XL lead: row of raw.signal} by name (lead_key), and the file's names left out. Unknown names are an
    error unless skip_unknown; a lead given twice is an error."""
    rows, unknown = {}, []
    for i, name in enumerate(raw.names):
        key = lead_key(name)
        if key not in leads:
            unknown.append(name)
        elif key in rows:
            raise InferenceError(f"{raw.path}: lead {display(key)} appears twice ({raw.names[rows[key]]!r} and "
                                 f"{name!r}); remove one")
        else:
            rows[key] = i
    if unknown and not skip_unknown:
        where = "--leads" if raw.format == "npy" else "the header"
        raise InferenceError(f"{raw.path}: unknown lead name(s) {', '.join(repr(n) for n in unknown)}: expected "
                             f"the 12 standard leads ({', '.join(map(display, leads))}); rename them in {where}, or "
                             f"use --skip-unknown-leads to leave them out")
    if not rows:
        raise InferenceError(f"{raw.path}: none of the 12 standard leads ({', '.join(map(display, leads))}) is "
                             f"among its leads {raw.names}; rename them in "
                             f"{'--leads' if raw.format == 'npy' else 'the header'}")
    return rows, unknown


def check_finite(raw: Raw, rows: dict, lo: int, hi: int) -> None:
    """NaN or inf in samples lo:hi of a lead the model reads is an error naming the first one (sample numbers of the
    whole recording)."""
    used = sorted(rows.values())
    bad = ~np.isfinite(raw.signal[used, lo:hi])
    if bad.any():
        i, sample = np.argwhere(bad)[0]
        raise InferenceError(f"{raw.path}: {int(bad.sum())} non-finite sample(s) (NaN or inf), first in lead "
                             f"{raw.names[used[i]]} at sample {lo + int(sample)}: fix or remove them (e.g. "
                             f"interpolate the gap) before inference")


def resample(x: np.ndarray, rate: float, target: int) -> np.ndarray:
    """x (leads, n) from `rate` to `target` Hz along time: scipy.signal.resample_poly (polyphase FIR with its
    anti-aliasing low-pass), the ratio taken as a fraction (denominator at most 1,000); unchanged when equal."""
    if rate == target:
        return x
    from scipy.signal import resample_poly

    ratio = (Fraction(target) / Fraction(rate)).limit_denominator(1000)
    return resample_poly(x, ratio.numerator, ratio.denominator, axis=1, padtype="line")


def prepare(raw: Raw, name: str, leads: list[str], rate: int, length: int, fill: np.ndarray, start: float = 0.0,
            skip_unknown: bool = False) -> Recording:
    """raw -> the model's input: leads matched by name and put in `leads` order, resampled to `rate` Hz, the
    `length`-sample window from `start` seconds kept, missing leads set to `fill` (training-fold mean, mV).

    Only the window and MARGIN seconds either side of it are resampled (and must be finite): the resampling filter
    reaches about 10 output samples (0.1 s at 100 Hz) into the neighbourhood, so the window's samples are those of
    resampling the whole recording, and a NaN gap elsewhere in a long recording does not matter. A recording shorter
    than start + length / rate seconds is an error."""
    rows, ignored = match_leads(raw, leads, skip_unknown)
    n = raw.signal.shape[1]
    need = length / rate
    if start < 0:
        raise InferenceError(f"{raw.path}: --start {start:g} s is before the recording; set --start to 0 or more")
    if n / raw.rate + 1e-9 < start + need:
        where = f" from --start {start:g} s" if start else ""
        raise InferenceError(f"{raw.path}: {n / raw.rate:.2f} s of signal ({n} samples at {raw.rate:g} Hz), but the "
                             f"model needs {need:g} s{where}: too short; use a recording of at least "
                             f"{start + need:g} s")
    lo = max(0, int(np.floor((start - MARGIN) * raw.rate)))
    hi = min(n, int(np.ceil((start + need + MARGIN) * raw.rate)) + 1)
    check_finite(raw, rows, lo, hi)
    found = [lead for lead in leads if lead in rows]
    x = resample(raw.signal[[rows[lead] for lead in found], lo:hi], raw.rate, rate)
    first = int(round((start - lo / raw.rate) * rate))   # the window's first sample in the resampled segment
    x = x[:, first:first + length]
    if x.shape[1] < length:   # rounding of the resampled length: at most a sample or two, never a short record
        x = np.concatenate([x, np.repeat(x[:, -1:], length - x.shape[1], axis=1)], axis=1)
    out = np.repeat(np.asarray(fill, dtype=np.float32)[:, None], length, axis=1)
    for j, lead in enumerate(found):
        out[leads.index(lead)] = x[j]
    missing = [lead for lead in leads if lead not in rows]
    begin = round(start * rate) / rate
    return Recording(name, raw.path, raw.format, raw.rate, n, (begin, begin + need), out, found, missing, ignored,
                     {lead: raw.names[rows[lead]] for lead in found}, model_rate=rate,
                     peak_mv=float(np.max(np.abs(x))) if x.size else 0.0)


def output_names(paths: list[Path]) -> list[str]:
    """One output folder name per input (its file name without extension); two inputs with the same name are an
    error, since one would overwrite the other."""
    names: dict[str, Path] = {}
    for p in paths:
        name = p.with_suffix("").name if p.suffix.lower() in (".hea", ".dat", ".npy") else p.name
        if name in names:
            raise InferenceError(f"{p}: its outputs would overwrite those of {names[name]} (both are named "
                                 f"{name!r}); rename one, or run them in separate calls with different --out")
        names[name] = p
    return list(names)


def unique_inputs(paths: list[Path]) -> list[Path]:
    """The inputs in order, a WFDB record given twice (rec.hea and rec.dat, e.g. from rec.*) kept once."""
    seen, out = set(), []
    for p in paths:
        key = p.with_suffix("").resolve() if p.suffix.lower() in (".hea", ".dat") else p.resolve()
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out


# ---------------------------------------------------------------------------------------- what the pipeline built

@dataclass
class Context:
    """The pipeline's outputs inference reads, loaded once for all recordings."""
    data: Path                     # the pipeline's data/ folder
    model: object
    leads: list[str]
    rate: int
    length: int
    precision: str
    inputs: object                 # benchmark.load_inputs: reports, folds' rows, z_ecg, e_ecg, statements, table
    statement_keys: np.ndarray     # statements through the model's text head
    statement_texts: list[str]     # row-aligned with statement_keys (statements.jsonl's "text")
    prompts: np.ndarray            # the superclass prompts (evaluation.class_prompts)
    prompt_classes: list[str]
    probe: dict                    # superclass probe fitted on the label pool's z_ecg (fit_probe)
    lead_dropout: float            # augment.lead_dropout of params.yaml: did training blank leads?


def data_dir() -> Path:
    """data/ of this repository: relative when the command runs at the repository's root (the usual case, and what
    make does), absolute otherwise, so that messages name the paths a user types."""
    return art.DATA if Path.cwd().resolve() == REPO else REPO / art.DATA


def load_context(data: Path | None = None, params_path: Path | None = None) -> Context:
    """Model, signal stats, embeddings, statements and the superclass probe; a missing model tells the user to run
    `make repro`; a data/ecg_embeddings that another model wrote is an error (the neighbours and the probe would mix
    two models)."""
    from . import benchmark as bm
    from . import evaluation as ev
    from . import labels as lb
    from . import params as params_mod
    from .models import load_model
    from .precision import autocast, resolve

    import torch

    data = data_dir() if data is None else Path(data)
    if params_path is None:
        params_path = art.PARAMS if data == art.DATA else REPO / art.PARAMS
    model_path = art.under(data, art.MODEL)
    if not model_path.exists():
        raise MissingArtifactError(f"{model_path} not found: there is no trained model yet; run `make repro` (or "
                                   f"dvc repro) first")
    p = params_mod.load(params_path)
    model = load_model(model_path)
    if model.supervised:
        raise InferenceError(f"{model_path} is a supervised control (train.loss = supervised): it has no shared "
                             f"ECG-text space to score statements in; retrain with train.loss=infonce (make repro)")
    inp = bm.load_inputs(data, p.split)
    signals, stats = art.load_signals(art.under(data, art.SIGNALS), len(inp.reports), art.under(data, art.REPORTS))
    leads, rate, length = list(stats["leads"]), int(stats["sampling_rate"]), int(stats["shape"][2])
    if len(leads) != model.config["n_leads"]:
        raise InferenceError(f"{art.under(data, art.SIGNALS_STATS)} lists {len(leads)} leads, {model_path} takes "
                             f"{model.config['n_leads']}: rerun the pipeline (make repro)")
    precision = resolve(p.train.precision, torch.device("cpu"))
    # the stored embeddings must be this model's: re-encode the first record and compare (a plain forward pass,
    # without encode_all's progress bar: an error later must stay the only line on stderr)
    with torch.no_grad(), autocast(torch.device("cpu"), precision):
        z0 = model.encode_ecg(torch.from_numpy(np.array(signals[:1], dtype=np.float32))).float().numpy()
    if not np.allclose(z0[0], inp.z_ecg[0], rtol=1e-3, atol=1e-3 * max(1.0, float(np.abs(z0).max()))):
        raise InferenceError(f"{art.under(data, art.Z_ECG)} was not computed by {model_path} (the model changed "
                             f"since): rerun the pipeline (make repro)")
    keys = ev.project_text(model, inp.statement_emb)
    texts = [s.get("text", "") for s in art.load_statements(art.under(data, art.TEXT))[0]]
    sup_y, sup_classes, keep = lb.task_labels([r["scp_codes"] for r in inp.reports], inp.table, "superdiagnostic")
    prompts, prompt_classes = ev.class_prompts(keys, inp.statement_codes,
                                               lb.class_statements(inp.table, "superdiagnostic"), sup_classes)
    train, val = inp.train[keep[inp.train]], inp.val[keep[inp.val]]
    probe = {"classes": sup_classes, "train": train, "val": val, "y": sup_y, "c_grid": list(p.evaluate.probe_c_grid),
             "label_folds": list(p.split.label_folds), "val_folds": list(p.split.val_folds)}
    return Context(data, model, leads, rate, length, precision, inp, keys, texts, prompts, prompt_classes, probe,
                   float(p.augment.lead_dropout))


def fit_probe(ctx: Context, z_new: np.ndarray) -> dict:
    """The evaluate stage's superclass probe on z_ecg at 100 % of the label pool (its linear_probe_z_* figures):
    probe.probe fitted on the label pool's records with a superclass label, C chosen on the validation folds.
    Returns {"probability": n x classes (NaN for a class the pool cannot fit), "c", "val_auc", "n_train"}."""
    from . import probe as pr

    p, z = ctx.probe, ctx.inputs.z_ecg
    fit = pr.probe(np.asarray(z[p["train"]]), p["y"][p["train"]], np.asarray(z[p["val"]]), p["y"][p["val"]],
                   np.asarray(z_new, dtype=np.float32), p["c_grid"])
    with np.errstate(over="ignore"):
        probability = 1.0 / (1.0 + np.exp(-fit["scores"]))
    return {"probability": probability, "c": fit["c"], "val_auc": fit["val_auc"], "n_train": int(len(p["train"]))}


# ------------------------------------------------------------------------------------------------------ scoring

def ranked(scores: np.ndarray, k: int | None = None) -> np.ndarray:
    """Indices by score, best first (stable: equal scores keep their order), NaN last; the first k."""
    order = np.argsort(-np.nan_to_num(scores, nan=-np.inf), kind="stable")
    return order if k is None else order[:k]


def score(ctx: Context, recordings: list[Recording], top: int = 10,
          neighbours: int = 5) -> tuple[list[dict], dict]:
    """Per recording {"recording", "z", "e", "rows" of scores.csv (kind, rank, key, score, text)}, and the probe's
    fit (fit_probe)."""
    from . import evaluation as ev
    from .models import encode_all

    x = np.stack([r.signal for r in recordings]).astype(np.float32)
    z, e = encode_all(ctx.model, x, precision=ctx.precision)
    cos = ev.zero_shot_scores(e, ctx.statement_keys)
    zero_shot = ev.zero_shot_scores(e, ctx.prompts) if len(ctx.prompts) else np.zeros((len(e), 0))
    probe = fit_probe(ctx, z)
    neighbour_cos = ev.unit(e) @ ev.unit(np.asarray(ctx.inputs.e_ecg)).T
    statements = ctx.inputs.statement_codes
    reports = ctx.inputs.reports
    out = []
    for i, rec in enumerate(recordings):
        rows = []
        for rank, j in enumerate(ranked(cos[i], top), 1):
            rows.append(("statement", rank, statements[j], float(cos[i, j]), ctx.statement_texts[j]))
        for rank, j in enumerate(ranked(zero_shot[i]), 1):
            c = ctx.prompt_classes[j]
            rows.append(("zero_shot", rank, c, float(zero_shot[i, j]), SUPERCLASS_NAMES.get(c, c)))
        prob = probe["probability"][i]
        for rank, j in enumerate(ranked(prob), 1):
            c = ctx.probe["classes"][j]
            rows.append(("probe", rank, c, float(prob[j]), SUPERCLASS_NAMES.get(c, c)))
        for rank, j in enumerate(ranked(neighbour_cos[i], neighbours), 1):
            rows.append(("neighbour", rank, str(reports[j]["ecg_id"]), float(neighbour_cos[i, j]),
                         " | ".join(reports[j]["report"].splitlines())))
        out.append({"recording": rec, "z": z[i], "e": e[i], "rows": rows})
    return out, probe


# ------------------------------------------------------------------------------------------------------ writing

def csv_text(columns, rows) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if isinstance(v, float) and not np.isfinite(v) else
                         f"{v:.6f}" if isinstance(v, float) else v for v in row])
    return buf.getvalue()


def input_facts(rec: Recording, ctx: Context, probe: dict) -> dict:
    """What input.json records about one recording: what was read and how it became the model's input."""
    return {"input": str(rec.path), "format": rec.format, "sampling_rate_hz": rec.rate, "samples": rec.n_samples,
            "duration_s": round(rec.duration, 6), "model_rate_hz": ctx.rate, "resampled": rec.resampled,
            "window_s": [round(rec.window[0], 6), round(rec.window[1], 6)],
            "leads_found": [display(lead) for lead in rec.found],
            "leads_missing": [display(lead) for lead in rec.missing],
            "missing_lead_fill": "training-fold mean of the lead (0 after normalisation), as augment.lead_dropout",
            "leads_ignored": rec.ignored, "lead_names_in_file": {display(k): v for k, v in rec.lead_map.items()},
            "peak_abs_mv": round(rec.peak_mv, 6),
            "model": str(art.under(ctx.data, art.MODEL)), "precision": ctx.precision,
            "probe": {"features": "z_ecg", "classes": list(ctx.probe["classes"]), "c": probe["c"],
                      "val_auc_macro": probe["val_auc"], "n_train": probe["n_train"],
                      "label_folds": ctx.probe["label_folds"], "val_folds": ctx.probe["val_folds"]}}


def write_outputs(result: dict, ctx: Context, probe: dict, out: Path, plot: bool = False, steps: int = 32,
                  batch_size: int = 16, dpi: int = 150) -> Path:
    """out/<name>/: scores.csv, z.npy, e.npy, input.json (and ecg.png with plot), written in a temporary folder
    renamed at the end (an existing folder of the same name is replaced whole)."""
    import json

    from .atomic import atomic_dir

    rec = result["recording"]
    with atomic_dir(out / rec.name) as tmp:
        (tmp / "scores.csv").write_text(csv_text(CSV_COLUMNS, result["rows"]), encoding="utf-8")
        np.save(tmp / "z.npy", result["z"].astype(np.float32))
        np.save(tmp / "e.npy", result["e"].astype(np.float32))
        (tmp / "input.json").write_text(json.dumps(input_facts(rec, ctx, probe), indent=2) + "\n", encoding="utf-8")
        if plot:
            plot_recording(result, ctx, tmp / "ecg.png", steps, batch_size, dpi)
    return out / rec.name


def plot_recording(result: dict, ctx: Context, path: Path, steps: int = 32, batch_size: int = 16,
                   dpi: int = 150) -> None:
    """The 12-lead printout (ecgplot.plot_ecg) of the model's input, coloured by the integrated gradients of its top
    statement's cosine (attribution.integrated_gradients), as show_record.py --attribution draws a PTB-XL record."""
    from .attribution import integrated_gradients
    from .ecgplot import plot_ecg

    rec = result["recording"]
    statements = [(key, s) for kind, _, key, s, _ in result["rows"] if kind == "statement"]
    code = statements[0][0]
    key = ctx.statement_keys[ctx.inputs.statement_codes.index(code)]
    attr, info = integrated_gradients(ctx.model, rec.signal, key, steps=steps, batch_size=batch_size)
    missing = f"; missing leads (flat, training mean): {', '.join(map(display, rec.missing))}" if rec.missing else ""
    title = "\n".join([
        f"{rec.name}  ({rec.path}; {rec.format} at {rec.rate:g} Hz, {rec.duration:.2f} s; window "
        f"{rec.window[0]:g}-{rec.window[1]:g} s{', resampled' if rec.resampled else ''}){missing}",
        "Nearest statements to the ECG embedding (cosine): " +
        ";  ".join(f"{c} {s:+.3f}" for c, s in statements[:5])])
    label = (f"colour: integrated gradients of cos(ECG, {code}) = {info['cosine']:+.3f} vs flat-line baseline "
             f"{info['baseline_cosine']:+.3f}; red raises, blue lowers it")
    plot_ecg(rec.signal, ctx.rate, path, title=title, attribution=attr, attribution_label=label, dpi=dpi)


def summary_row(result: dict) -> tuple:
    rec, rows = result["recording"], result["rows"]
    best = {kind: next(((k, s) for kd, _, k, s, _ in rows if kd == kind), ("", float("nan")))
            for kind in ("statement", "probe")}
    return (rec.name, str(rec.path), rec.format, f"{rec.rate:g}", f"{rec.duration:.3f}", f"{rec.window[0]:g}",
            f"{rec.window[1]:g}", rec.resampled, " ".join(map(display, rec.missing)), " ".join(rec.ignored),
            best["statement"][0], best["statement"][1], best["probe"][0], best["probe"][1])


def write_summary(results: list[dict], out: Path) -> Path:
    from .atomic import write_text

    write_text(out / "summary.csv", csv_text(SUMMARY_COLUMNS, [summary_row(r) for r in results]))
    return out / "summary.csv"


# ------------------------------------------------------------------------------------------------------ the command

def infer(paths: list[Path], out: Path, rate: str | None = None, leads: str | None = None, start: float = 0.0,
          top: int = 10, neighbours: int = 5, plot: bool = False, steps: int = 32, skip_unknown: bool = False,
          log=print) -> list[dict]:
    """Read every recording (all checked before anything is written), score them, write out/<name>/ for each and
    out/summary.csv; returns the results (recording, z, e, rows)."""
    from tqdm import tqdm

    if not paths:
        raise InferenceError("no recording given; name one or more .hea/.dat/.npy files")
    paths = unique_inputs([Path(p) for p in paths])
    if (rate is not None or leads) and not any(p.suffix.lower() == ".npy" for p in paths):
        raise InferenceError(f"{paths[0]}: --rate and --leads describe .npy arrays only (a WFDB header carries its "
                             f"own); remove them")
    names = output_names(paths)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InferenceError(f"--out {out}: a file, not a folder; choose another --out")
    ctx = load_context()
    fill = ctx.model.lead_mean.numpy()
    recordings = []
    for path, name in zip(tqdm(paths, desc="read ECGs", unit="file", disable=None if len(paths) > 1 else True),
                          names):
        raw = read(path, rate, leads)
        recordings.append(prepare(raw, name, ctx.leads, ctx.rate, ctx.length, fill, start, skip_unknown))
    results, probe = score(ctx, recordings, top, neighbours)
    for result in tqdm(results, desc="write", unit="file", disable=None if len(results) > 1 else True):
        folder = write_outputs(result, ctx, probe, out, plot, steps)
        log(describe_result(result, ctx, folder))
    summary = write_summary(results, out)
    log(f"probe: logistic regression on z_ecg of {probe['n_train']} label-pool records (folds "
        f"{ctx.probe['label_folds']}), C={probe['c']:g} chosen on folds {ctx.probe['val_folds']} (validation macro "
        f"AUC {probe['val_auc']:.3f})\nwrote {summary}")
    return results


def collapsed(rows: list[tuple]) -> bool:
    """Whether the listed statements' cosines lie within COLLAPSE_SPREAD of each other (a collapsed shared space puts
    every ECG and every statement in one direction: cosines all ~1, their order noise)."""
    scores = [s for kind, _, _, s, _ in rows if kind == "statement"]
    return len(scores) > 1 and max(scores) - min(scores) < COLLAPSE_SPREAD


def describe_result(result: dict, ctx: Context, folder: Path) -> str:
    """A few lines for the terminal: what was read, the top statements, the probe, where it went."""
    rec, rows = result["recording"], result["rows"]
    how = (f"{rec.format} at {rec.rate:g} Hz, {rec.duration:.2f} s; used {rec.window[0]:g}-{rec.window[1]:g} s"
           + (f", resampled to {ctx.rate} Hz" if rec.resampled else ""))
    lines = [f"{rec.name} ({rec.path}: {how})"]
    if rec.missing:
        note = "" if ctx.lead_dropout > 0 else (" (params.yaml: augment.lead_dropout = 0, so this model never saw a "
                                                "blank lead in training: trust its scores less)")
        lines.append(f"  missing leads: {', '.join(map(display, rec.missing))}, set to the training-fold mean{note}")
    if rec.peak_mv > MICROVOLT_HINT_MV:
        lines.append(f"  warning: amplitudes up to {rec.peak_mv:.0f} mV: is the signal in microvolts? The model "
                     f"reads millivolts (a .npy array must be in mV)")
    if rec.ignored:
        lines.append(f"  leads left out (--skip-unknown-leads): {', '.join(rec.ignored)}")
    statements = [f"{k} {s:+.3f}" for kind, _, k, s, _ in rows if kind == "statement"]
    lines.append("  top statements (cosine): " + ", ".join(statements[:5]))
    if collapsed(rows):
        lines.append(f"  warning: the top statements' cosines differ by less than {COLLAPSE_SPREAD:g}: this model's "
                     "shared space has collapsed (as the cosine loss does), so their order says nothing; read the "
                     "probe")
    lines.append("  probe probabilities: " + ", ".join(f"{k} {s:.2f}" for kind, _, k, s, _ in rows if kind == "probe"))
    lines.append(f"  wrote {folder}/")
    return "\n".join(lines)


def run(main, *args, **kwargs):
    """Call the command's main; a ProjectError ends it with one `error: ...` line on stderr (errors.describe, as the
    stages print theirs) and exit status 2. Other exceptions keep their traceback (a bug)."""
    try:
        return main(*args, **kwargs)
    except ProjectError as e:
        sys.stdout.flush()
        print(f"error: {describe(e)}", file=sys.stderr, flush=True)
        raise SystemExit(EXIT_STATUS) from None
