"""Figures under the kept bootstrap resamples: exact values, and what moves out of a metrics file into the one beside."""
from __future__ import annotations

import json

import numpy as np
import pytest

from ecgalign import stats
from ecgalign.resamples import (RESAMPLED, STORED, add_interval, add_mean_interval, is_resamples_file, resamples_path,
                                split_resamples, write_metrics, write_resamples)


def test_a_mean_figure_keeps_its_value_under_each_of_the_first_resamples():
    hits = np.array([1.0, 0.0, 0.0, 1.0, 1.0])
    counts = stats.bootstrap_counts(5, 300, seed=2)
    m = {}
    add_mean_interval(m, "r1", hits, counts, 0.95)
    assert (m["r1_ci_low"], m["r1_ci_high"]) == stats.mean_interval(hits, counts, 0.95)
    assert len(m["r1" + RESAMPLED]) == STORED
    assert m["r1" + RESAMPLED][:3] == pytest.approx([counts[b] @ hits / 5 for b in range(3)], abs=1e-5)


def test_only_kept_lists_leave_the_metrics_and_undefined_values_stay_none():
    m = {"auc": 0.7, "auc_ci_low": 0.6, "auc_ci_high": 0.8, "all_bootstrap_resamples": 1000}
    add_interval(m, "auc", (0.6, 0.8), np.array([0.65, np.nan, 0.75]))
    m["missing" + RESAMPLED] = None   # an alias of a figure computed without intervals
    metrics, kept = split_resamples(m)
    assert metrics == {"auc": 0.7, "auc_ci_low": 0.6, "auc_ci_high": 0.8, "all_bootstrap_resamples": 1000}
    assert kept == {"auc": [0.65, None, 0.75]}


def test_the_file_is_json_with_one_figure_a_line(tmp_path):
    write_resamples(tmp_path / "resamples.json", {"a": [0.5, None], "b": [1.0]}, seed=3, n_boot=100)
    text = (tmp_path / "resamples.json").read_text()
    assert json.loads(text) == {"seed": 3, "bootstrap": 100, "kept": 100, "figures": {"a": [0.5, None], "b": [1.0]}}
    assert '  "a": [0.5,null],\n' in text


def test_the_kept_resamples_sit_beside_their_metrics_file():
    assert resamples_path("metrics/eval.json").as_posix() == "metrics/eval_resamples.json"
    assert resamples_path("metrics/minirocket.json").as_posix() == "metrics/minirocket_resamples.json"
    assert is_resamples_file(resamples_path("metrics/finetune.json")) and not is_resamples_file("metrics/eval.json")


def test_a_stage_writes_its_metrics_without_the_kept_resamples_and_those_beside_them(tmp_path):
    written = write_metrics(tmp_path / "eval.json", {"n": 3, "a": 0.5, "a" + RESAMPLED: [0.4, 0.6], "b": None,
                                                     "b" + RESAMPLED: None}, seed=1, n_boot=50)
    assert written == {"n": 3, "a": 0.5, "b": None}
    assert json.loads((tmp_path / "eval.json").read_text()) == written
    assert json.loads((tmp_path / "eval_resamples.json").read_text()) == {"seed": 1, "bootstrap": 50, "kept": 50,
                                                                         "figures": {"a": [0.4, 0.6]}}
