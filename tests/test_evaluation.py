"""The evaluate stage's metrics against hand computations and brute force, and a tiny end-to-end run."""
import itertools
import json
from math import comb
from pathlib import Path

import numpy as np
import pytest
import yaml

from ecgalign import evaluation as ev

REPO = Path(__file__).resolve().parents[1]

# ----------------------------------------------------------------------------------------------- retrieval

# keys on the four axes; reports "A", "A", "B", "C": keys 0 and 1 share a report
KEYS = np.array([[1, 0], [0, 1], [-1, 0], [0, -1]], dtype=float)
REPORTS = ["A", "A", "B", "C"]


def test_group_ids_identical_reports_share_an_id():
    assert ev.group_ids(["x", "y", "x", "z", "y"]).tolist() == [0, 1, 0, 2, 1]


def test_recall_counts_an_identical_report_as_a_hit():
    queries = np.array([[0.1, 1], [-1, 0.2], [1, 0.1], [0, -1]])
    # rankings by cosine: q0: 1,0,.. (key 1 has q0's report A: hit@1); q1: 2,1,3,0 (report A first at rank 2);
    # q2: 0,1,3,2 (report B only at rank 4); q3: 3,... (hit@1)
    r = ev.recall_at_k(queries, KEYS, ev.group_ids(REPORTS), ks=(1, 2, 3, 4))
    assert r == {1: 2 / 4, 2: 3 / 4, 3: 3 / 4, 4: 1.0}


def test_recall_counts_a_tie_at_the_kth_place_fractionally():
    keys = np.array([[1, 0], [1, 0], [0, 1], [0, -1]], dtype=float)
    queries = np.array([[1, 0], [0, 1], [0, 1], [0, -1]], dtype=float)
    groups = np.array([0, 1, 1, 2])
    # q0 ties keys 0 (its report) and 1 (another) for the top place: 1/2; q1 ranks key 2 (same report) first: 1;
    # q2 ranks key 2 (itself) first: 1; q3: 1
    assert ev.recall_at_k(queries, keys, groups, ks=(1, 2)) == {1: 3.5 / 4, 2: 1.0}


def test_recall_does_not_depend_on_chunking():
    rng = np.random.default_rng(0)
    q, k = rng.normal(size=(50, 8)), rng.normal(size=(50, 8))
    groups = rng.integers(0, 6, size=50)
    assert ev.recall_at_k(q, k, groups, chunk=7) == ev.recall_at_k(q, k, groups)


def test_recall_refuses_misaligned_inputs():
    with pytest.raises(ValueError, match="3 queries, 4 keys and 4 groups"):
        ev.recall_at_k(KEYS[:3], KEYS, np.arange(4))


def test_miss_probability_matches_binomials():
    for n, bad, m in [(10, 3, 4), (5, 5, 1), (7, 0, 7), (6, 2, 5), (30, 29, 1)]:
        assert ev.miss_probability(n, bad, m) == pytest.approx(comb(n - bad, m) / comb(n, m), abs=1e-12)


def test_chance_recall_matches_brute_force_enumeration():
    groups = np.array([0, 0, 1, 2, 2, 2])
    n = len(groups)
    for k in range(1, n + 1):
        hits = [any(groups[j] == groups[i] for j in order[:k])
                for order in itertools.permutations(range(n)) for i in range(n)]
        assert ev.chance_recall(groups, k) == pytest.approx(np.mean(hits), abs=1e-12)


def test_majority_share():
    assert ev.majority_share(np.array([3, 1, 3, 2, 3, 1])) == 0.5


def test_collapsed_embeddings_score_chance_not_index_order():
    rng = np.random.default_rng(1)
    n = 40
    # the most common report sits at index 0, so index-order tie-breaking would give every query its top-1
    groups = np.concatenate([[0] * 20, rng.integers(1, 8, size=n - 20)])
    collapsed = np.tile(rng.normal(size=(1, 16)), (n, 1))
    assert ev.mean_pairwise_cosine(collapsed) == pytest.approx(1.0, abs=1e-12)
    recall = ev.recall_at_k(collapsed, collapsed, groups, ks=(1, 5, 10))
    for k, r in recall.items():
        assert r == pytest.approx(ev.chance_recall(groups, k), abs=1e-12)
    assert recall[1] <= ev.majority_share(groups) == 0.5


# ----------------------------------------------------------------------------------------------- geometry

def test_mean_pairwise_cosine_matches_brute_force():
    x = np.random.default_rng(2).normal(size=(30, 5)) + 0.5
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    cos = u @ u.T
    brute = (cos.sum() - np.trace(cos)) / (30 * 29)
    assert ev.mean_pairwise_cosine(x) == pytest.approx(brute, abs=1e-12)


def test_mean_pairwise_cosine_needs_two_rows():
    with pytest.raises(ValueError, match="at least 2 rows, got 1"):
        ev.mean_pairwise_cosine(np.ones((1, 3)))


def test_alignment_loss_is_one_minus_cosine():
    a = np.array([[1.0, 0.0], [1.0, 1.0]])
    b = np.array([[0.0, 2.0], [3.0, 3.0]])   # cos 0 and cos 1
    assert ev.alignment_loss(a, b) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="shapes differ"):
        ev.alignment_loss(a, b[:1])


# ----------------------------------------------------------------------------------------------- labels, AUCs

CLASS_OF = {"NORM": "NORM", "IMI": "MI", "AMI": "MI", "NDT": "STTC", "SR": None, "LVOLT": None}


def test_primary_superclass():
    codes = [{"NORM": 100.0, "SR": 0.0}, {"IMI": 15.0, "NDT": 50.0}, {"SR": 0.0}, {"AMI": 80.0, "NDT": 80.0}]
    assert ev.primary_superclass(codes, CLASS_OF, ("NORM", "MI", "STTC")) == ["NORM", "STTC", "none", "MI"]


def test_class_prompts_are_normalised_means_of_unit_statements():
    emb = np.array([[2.0, 0.0], [0.0, 1.0], [0.0, 5.0], [3.0, 4.0]])
    class_codes = {"NORM": ["NORM"], "MI": ["IMI", "AMI", "PMI"], "HYP": ["LVH"]}   # PMI, LVH: no embedding
    prompts, kept = ev.class_prompts(emb, ["NORM", "IMI", "AMI", "SR"], class_codes, ("NORM", "MI", "HYP"))
    assert kept == ["NORM", "MI"]          # HYP has no embedded statement
    np.testing.assert_allclose(prompts, [[1.0, 0.0], [0.0, 1.0]])


def test_zero_shot_scores_on_a_hand_case():
    e_ecg = np.array([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0], [-0.6, 0.8]])
    prompts = np.array([[2.0, 0.0], [0.0, 1.0]])
    np.testing.assert_allclose(ev.zero_shot_scores(e_ecg, prompts)[:, 0], [1.0, 0.6, 0.0, -0.6])


# ----------------------------------------------------------------------------------------------- retrieval variants

def test_as_cosine_ranks_by_dot_product():
    """Cosines of as_cosine's vectors are the dot products over one constant: each query's ranking of the keys and
    each key's ranking of the queries are the dot product's, though the norms differ (a cosine alone would not)."""
    rng = np.random.default_rng(0)
    q, k = rng.normal(size=(7, 5)) * rng.uniform(0.1, 3, size=(7, 1)), rng.integers(0, 2, size=(9, 5))
    q2, k2 = ev.as_cosine(q, k)
    cos = ev.unit(q2) @ ev.unit(k2).T
    scale = np.sqrt((q ** 2).sum(axis=1).max() * (k ** 2).sum(axis=1).max())
    np.testing.assert_allclose(cos, (q @ k.T) / scale, rtol=1e-10, atol=1e-12)
    assert not np.array_equal(np.argsort(ev.unit(q) @ ev.unit(k).T, axis=1), np.argsort(q @ k.T, axis=1))


def test_gallery_recall_relevance_notions_on_a_hand_case():
    # gallery of 3 distinct reports; query 0 is nearest report 1, which shares its codes but not its likelihoods
    gallery = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    queries = np.array([[0.1, 1.0], [-1.0, 0.1]])
    exact_q, exact_g = np.array([0, 2]), np.array([0, 1, 2])
    codes_q, codes_g = np.array([5, 7]), np.array([5, 5, 7])
    exact, codes = ev.ranked_hits(queries, gallery, [(exact_q, exact_g), (codes_q, codes_g)], ks=(1, 2, 3))
    # q0 ranks 1, 0, 2: exact hit at 2; codes hit at 1. q1 ranks 2, ...: hit at 1 both ways
    assert exact.tolist() == [[0, 1, 1], [1, 1, 1]] and codes.tolist() == [[1, 1, 1], [1, 1, 1]]
    # chance: q0 has 1 relevant of 3 (exact) -> k/3; codes: q0 has 2 of 3 -> 1 - C(1,1)/C(3,1) = 2/3 at k=1
    assert ev.gallery_chance(exact_q, exact_g, 1) == pytest.approx(1 / 3)
    assert ev.gallery_chance(codes_q, codes_g, 1) == pytest.approx((2 / 3 + 1 / 3) / 2)
    assert ev.first_of_each(np.array([3, 1, 3, 2, 1])).tolist() == [0, 1, 3]


def test_shuffle_null_of_a_constant_answer_is_its_majority_level():
    # every query's nearest key is key 0 whatever the ECG: shuffling changes nothing, R@1 = share of group 0
    keys = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
    queries = np.tile([[1.0, 0.2]], (4, 1)) + np.arange(4)[:, None] * [0.0, 0.01]
    groups = np.array([0, 0, 1, 2])
    (null,) = ev.shuffle_null(queries, keys, [(groups, groups)], ks=(1,), n_shuffles=3, seed=0)
    assert null.tolist() == [0.5]


def test_jaccard_and_graded_average_precision():
    a, _ = ev.multi_hot([["IMI", "SR"], ["NORM"]], vocabulary=["IMI", "NORM", "SR"])
    b, _ = ev.multi_hot([["IMI"], ["NORM"], ["IMI", "SR"]], vocabulary=["IMI", "NORM", "SR"])
    np.testing.assert_allclose(ev.jaccard(a, b), [[0.5, 0.0, 1.0], [0.0, 1.0, 0.0]])
    keys = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    queries = np.array([[1.0, 0.1], [0.1, 1.0]])
    ap = ev.graded_average_precision(queries, keys, ev.jaccard(a, b))
    # q0 ranks keys 0, 1, 2 with rel 0.5, 0, 1: P = 0.5, 0.25, 0.5 -> (0.5*0.5 + 1*0.5) / 1.5 = 0.5
    # q1 ranks key 1 first (rel 1, the only relevant one): AP = 1, the usual binary AP
    np.testing.assert_allclose(ap, [0.5, 1.0])


def test_normalised_graded_average_precision_of_a_perfect_ranking_is_one():
    keys = np.array([[1.0, 0.0], [0.6, 0.8], [-1.0, 0.0]])
    queries = np.array([[1.0, 0.0], [-1.0, 0.0]])
    rel = np.array([[1.0, 0.5, 0.0],      # q0 ranks keys 0, 1, 2: relevances 1, 0.5, 0 -- the ideal order
                    [1.0, 0.5, 0.0]])     # q1 ranks keys 2, 1, 0: relevances 0, 0.5, 1 -- the worst order
    ap, ideal = ev.graded_average_precision(queries, keys, rel), ev.ideal_average_precision(rel)
    # raw graded AP of the perfect ranking: (1 * 1 + 0.5 * 1.5/2) / 1.5 = 0.917, below 1
    np.testing.assert_allclose(ap, [(1 + 0.5 * 0.75) / 1.5, (0.5 * 0.25 + 1 * 0.5) / 1.5])
    np.testing.assert_allclose(ideal, [(1 + 0.5 * 0.75) / 1.5] * 2)
    np.testing.assert_allclose(ap / ideal, [1.0, (0.125 + 0.5) / 1.375])


def test_hubness_is_zero_when_symmetric_and_positive_for_a_hub():
    keys = np.eye(4)
    assert ev.hubness(np.eye(4), keys, k=1) == 0.0
    hub = np.array([[1.0, 0.1, 0, 0], [1.0, 0, 0.1, 0], [1.0, 0, 0, 0.1], [0.1, 0, 0, 1.0]])
    # key 0 is top-1 for 3 queries, key 3 for 1: N_1 = (3, 0, 0, 1), skewness > 0
    n = np.array([3.0, 0, 0, 1])
    want = np.mean((n - n.mean()) ** 3) / n.std() ** 3
    assert ev.hubness(hub, keys, k=1) == pytest.approx(want)


# ----------------------------------------------------------------------------------------------- the stage

STATEMENTS = [  # code, Statement Category, description, diagnostic_class, diagnostic_subclass, diagnostic/form/rhythm
    ("NORM", "Normal/abnormal", "normal ECG", "NORM", "NORM", (1, 0, 0)),
    ("IMI", "Myocardial Infarction", "inferior MI", "MI", "IMI", (1, 0, 0)),
    ("AMI", "Myocardial Infarction", "anterior MI", "MI", "AMI", (1, 0, 0)),
    ("NDT", "ST-T", "non-diagnostic T abnormalities", "STTC", "STTC", (1, 1, 0)),
    ("CLBBB", "Conduction", "complete left bundle branch block", "CD", "CLBBB", (1, 0, 0)),
    ("LVH", "Hypertrophy", "left ventricular hypertrophy", "HYP", "LVH", (1, 0, 0)),
    ("SR", "Rhythm", "sinus rhythm", "", "", (0, 0, 1)), ("LVOLT", "QRS morphology", "low QRS voltages", "", "", (0, 1, 0)),
]
PATTERNS = [{"NORM": 100.0, "SR": 0.0}, {"IMI": 50.0}, {"NDT": 100.0, "LVOLT": 0.0}, {"CLBBB": 100.0},
            {"LVH": 50.0, "SR": 0.0}, {"IMI": 100.0, "LVH": 20.0}, {"AMI": 80.0, "NDT": 35.0, "SR": 0.0}]
N_RECORDS = 80   # strat_fold = i % 10 + 1: fold 10 (the test fold) holds rows 9, 19, ..., 79 and every pattern


@pytest.fixture(scope="module")
def stage_dir(tmp_path_factory):
    """A data dir as the pipeline leaves it before `evaluate`, built from random arrays and a build_model model."""
    import pandas as pd
    import torch

    from ecgalign.models import build_model, encode_all, save_checkpoint

    root = tmp_path_factory.mktemp("evaluate")
    data = root / "data"
    for sub in ("raw", "text", "signals", "model", "ecg_embeddings"):
        (data / sub).mkdir(parents=True)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["ecg"]["embed_dim"], params["train"]["proj_dim"] = 8, 4   # the checkpoint's sizes (the baseline's too)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    table = pd.DataFrame([s[:5] for s in STATEMENTS], columns=[
        "code", "Statement Category", "SCP-ECG Statement Description", "diagnostic_class",
        "diagnostic_subclass"]).set_index("code").replace("", None)
    for j, col in enumerate(("diagnostic", "form", "rhythm")):
        table[col] = [float(s[5][j]) if s[5][j] else None for s in STATEMENTS]
    table.to_csv(data / "raw" / "scp_statements.csv")
    with open(data / "reports.jsonl", "w") as f:
        for i in range(N_RECORDS):
            codes = PATTERNS[i % len(PATTERNS)]
            f.write(json.dumps({"ecg_id": i + 1, "strat_fold": i % 10 + 1, "scp_codes": codes,
                                "report": "\n".join(f"{c}, Confidence score: {v}" for c, v in codes.items())}) + "\n")
    rng = np.random.default_rng(0)
    codes = [s[0] for s in STATEMENTS]
    statement_emb = rng.normal(size=(len(codes), 16)).astype(np.float32)
    with open(data / "text" / "statements.jsonl", "w") as f:
        for code, category, description, *_ in STATEMENTS:
            f.write(json.dumps({"code": code, "category": category, "description": description,
                                "text": f"{category}: {description}"}) + "\n")
    np.save(data / "text" / "statement_embeddings.npy", statement_emb)
    (data / "text" / "stats.json").write_text(json.dumps({"source": "statements"}))   # the text source embedded
    weights = np.array([[PATTERNS[i % len(PATTERNS)].get(c, -1) + 1 for c in codes] for i in range(N_RECORDS)],
                       dtype=np.float32)
    np.save(data / "text" / "record_embeddings.npy", (weights / weights.sum(1, keepdims=True)) @ statement_emb)
    signals = rng.normal(size=(N_RECORDS, 12, 64)).astype(np.float32)
    np.save(data / "signals" / "signals.npy", signals)
    (data / "signals" / "stats.json").write_text(json.dumps({"shape": list(signals.shape), "mean": [0.0] * 12,
                                                             "std": [2.0] * 12}))
    torch.manual_seed(1)
    model = build_model("cnn1d", embed_dim=8, text_dim=16, proj_dim=4, lead_mean=np.zeros(12),
                        lead_std=np.full(12, 2.0))
    save_checkpoint(data / "model" / "model.pt", model)
    z, e = encode_all(model, signals, batch_size=32)
    np.save(data / "ecg_embeddings" / "z_ecg.npy", z)
    np.save(data / "ecg_embeddings" / "e_ecg.npy", e)
    for split, values in (("train", [0.9, 0.7, 0.6]), ("val", [0.95, 0.8, 0.75])):
        curve = data.parent / "dvclive" / "plots" / "metrics" / split
        curve.mkdir(parents=True)
        (curve / "alignment_loss.tsv").write_text("step\talignment_loss\n" +
                                                  "".join(f"{s}\t{v}\n" for s, v in enumerate(values)))
    return root


def run_stage(root):
    import evaluate_alignment
    import evaluate_baseline

    evaluate_baseline.main(root / "data", root / "params.yaml")
    return evaluate_alignment.main(root / "data", root / "params.yaml", root / "metrics" / "eval.json",
                                   root / "plots", root / "dvclive")


def with_macro_interval(metrics: dict) -> set[str]:
    """The figures with an interval but the per-class AUCs (<...>_auc_NORM, ...): those whose resamples are kept."""
    with_interval = {k[:-len("_ci_low")] for k in metrics if k.endswith("_ci_low")}
    per_class = {k for k in with_interval if k.rsplit("_", 1)[-1] in ("NORM", "MI", "STTC", "CD", "HYP")}
    assert per_class
    return with_interval - per_class


def run_minirocket(root) -> dict:
    import evaluate_minirocket
    return evaluate_minirocket.main(root / "data", root / "params.yaml", kernels=168,   # 2 x 84: seconds
                                    metrics_path=root / "metrics" / "minirocket.json")


def test_stage_writes_every_contract_metric_and_plot(stage_dir):
    metrics = run_stage(stage_dir)
    assert json.loads((stage_dir / "metrics" / "eval.json").read_text()) == metrics
    contract = ["alignment_loss", "ecg_to_text_r1", "ecg_to_text_r5", "ecg_to_text_r10", "zero_shot_auc_macro",
                "linear_probe_auc_macro", "ecg_embedding_mean_cosine", "text_embedding_mean_cosine"]
    for key in contract:
        assert isinstance(metrics[key], float) and isinstance(metrics["baseline_" + key], float), key
    assert metrics["n_test"] == 8 and metrics["n_train"] == 64
    # every figure with an interval keeps its resampled values in eval_resamples.json, of the trained model and
    # the untrained one; eval.json keeps the scalars (a count named *_bootstrap_resamples included)
    kept = json.loads((stage_dir / "metrics" / "eval_resamples.json").read_text())
    assert all(isinstance(v, list) and len(v) == kept["kept"] for v in kept["figures"].values())
    assert {"zero_shot_auc_macro", "baseline_ecg_to_report_codes_r10"} <= set(kept["figures"])
    assert set(kept["figures"]) == with_macro_interval(metrics)
    assert isinstance(metrics["superdiagnostic_bootstrap_resamples"], int)
    assert not any(k.endswith("_kept") for k in metrics)
    # the 8 test records carry patterns 2, 5, 1, 4, 0, 3, 6, 2: pattern 2 twice, the others once
    assert metrics["ecg_to_text_majority_r1"] == 2 / 8
    assert metrics["ecg_to_text_chance_r1"] == pytest.approx((2 * 2 / 8 + 6 * 1 / 8) / 8)
    assert metrics["ecg_to_text_chance_r10"] == 1.0      # k >= N: every ranking hits
    assert metrics["ecg_to_text_r10"] == 1.0 and metrics["baseline_ecg_to_text_r10"] == 1.0
    for c in ("NORM", "MI", "STTC", "CD", "HYP"):
        assert 0 <= metrics[f"zero_shot_auc_{c}"] <= 1 and 0 <= metrics[f"baseline_linear_probe_auc_{c}"] <= 1
    assert not any(k.startswith("baseline_ecg_to_text_chance") for k in metrics)
    # every task and fraction, with intervals around the point figure; chosen C from the grid; the shuffle null
    for task in ("superdiagnostic", "subdiagnostic", "diagnostic", "form", "rhythm", "all"):
        assert f"zero_shot_{task}_auc_macro" in metrics and f"{task}_n_classes" in metrics
        for f in ("1pct", "10pct", "100pct"):
            assert f"baseline_linear_probe_{task}_{f}_auc_macro" in metrics
    for key in ("zero_shot_auc_macro", "linear_probe_auc_macro", "ecg_to_text_r1", "ecg_to_report_codes_r5",
                "report_map_jaccard", "baseline_zero_shot_all_auc_macro"):
        assert metrics[key + "_ci_low"] <= metrics[key] <= metrics[key + "_ci_high"], key
    assert metrics["linear_probe_superdiagnostic_100pct_c"] in (0.001, 0.01, 0.1, 1.0, 10.0)
    assert metrics["linear_probe_superdiagnostic_100pct_n_train"] == 64
    assert metrics["rhythm_n_classes"] == 0 and metrics["zero_shot_rhythm_auc_macro"] is None   # only SR: no negative
    assert metrics["report_gallery_size"] == 7 and metrics["ecg_to_report_chance_r1"] == pytest.approx(1 / 7)
    assert {"ecg_to_text_shuffle_r1", "baseline_ecg_to_report_super_shuffle_r10", "val_ecg_to_text_r1",
            "val_zero_shot_auc_macro", "val_linear_probe_auc_macro"} <= set(metrics)
    assert not any(k.startswith("baseline_val_") for k in metrics)
    for name in ("loss", "embedding_map", "zero_shot_roc", "tasks"):
        assert (stage_dir / "plots" / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_stage_is_deterministic(stage_dir):
    assert run_stage(stage_dir) == run_stage(stage_dir)


def test_baseline_stage_is_the_untrained_model_of_the_trained_config(stage_dir):
    from ecgalign.resamples import split_resamples

    """The baseline stage builds its model from params.yaml alone: for a checkpoint of the same sizes, that is the
    model the evaluate stage built from the checkpoint's config before the stage existed (the same weights), and
    its figures are the eval.json's baseline_* keys."""
    import torch

    from ecgalign import benchmark as bm
    from ecgalign import params as params_mod
    from ecgalign.models import AlignmentModel, load_model
    from ecgalign.resamples import split_resamples

    p = params_mod.load(stage_dir / "params.yaml")
    trained = load_model(stage_dir / "data" / "model" / "model.pt")
    torch.manual_seed(p.evaluate.seed)
    before = AlignmentModel(trained.config, lead_mean=trained.lead_mean, lead_std=trained.lead_std)
    now = bm.untrained_model(p, 16, np.zeros(12), np.full(12, 2.0))
    assert before.state_dict().keys() == now.state_dict().keys()
    assert all(torch.equal(before.state_dict()[k], now.state_dict()[k]) for k in before.state_dict())
    metrics = run_stage(stage_dir)
    baseline = json.loads((stage_dir / "data" / "baseline" / "baseline.json").read_text())
    assert baseline["precision"] == "fp32" and baseline["n_test"] == metrics["n_test"]
    figures, kept = split_resamples({k: v for k, v in baseline.items() if k.startswith("baseline_")})
    assert figures == {k: v for k, v in metrics.items() if k.startswith("baseline_")}
    stored = json.loads((stage_dir / "metrics" / "eval_resamples.json").read_text())["figures"]
    assert kept and {k: stored[k] for k in kept} == kept   # its kept resamples moved to eval_resamples.json


def test_tasks_in_two_processes_give_the_figures_of_one(stage_dir):
    from ecgalign import benchmark as bm
    from ecgalign import params as params_mod

    p = params_mod.load(stage_dir / "params.yaml")
    inp = bm.load_inputs(stage_dir / "data", p.split)
    prep, _, task_counts, _ = bm.prepared(inp, p.evaluate)
    emb = bm.split_embeddings(inp, inp.z_ecg, inp.e_ecg)
    one = bm.tasks(prep, emb, None, task_counts, p.evaluate.probe_c_grid, jobs=1, log=lambda *a: None)
    two = bm.tasks(prep, emb, None, task_counts, p.evaluate.probe_c_grid, jobs=2, log=lambda *a: None)
    assert json.dumps(one) == json.dumps(two) and len(one) > 100   # NaN-aware: the same text


def test_evaluate_without_the_baseline_stage_says_what_to_run(stage_dir, tmp_path):
    import shutil

    import evaluate_alignment

    run_stage(stage_dir)
    shutil.copytree(stage_dir / "data", tmp_path / "data")
    shutil.rmtree(tmp_path / "data" / "baseline")
    with pytest.raises(FileNotFoundError, match=r"baseline\.json not found: run the baseline stage first"):
        evaluate_alignment.main(tmp_path / "data", stage_dir / "params.yaml", tmp_path / "eval.json", tmp_path)


def test_minirocket_stage_probes_aeons_features_of_the_normalised_signals(stage_dir):
    """The features are aeon's MiniRocket of each lead's (x - mean) / std, fitted on the label pool, seeded by
    evaluate.seed; they get the z probes and the transfer probes, under minirocket_* keys of metrics/minirocket.json,
    their kept resamples beside it; the stage reads no text."""
    from aeon.transformations.collection.convolution_based import MiniRocket

    from ecgalign import benchmark as bm
    from ecgalign import minirocket as mr
    from ecgalign import params as params_mod

    p = params_mod.load(stage_dir / "params.yaml")
    inp = bm.load_inputs(stage_dir / "data", p.split, embeddings=False)
    signals = np.load(stage_dir / "data" / "signals" / "signals.npy")
    x = (signals - 0.0) / 2.0   # the fixture's statistics
    fitted = mr.transformer(signals, inp.train, [0.0] * 12, [2.0] * 12, 168, 32, p.evaluate.seed)
    expected = MiniRocket(n_kernels=168, random_state=p.evaluate.seed).fit(x[inp.train]).transform(x[inp.test])
    got = mr.features(fitted, signals, inp.test, [0.0] * 12, [2.0] * 12)
    assert got.shape == (len(inp.test), 168) and np.array_equal(got, np.asarray(expected, dtype=np.float32))
    other = mr.transformer(signals, inp.train, [0.0] * 12, [2.0] * 12, 168, 32, p.evaluate.seed + 1)
    assert not np.array_equal(mr.features(other, signals, inp.test, [0.0] * 12, [2.0] * 12), got)
    text, away = stage_dir / "data" / "text", stage_dir / "text-away"
    text.rename(away)   # no text side: the stage runs without data/text (so a text.* change does not re-run it)
    try:
        stage = run_minirocket(stage_dir)
    finally:
        away.rename(text)
    assert json.loads((stage_dir / "metrics" / "minirocket.json").read_text()) == stage
    assert stage["minirocket_n_features"] == 168 and stage["ci_level"] == p.evaluate.ci_level
    for task in ("superdiagnostic", "all"):
        assert isinstance(stage[f"minirocket_linear_probe_z_{task}_100pct_auc_macro"], float)
    assert not any("zero_shot" in k or k.startswith("minirocket_linear_probe_" + "super") for k in stage)
    kept = json.loads((stage_dir / "metrics" / "minirocket_resamples.json").read_text())["figures"]
    assert set(kept) == with_macro_interval(stage)
    # the evaluation's resamples: MiniRocket's kept values pair with the aligned model's (the same test records)
    metrics = run_stage(stage_dir)
    evaluated = json.loads((stage_dir / "metrics" / "eval_resamples.json").read_text())["figures"]
    key = "linear_probe_z_superdiagnostic_100pct_auc_macro"
    assert not any(k.startswith("minirocket_") for k in metrics) and len(kept["minirocket_" + key]) == len(evaluated[key])
    without_text = bm.prepared(bm.load_inputs(stage_dir / "data", p.split, embeddings=False, text=False), p.evaluate)
    with_text = bm.prepared(bm.load_inputs(stage_dir / "data", p.split), p.evaluate)
    assert np.array_equal(without_text[1], with_text[1])                       # the test records' resamples
    assert all(np.array_equal(without_text[2][t], with_text[2][t]) for t in with_text[2])   # each task's


def test_nearest_statements_rank_projected_statements_by_cosine(stage_dir):
    from ecgalign.models import load_model

    data = stage_dir / "data"
    near = ev.nearest_statements(20, k=3, data_dir=data)
    model = load_model(data / "model" / "model.pt")
    keys = ev.project_text(model, np.load(data / "text" / "statement_embeddings.npy"))
    cos = ev.zero_shot_scores(np.load(data / "ecg_embeddings" / "e_ecg.npy")[19:20], keys)[0]
    best = np.argsort(-cos)[:3]
    assert [code for code, _, _ in near] == [STATEMENTS[i][0] for i in best]
    assert [c for _, _, c in near] == pytest.approx(cos[best].tolist())
    assert near[0][1] == f"{STATEMENTS[best[0]][1]}: {STATEMENTS[best[0]][2]}"
    text = ev.format_nearest(near)
    assert text.splitlines()[1].split()[1] == near[0][0] and len(text.splitlines()) == 4
    with pytest.raises(KeyError, match="ecg_id 999 is not in"):
        ev.nearest_statements(999, data_dir=data)


def test_stage_names_a_misaligned_artifact(stage_dir, tmp_path):
    import shutil

    import evaluate_alignment

    shutil.copytree(stage_dir / "data", tmp_path / "data")
    np.save(tmp_path / "data" / "ecg_embeddings" / "e_ecg.npy", np.zeros((N_RECORDS - 1, 4), np.float32))
    with pytest.raises(ValueError, match=r"e_ecg\.npy has 79 rows but .*reports\.jsonl has 80 records"):
        evaluate_alignment.main(tmp_path / "data", stage_dir / "params.yaml", tmp_path / "eval.json", tmp_path)
    assert not (tmp_path / "eval.json").exists()


def test_loss_curve_keeps_the_last_row_of_a_resumed_step_and_skips_when_absent(tmp_path):
    from ecgalign import plots

    tsv = tmp_path / "alignment_loss.tsv"
    tsv.write_text("timestamp\tstep\talignment_loss\n1\t0\t0.9\n2\t1\t0.8\n3\t1\t0.7\n4\t2\t0.6\n")
    steps, values = plots.read_curve(tsv)
    assert steps.tolist() == [0, 1, 2] and values.tolist() == [0.9, 0.7, 0.6]
    assert plots.read_curve(tmp_path / "absent.tsv") is None
    assert plots.plot_loss({"train": None, "val": None}, tmp_path / "loss.png") is None
    assert not (tmp_path / "loss.png").exists()


def test_retrieval_identity_follows_the_text_source():
    from ecgalign.benchmark import text_keys
    from ecgalign.errors import ArtifactError
    reports = [{"scp_codes": {"SR": 0.0, "NORM": 100.0}, "report_en": "sinus rhythm normal ecg"},
               {"scp_codes": {"NORM": 100.0, "SR": 0.0}, "report_en": "sinus rhythm. normal ecg."},
               {"scp_codes": {"IMI": 15.0}, "report_en": "sinus rhythm normal ecg"}]
    groups = {s: ev.group_ids(text_keys(reports, s)).tolist() for s in ("statements", "report", "both")}
    assert groups == {"statements": [0, 0, 1], "report": [0, 1, 0], "both": [0, 1, 2]}
    with pytest.raises(ArtifactError, match="has no report_en, which text.source=report needs"):
        text_keys([{"scp_codes": {"NORM": 100.0}}], "report")
