"""ecgalign.artifacts: the paths of dvc.yaml, and loaders that refuse arrays not row-aligned with reports.jsonl."""
import json
from pathlib import Path

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


def test_under_moves_an_artifact_to_another_data_folder_and_record_row_finds_a_record(tmp_path):
    assert artifacts.under(tmp_path, artifacts.E_ECG) == tmp_path / "ecg_embeddings" / "e_ecg.npy"
    assert artifacts.under(artifacts.DATA, artifacts.TEXT_STATEMENTS) == artifacts.TEXT_STATEMENTS
    records = [{"ecg_id": 5}, {"ecg_id": 2}]
    assert artifacts.record_row(records, 2) == 1
    with pytest.raises(KeyError, match="ecg_id 3 is not in data/reports.jsonl"):
        artifacts.record_row(records, 3)


def test_a_damaged_statements_file_names_its_line(tmp_path):
    (tmp_path / "statements.jsonl").write_text('{"code": "NORM"}\n\n{"code": "SR"\n')
    np.save(tmp_path / "statement_embeddings.npy", np.zeros((2, 4), np.float32))
    with pytest.raises(ArtifactError, match=r"statements.jsonl line 3: not a JSON object .*dvc repro -f text_embeddings"):
        artifacts.load_statements(tmp_path)
    (tmp_path / "statements.jsonl").write_text('{"code": "NORM"}\n\n{"code": "SR"}\n')
    statements, emb = artifacts.load_statements(tmp_path)
    assert [s["code"] for s in statements] == ["NORM", "SR"] and emb.shape == (2, 4)


def _data_paths(path):
    """Where one source file spells a pipeline artifact's path itself (docstrings aside): a string under data/, the
    file name of an artifact under data/, Path("data"), or "data" as a parameter's default."""
    import ast
    names = {Path(v).name for k, v in vars(artifacts).items()
             if isinstance(v, Path) and artifacts.DATA in v.parents and Path(v).suffix}
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                  if isinstance(n, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and n.body
                  and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings \
                and (node.value.startswith("data/") or node.value in names):
            found.append((node.lineno, node.value))
        elif isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == "Path" \
                and node.args and isinstance(node.args[0], ast.Constant) and node.args[0].value == "data":
            found.append((node.lineno, 'Path("data")'))
        elif isinstance(node, ast.arguments):
            found += [(d.lineno, "default 'data'") for d in node.defaults + node.kw_defaults
                      if isinstance(d, ast.Constant) and d.value == "data"]
    return found


def test_only_artifacts_spells_the_paths_under_data():
    offenders = {str(p.relative_to(REPO)): hits for p in sorted((REPO / "src").rglob("*.py"))
                 if p.name != "artifacts.py" and (hits := _data_paths(p))}
    assert not offenders, f"paths under data/ built outside ecgalign.artifacts: {offenders}"
    assert _data_paths(REPO / "src" / "ecgalign" / "artifacts.py"), "the check finds nothing even where paths are"
