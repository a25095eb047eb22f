"""ecgalign.artifacts: the paths of dvc.yaml, and loaders that refuse arrays not row-aligned with reports.jsonl."""
import json

import numpy as np
import pytest
import yaml

from conftest import REPO
from ecgalign import artifacts
from ecgalign.errors import ArtifactError, MissingArtifactError


def test_every_path_is_one_dvc_yaml_declares():
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    declared = set()
    for spec in stages.values():
        for key in ("deps", "outs", "metrics", "plots"):
            declared |= {next(iter(d)) if isinstance(d, dict) else d for d in spec.get(key, [])}
    for path in (artifacts.RAW, artifacts.REPORTS, artifacts.TEXT, artifacts.SIGNALS, artifacts.MODEL_DIR,
                 artifacts.ECG_EMBEDDINGS, artifacts.REPORTS_METRICS, artifacts.TEXT_METRICS,
                 artifacts.TRAIN_METRICS, artifacts.EVAL_METRICS):
        assert path.as_posix() in declared, path


def test_check_rows_names_both_files_and_dvc_repro():
    with pytest.raises(ArtifactError) as e:
        artifacts.check_rows("data/text/record_embeddings.npy", 39, 40)
    assert str(e.value).startswith("data/text/record_embeddings.npy has 39 rows but data/reports.jsonl has 40")
    assert "dvc repro" in str(e.value)
    artifacts.check_rows("x.npy", 40, 40)


def test_loaders_check_rows_and_presence(tmp_path):
    np.save(tmp_path / "e.npy", np.zeros((3, 2), np.float32))
    assert artifacts.load_array(tmp_path / "e.npy", 3, "ecg_embeddings").shape == (3, 2)
    with pytest.raises(ArtifactError, match="e.npy has 3 rows but data/reports.jsonl has 4 records"):
        artifacts.load_array(tmp_path / "e.npy", 4, "ecg_embeddings")
    with pytest.raises(MissingArtifactError, match=r"missing\.npy not found: run the ecg_embeddings stage"):
        artifacts.load_array(tmp_path / "missing.npy", 4, "ecg_embeddings")
    text = tmp_path / "text"
    text.mkdir()
    (text / "statements.jsonl").write_text("".join(json.dumps({"code": c}) + "\n" for c in ("NORM", "SR")))
    np.save(text / "statement_embeddings.npy", np.zeros((3, 4), np.float32))
    with pytest.raises(ArtifactError, match="statement_embeddings.npy has 3 rows but .*statements.jsonl has 2"):
        artifacts.load_statements(text)


def test_reports_loader(tmp_path):
    path = tmp_path / "reports.jsonl"
    path.write_text('{"ecg_id": 1}\n{"ecg_id": 2}\n')
    assert artifacts.load_reports(path) == [{"ecg_id": 1}, {"ecg_id": 2}]
    with pytest.raises(FileNotFoundError, match="run the reports stage first"):
        artifacts.load_reports(tmp_path / "none.jsonl")


def test_text_source_loader(tmp_path):
    from ecgalign.artifacts import load_text_source
    from ecgalign.errors import ArtifactError, MissingArtifactError
    with pytest.raises(MissingArtifactError, match="stats.json not found: run the text_embeddings stage"):
        load_text_source(tmp_path)
    (tmp_path / "stats.json").write_text('{"dim": 4}')
    assert load_text_source(tmp_path) == "statements"   # written before text.source existed
    (tmp_path / "stats.json").write_text('{"source": "both"}')
    assert load_text_source(tmp_path) == "both"
    (tmp_path / "stats.json").write_text('{"source": "tweets"}')
    with pytest.raises(ArtifactError, match="source 'tweets' is not one of statements, report, both"):
        load_text_source(tmp_path)
