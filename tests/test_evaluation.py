"""The evaluate stage's metrics against hand computations and brute force, and a tiny end-to-end run."""
import itertools
import json
from math import comb

import numpy as np
import pytest

from ecgalign import evaluation as ev

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


def test_superclass_labels_and_primary_class():
    codes = [{"NORM": 100.0, "SR": 0.0}, {"IMI": 15.0, "NDT": 50.0}, {"SR": 0.0}, {"AMI": 80.0, "NDT": 80.0}]
    y = ev.superclass_labels(codes, CLASS_OF, ("NORM", "MI", "STTC", "CD"))
    assert y.astype(int).tolist() == [[1, 0, 0, 0], [0, 1, 1, 0], [0, 0, 0, 0], [0, 1, 1, 0]]
    assert ev.primary_superclass(codes, CLASS_OF, ("NORM", "MI", "STTC")) == ["NORM", "STTC", "none", "MI"]


def test_class_prompts_are_normalised_means_of_unit_statements():
    emb = np.array([[2.0, 0.0], [0.0, 1.0], [0.0, 5.0], [3.0, 4.0]])
    prompts, kept = ev.class_prompts(emb, ["NORM", "IMI", "AMI", "SR"], CLASS_OF, ("NORM", "MI", "HYP"))
    assert kept == ["NORM", "MI"]          # HYP has no statement
    np.testing.assert_allclose(prompts, [[1.0, 0.0], [0.0, 1.0]])


def test_zero_shot_auc_on_a_hand_case():
    e_ecg = np.array([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0], [-0.6, 0.8]])
    prompts = np.array([[1.0, 0.0], [0.0, 1.0]])
    scores = ev.zero_shot_scores(e_ecg, prompts)
    np.testing.assert_allclose(scores[:, 0], [1.0, 0.6, 0.0, -0.6])
    labels = np.array([[1, 0], [0, 0], [1, 0], [0, 0]], dtype=bool)
    # class A: positives score 1.0, 0.0; negatives 0.6, -0.6: 3 of 4 pairs ordered right; class B has no positive
    aucs, skipped = ev.auc_per_class(labels, scores, ["A", "B"])
    assert aucs == {"A": pytest.approx(0.75)} and skipped == ["B"]
    assert ev.macro(aucs) == pytest.approx(0.75) and ev.macro({}) is None


def test_linear_probe_separates_a_separable_toy_case():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(80, 4))
    y = np.stack([x[:, 0] > 0, x[:, 1] + x[:, 2] > 0.5, np.zeros(80, bool)], axis=1)
    aucs, skipped = ev.linear_probe(x[:60], y[:60], x[60:], y[60:], ["A", "B", "C"], c=10.0)
    assert aucs == {"A": 1.0, "B": 1.0} and skipped == ["C"]
    metrics = ev.probe_metrics(x[:60], y[:60], x[60:], y[60:], ["A", "B", "C"], c=10.0)
    assert metrics == {"linear_probe_auc_macro": 1.0, "linear_probe_auc_A": 1.0, "linear_probe_auc_B": 1.0}
