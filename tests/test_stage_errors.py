"""Each stage script, run as a user runs it (`python src/<stage>.py` in the repository root), on bad input: exit
status 1 and one `error: ...` line naming the culprit, no traceback (ecgalign.errors.run). The workspaces are the
fault matrix's (tests/faults.py): 40 synthetic records through download, reports and signals."""
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO
from faults import REC3, RECORD_DAMAGE, Workspace, make_workspace, models

ENV = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONHASHSEED="0")


def _damage(kind):
    return lambda ws: RECORD_DAMAGE[kind][0](ws / "data/raw", REC3)


def _yaml(edit):
    return lambda ws: (ws / "params.yaml").write_text(edit((ws / "params.yaml").read_text()))


def _duplicate_key(text):
    return re.sub(r"(?m)^(  lr: .*)$", r"\1\n  lr: 0.5", text)


def _model(ws):
    models.save_checkpoint(ws / "data/model/model.pt", models.build_model("cnn1d", 16, 16, 8))


def _reports_minus_one(ws):
    _model(ws)
    path = ws / "data/reports.jsonl"
    path.write_text("".join(path.read_text().splitlines(keepends=True)[:-1]))


def _random_model(ws):
    _model(ws)
    path = ws / "data/model/model.pt"
    path.write_bytes(np.random.default_rng(0).bytes(path.stat().st_size))


def _text_rows(ws):
    path = ws / "data/text/record_embeddings.npy"
    np.save(path, np.load(path)[:-1])


CASES = [
    # (name, workspace stage, setup, script, what the error line must name, gap)
    ("typo'd key", "params", lambda ws: ws.set_params(**{"train.epoch": 3}), "download_data",
     "train.epoch", ""),
    ("duplicate key", "params", _yaml(_duplicate_key), "download_data", "duplicate key 'lr'", ""),
    ("malformed scp_codes", "raw", lambda ws: ws.set_cell(3, "scp_codes", "{'NORM': 100.0"), "build_reports",
     "ecg_id 3: scp_codes", ""),
    ("truncated .dat", "reports", _damage("truncated .dat"), "extract_signals", f"ecg_id 3: \\S*{REC3}\\.dat", ""),
    ("missing .hea", "reports", _damage("missing .hea"), "extract_signals", f"ecg_id 3: \\S*{REC3}\\.hea", ""),
    ("corrupt sample", "reports", _damage("checksum"), "extract_signals", f"ecg_id 3: \\S*{REC3}\\.dat", ""),
    ("reports.jsonl missing", "reports", lambda ws: (ws / "data/reports.jsonl").unlink(), "extract_signals",
     "data/reports.jsonl not found", ""),
    ("train.epochs: 0", "signals", lambda ws: ws.set_params(**{"train.epochs": 0}), "train_alignment",
     "train.epochs = 0", ""),
    ("signals not row-aligned with reports", "signals", _reports_minus_one, "embed_ecg",
     "data/signals/signals.npy has 40 rows but data/reports.jsonl has 39", ""),
    ("model.pt random bytes", "signals", _random_model, "embed_ecg", "data/model/model.pt", ""),
    ("text model that does not exist", "reports", lambda ws: ws.set_params(**{"text.model": "/no/such/model"}),
     "embed_text", "text.model='/no/such/model'", ""),
    ("text embeddings not row-aligned", "signals", _text_rows, "train_alignment",
     "data/text/record_embeddings.npy has 39 rows", ""),
]


def _param(case):
    marks = [pytest.mark.xfail(reason=case[-1], strict=True)] if case[-1] else []
    return pytest.param(*case[1:-1], id=case[0], marks=marks)


@pytest.mark.parametrize("stage, setup, script, culprit", [_param(c) for c in CASES])
def test_stage_prints_one_error_line(stage, setup, script, culprit, tmp_path, fault_cache):
    import contextlib
    path = make_workspace(tmp_path / "ws", fault_cache, stage)
    with contextlib.ExitStack() as stack:
        setup(Workspace(path, stack))
    proc = subprocess.run([sys.executable, str(REPO / "src" / f"{script}.py")], cwd=path, env=ENV,
                          capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert "Traceback" not in out, out[-3000:]
    assert proc.returncode == 1, out[-3000:]
    errors = [line for line in re.split(r"[\r\n]", proc.stderr) if line.startswith("error: ")]
    assert len(errors) == 1, proc.stderr[-3000:]
    assert re.search(culprit, errors[0]), errors[0]
