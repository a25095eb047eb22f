"""Experiment grids: the grid file, skipping what exists, the statistics of the table, the README block, and one
small real grid through DVC's queue in a temp repository."""
import json
import math
import os
import shutil
import sys

import numpy as np
import pytest
import yaml

from conftest import REPO, make_repo, run
from ecgalign import grid as g

GRID = """
seeds: [0, 1, 2]
configs:
  a: {train.loss: infonce}
  b: {train.loss: cosine, split.train_folds: [1, 2], train.learn_temperature: false}
  c: {data.source: local, data.path: shared/ptbxl}
metrics:
  - {key: ecg_to_text_r1, label: R@1}
  - {key: "metrics/train.json:alignment_loss", label: val 1−cos, format: .2f}
claims:
  - {text: a beats b, a: a, b: b, metric: ecg_to_text_r1, direction: higher}
  - {text: a is below b, a: a, b: b, metric: ecg_to_text_r1, direction: lower}
  - {text: a equals b, a: a, b: b, metric: ecg_to_text_r1, direction: equal, margin: 0.5}
  - {text: a beats c, a: a, b: c, metric: ecg_to_text_r1, direction: higher}
"""


def exp(config, seed, r1, loss=0.5, **extra):
    return {"name": f"{config}-s{seed}", "config": config, "seed": seed,
            "metrics": {"metrics/eval.json": {"ecg_to_text_r1": r1, **extra},
                        "metrics/train.json": {"alignment_loss": loss}}}


@pytest.fixture
def grid(tmp_path):
    (tmp_path / "experiments.yaml").write_text(GRID)
    return g.load_grid(tmp_path / "experiments.yaml", tmp_path)


# hand-made results: a = 0.5, 0.6, 0.7; b = 0.4, 0.4, 0.5 -> paired differences 0.1, 0.2, 0.2
RESULTS = {"experiments": [exp("a", 0, 0.5), exp("a", 1, 0.6), exp("a", 2, 0.7, loss=0.7),
                           exp("b", 0, 0.4), exp("b", 1, 0.4), exp("b", 2, 0.5),
                           exp("c", 0, 0.48, ecg_to_text_r1_ci_low=0.41, ecg_to_text_r1_ci_high=0.55)]}


def test_grid_file_gives_named_experiments_with_seed_params_and_absolute_paths(grid, tmp_path):
    names = [name for name, *_ in grid.experiments()]
    assert names == ["a-s0", "a-s1", "a-s2", "b-s0", "b-s1", "b-s2", "c-s0", "c-s1", "c-s2"]
    _, config, seed, sets = grid.experiments()[7]
    assert (config, seed) == ("c", 1)
    assert sets == {"data.source": "local", "data.path": str(tmp_path / "shared/ptbxl"), "train.seed": 1}
    assert g.set_args(grid.configs["b"]) == ["-S", "train.loss=cosine", "-S", "split.train_folds=[1, 2]",
                                             "-S", "train.learn_temperature=false"]


@pytest.mark.parametrize("text, message", [
    ("seeds: [0]\nconfigs: {A: {}}", "configs.A: names are lower-case"),
    ("configs: {a: {}}\nclaims: [{text: t, a: a, b: z, metric: m, direction: higher}]", "claims[0].b='z' is not"),
    ("configs: {a: {}}\nclaims: [{text: t, a: a, b: a, metric: m, direction: equal}]", "direction equal needs"),
    ("configs: {a: {}}\nclaims: [{text: t, a: a, b: a, metric: m, direction: up}]", "must be higher, lower or"),
    ("configs: {a: {}}\nseed: [0]", "unknown key(s) ['seed']"),
    ("configs: {}", "configs is empty"),
])
def test_bad_grid_files_name_the_key(tmp_path, text, message):
    (tmp_path / "experiments.yaml").write_text(text)
    with pytest.raises(g.GridError, match=None) as e:
        g.load_grid(tmp_path / "experiments.yaml")
    assert message in str(e.value)


def test_cells_are_mean_and_sample_sd_over_seeds_or_the_bootstrap_interval_of_a_single_run(grid):
    r1, loss = grid.metrics
    assert g.cell(RESULTS, "a", r1) == "0.600 ± 0.100"
    assert g.cell(RESULTS, "b", r1) == "0.433 ± 0.058"           # sd of 0.4, 0.4, 0.5 = 0.0577
    assert g.cell(RESULTS, "a", loss) == "0.57 ± 0.12"            # another metrics file, format .2f
    assert g.cell(RESULTS, "c", r1) == "0.480 [0.410, 0.550]"      # one seed: its bootstrap interval
    assert g.cell(RESULTS, "c", loss) == "0.50"                    # one seed, no interval recorded
    assert g.cell({"experiments": []}, "a", r1) == "–"


def test_paired_difference_has_the_t_interval_over_seeds(grid):
    higher, lower, equal, single = (g.paired(RESULTS, c) for c in grid.claims)
    # differences 0.1, 0.2, 0.2: mean 1/6, sd sqrt(1/300) = 0.057735, t(0.975, 2) = 4.302653
    half = 4.302652729749464 * math.sqrt(1 / 300) / math.sqrt(3)
    assert higher.n == 3 and higher.mean == pytest.approx(1 / 6)
    assert (higher.low, higher.high) == (pytest.approx(1 / 6 - half), pytest.approx(1 / 6 + half))
    assert higher.low == pytest.approx(0.023245, abs=1e-6) and higher.high == pytest.approx(0.310088, abs=1e-6)
    assert higher.verdict == "supported"
    assert lower.verdict == "contradicted"
    assert equal.verdict == "supported"                              # [0.023, 0.310] lies within ±0.5
    assert single.n == 1 and single.mean == pytest.approx(0.02) and single.verdict.startswith("not supported")
    # the simultaneous (Bonferroni) interval: over 1 claim the claim's own, over 4 t(1 - 0.05 / 8, 2) = 8.860200
    assert higher.simultaneous(1) == (pytest.approx(higher.low), pytest.approx(higher.high))
    wide = 8.860200034654 * math.sqrt(1 / 300) / math.sqrt(3)
    assert higher.simultaneous(4) == (pytest.approx(1 / 6 - wide), pytest.approx(1 / 6 + wide))
    # an interval that contains 0 is "not supported"
    noisy = {"experiments": RESULTS["experiments"][:3] + [exp("b", 0, 0.6), exp("b", 1, 0.4), exp("b", 2, 0.8)]}
    assert g.paired(noisy, grid.claims[0]).verdict == "not supported"


def test_paired_p_values_match_the_interval_and_holm_corrects_them(grid):
    higher, lower, equal, single = (g.paired(RESULTS, c) for c in grid.claims)
    # t = (1/6) / (sqrt(1/300) / sqrt(3)) = 5 on 2 df: two-sided p = 0.0377; TOST: t = 20 and 10 -> p = 2 * 0.00493
    assert higher.p == pytest.approx(0.037750, abs=1e-6) and lower.p == higher.p
    assert equal.p == pytest.approx(0.009852, abs=1e-6) and math.isnan(single.p)
    assert g.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])    # 3 x 0.01, 2 x 0.03, max(0.06, 0.04)
    assert g.holm([0.5, 0.001]) == pytest.approx([0.5, 0.002]) and g.holm([0.9, 0.8]) == [1.0, 1.0]
    corrected = g.claim_results(grid, RESULTS)
    # alone, "a beats b" is supported (p 0.038 < 0.05); among 3 claims its Holm p is 0.075: not supported
    assert higher.verdict == "supported" and corrected[0].verdict == "not supported"
    assert corrected[0].p_holm == pytest.approx(2 * higher.p) and corrected[1].verdict == "not supported"
    assert corrected[2].p_holm == pytest.approx(3 * equal.p) and corrected[2].verdict == "supported"
    assert corrected[3].verdict.startswith("not supported (one seed")


def test_a_difference_without_variation_over_seeds_is_undefined_never_p_zero(grid):
    """Collapsed runs give the same figure on every seed (ECG mean cosine 1.000): se = 0 has no t-test, so the claim
    is 'undefined', has no interval and no p, and stays out of the Holm family (the others keep their m)."""
    same = {"experiments": [exp("a", s, 1.0) for s in range(3)] + [exp("b", s, 0.9) for s in range(3)]}
    for claim in grid.claims[:3]:
        r = g.paired(same, claim)
        assert r.n == 3 and r.mean == pytest.approx(0.1) and math.isnan(r.p) and r.verdict == g.UNDEFINED
    assert all(r.verdict == g.UNDEFINED and math.isnan(r.p_holm) for r in g.claim_results(grid, same)[:3])
    block = g.render(grid, same)
    assert "| a beats b (a = a, b = b) | ecg_to_text_r1 | +0.100 | – | – | – | 3 | – | – | undefined" in block
    assert "Holm–Bonferroni-corrected across the 0 claims" in block


def test_grids_of_one_holm_family_share_one_correction(grid, tmp_path):
    """Two grids with holm_family: x: each claim's Holm p counts the other grid's tested claims too; a grid outside
    the family, or one without results yet, does not count."""
    (tmp_path / "experiments.yaml").write_text(GRID + "holm_family: x\n")
    (tmp_path / "experiments-other.yaml").write_text(GRID + "holm_family: x\nresults: results/other.json\n")
    (tmp_path / "experiments-alone.yaml").write_text(GRID + "results: results/alone.json\n")
    (tmp_path / "results").mkdir()
    for name in ("other", "alone"):
        (tmp_path / f"results/{name}.json").write_text(json.dumps(RESULTS))
    first = g.load_grid(tmp_path / "experiments.yaml", tmp_path)
    others = g.family_members(first, tmp_path)
    assert [o.results for o, _ in others] == ["results/other.json"]
    higher, _, equal, _ = (g.paired(RESULTS, c) for c in first.claims)
    alone, family = g.claim_results(first, RESULTS), g.claim_results(first, RESULTS, others)
    # 3 tested claims here, 3 more in the other grid: the smallest p (equal's) is multiplied by 6, not 3
    assert alone[2].p_holm == pytest.approx(3 * equal.p) and family[2].p_holm == pytest.approx(6 * equal.p)
    assert family[0].p_holm == pytest.approx(min(1.0, 4 * higher.p))
    assert "across the 6 claims with an interval of the Holm family `x` (3 here; the grids of results/grid.json, " \
           "results/other.json)" in g.render(first, RESULTS, others)
    assert g.family_members(g.load_grid(tmp_path / "experiments-alone.yaml", tmp_path), tmp_path) == []


def test_render_shows_every_configuration_and_claim(grid):
    block = g.render(grid, RESULTS)
    assert "| a | ? | 0, 1, 2 | 0.600 ± 0.100 | 0.57 ± 0.12 |" in block
    assert "| c | ? | 0 | 0.480 [0.410, 0.550] | 0.50 |" in block
    # p = 0.038 alone, but Holm across the 3 claims with an interval: 2 x 0.038 = 0.075 -> not supported
    # the simultaneous interval over the 3 claims: t(1 - 0.05 / 6, 2) instead of t(0.975, 2)
    assert ("| a beats b (a = a, b = b) | ecg_to_text_r1 | +0.167 | [+0.023, +0.310] | [-0.088, +0.422] | – | 3 | "
            "0.038 | 0.075 | not supported |") in block
    assert "| a equals b (a = a, b = b, equal within ±0.5) | ecg_to_text_r1 | +0.167 | [+0.023, +0.310] | " \
           "[-0.088, +0.422] | – | 3 | 0.010 | 0.030 | supported |" in block
    assert "Holm–Bonferroni-corrected across the 3 claims" in block
    readme = f"# x\n\n## Results\n{g.BEGIN}\nold\n{g.END}\nhand table\n"
    new = g.replace_block(readme, block)
    assert new.startswith("# x\n\n## Results\n") and new.endswith(f"{g.END}\nhand table\n")
    assert g.readme_block(new) == block
    with pytest.raises(g.GridError, match="results:begin"):
        g.replace_block("no markers", block)


FULL = {"source": "local", "n_records": 21837, "database_sha256": "cd9bf4e6" + "0" * 56}
SLICE = {"source": "local", "n_records": 1000, "database_sha256": "d60a95c4" + "0" * 56}


def on(data, e, **costs):
    e["metrics"]["metrics/data.json"] = data
    for stage, seconds in costs.items():
        e["metrics"][f"metrics/cost/{stage}.json"] = {"seconds": seconds, "cpu_seconds": 2 * seconds,
                                                      "peak_rss_mb": 1024.0 * seconds / 60, "cpus": 2}
    return e


def test_a_configuration_whose_seeds_ran_on_different_datasets_is_never_averaged(grid):
    mixed = {"experiments": [on(FULL, exp("a", 0, 0.5)), on(SLICE, exp("a", 1, 0.9)), on(FULL, exp("b", 0, 0.4)),
                             on(FULL, exp("b", 1, 0.3))]}
    assert g.datasets(mixed, "a") == ["PTB-XL 1,000 (d60a95c4)", "PTB-XL 21,837 (cd9bf4e6)"]
    assert g.cell(mixed, "a", grid.metrics[0]) == "–" and g.by_seed(mixed, "a", "ecg_to_text_r1") == {}
    assert g.paired(mixed, grid.claims[0]) is None                  # no claim rests on mixed data
    block = g.render(grid, mixed)
    assert "| a | mixed: PTB-XL 1,000 (d60a95c4); PTB-XL 21,837 (cd9bf4e6) | 0, 1 | – |" in block
    assert "| b | PTB-XL 21,837 (cd9bf4e6) | 0, 1 | 0.350 ± 0.071 |" in block


def test_cost_table_averages_each_stage_over_the_runs_of_the_first_configuration(grid):
    runs = {"experiments": [on(FULL, exp("a", 0, 0.5), train=600, evaluate=120),
                            on(FULL, exp("a", 1, 0.6), train=660, evaluate=180), on(FULL, exp("b", 0, 0.4), train=1)]}
    block = g.render(grid, runs)
    assert "| train | 10.5 min (10.0–11.0) | 21.0 min | 11.00 GiB | 2 |" in block  # mean (range) wall, mean CPU, largest peak
    assert "| evaluate | 2.5 min (2.0–3.0) | 5.0 min | 3.00 GiB | 2 |" in block
    assert "| **all stages** | **13.0 min** | | | |" in block
    assert "Cost of one `a` run on PTB-XL 21,837 (cd9bf4e6) (2 cores;" in block
    assert "Cost" not in g.render(grid, RESULTS)                           # no run recorded costs


def test_a_claim_can_compare_two_figures_of_the_same_runs(tmp_path):
    (tmp_path / "g.yaml").write_text(
        "configs: {ft: {}}\nmetrics: [aligned]\nclaims:\n  - {text: aligned beats random, a: ft, b: ft, "
        "metric: aligned, b_metric: random, direction: higher}\n")
    grid = g.load_grid(tmp_path / "g.yaml", tmp_path)
    runs = {"experiments": [{"name": f"ft-s{s}", "config": "ft", "seed": s,
                             "metrics": {"metrics/eval.json": {"aligned": a, "random": r}}}
                            for s, (a, r) in enumerate([(0.9, 0.8), (0.85, 0.7), (0.95, 0.8)])]}
    r = g.paired(runs, grid.claims[0])
    assert r.n == 3 and r.mean == pytest.approx(0.4 / 3)        # differences 0.1, 0.15, 0.15
    assert "| aligned beats random (a = ft, b = ft) | aligned − random | +0.133 |" in g.render(grid, runs)


def test_the_cost_table_keeps_to_the_stages_the_targets_run():
    assert g.run_stages(REPO, ["evaluate"]) == ("download", "reports", "text_embeddings", "signals", "train",
                                                "ecg_embeddings", "baseline", "evaluate")   # not minirocket
    assert g.run_stages(REPO, ["evaluate", "minirocket"]) == ("download", "reports", "text_embeddings", "signals",
                                                              "train", "ecg_embeddings", "baseline", "minirocket",
                                                              "evaluate")
    assert g.run_stages(REPO, ["finetune"]) == ("download", "reports", "text_embeddings", "signals", "train",
                                                "finetune")
    assert g.run_stages(REPO, []) == ()
    runs = {"experiments": [on(FULL, exp("a", 0, 0.5), train=600, evaluate=120)]}
    lines = "\n".join(g.render_costs(runs, "a", ("train",)))
    assert "| train |" in lines and "| evaluate |" not in lines and "**10.0 min**" in lines


def test_task_table_shows_mean_sd_over_seeds_and_the_interval_of_the_first_seed(grid):
    def run(seed, zs, p1):
        return exp("a", seed, 0.5, zero_shot_form_auc_macro=zs, zero_shot_form_auc_macro_ci_low=zs - 0.1,
                   zero_shot_form_auc_macro_ci_high=zs + 0.1, linear_probe_form_1pct_auc_macro=p1)
    block = g.render(grid, {"experiments": [run(1, 0.8, 0.7), run(2, 0.9, 0.6)]})
    assert "| form | 0.850 ± 0.071 [0.700, 0.900] | 0.650 ± 0.071 | – | – | – |" in block
    assert "`a` (2 seed(s))" in block and "[bootstrap interval of seed 1's run]" in block
    assert "| superdiagnostic |" not in block                                # a task without figures has no row
    # runs with probes on z at every fraction: the table shows those (the primary probe), not e_ecg's
    z_runs = [run(s, 0.8, 0.7) for s in (1, 2)]
    for e in z_runs:
        e["metrics"]["metrics/eval.json"]["linear_probe_z_form_1pct_auc_macro"] = 0.75
    block = g.render(grid, {"experiments": z_runs})
    assert "| z probe 1 % |" in block and "| form | 0.800 ± 0.000 [0.700, 0.900] | 0.750 ± 0.000 | – | – | – |" in block


def test_data_path_expands_environment_variables_with_defaults(tmp_path, monkeypatch):
    (tmp_path / "experiments.yaml").write_text(
        "configs:\n  full: {data.source: local, data.path: '${PTBXL_TEST:-/tmp/ptb-default}'}\n"
        "  env: {data.source: local, data.path: '${PTBXL_TEST}/x'}\n")
    monkeypatch.setenv("PTBXL_TEST", str(tmp_path / "mine"))
    grid = g.load_grid(tmp_path / "experiments.yaml", tmp_path)
    assert grid.configs["full"]["data.path"] == str(tmp_path / "mine")
    assert grid.configs["env"]["data.path"] == str(tmp_path / "mine/x")
    monkeypatch.delenv("PTBXL_TEST")
    with pytest.raises(g.GridError, match=r"\$\{PTBXL_TEST\} is not set: set PTBXL_TEST=/path"):
        g.load_grid(tmp_path / "experiments.yaml", tmp_path)
    (tmp_path / "experiments.yaml").write_text(
        "configs:\n  full: {data.source: local, data.path: '${PTBXL_TEST:-/tmp/ptb-default}'}\n")
    assert g.load_grid(tmp_path / "experiments.yaml", tmp_path).configs["full"]["data.path"] == "/tmp/ptb-default"


def test_experiments_whose_dataset_is_missing_are_named_before_anything_is_queued(tmp_path):
    (tmp_path / "here").mkdir()
    (tmp_path / "here/ptbxl_database.csv").write_text("ecg_id\n")
    todo = [("full-s0", {"data.source": "local", "data.path": str(tmp_path / "gone")}),
            ("here-s0", {"data.source": "local", "data.path": str(tmp_path / "here")}),
            ("syn-s0", {"data.source": "synthetic", "data.path": str(tmp_path / "gone")})]
    assert g.missing_datasets(todo) == [f"full-s0: data.path {tmp_path / 'gone'} holds no ptbxl_database.csv"]


def test_plan_skips_finished_experiments_of_the_same_code_and_params_and_requeues_the_others(grid):
    def entry(state, baseline="head", seed=0, loss="infonce"):
        params = {"train": {"loss": loss, "seed": seed}}
        if loss == "cosine":   # config b's other overrides
            params = {"train": {**params["train"], "learn_temperature": False}, "split": {"train_folds": [1, 2]}}
        return {"baseline": baseline, "state": state, "rev": "r",
                "data": {"params": {"params.yaml": {"data": params}}}}
    found = {"a-s0": [entry("success")], "a-s1": [entry("success", baseline="old-code", seed=1)],
             "a-s2": [entry("queued", seed=2)], "b-s0": [entry("running", loss="cosine")],
             "b-s1": [entry("failed", seed=1, loss="cosine")],
             "b-s2": [entry("success", seed=2, loss="infonce")]}   # config b was edited since: run again
    p = g.plan(grid, found, is_current=lambda b: b == "head")
    assert list(p.done) == ["a-s0"]
    assert p.pending == ["a-s2", "b-s0"] and p.failed == ["b-s1"] and p.stale == ["b-s2"]
    assert [n for n, _ in p.missing] == ["a-s1", "b-s1", "b-s2", "c-s0", "c-s1", "c-s2"]
    assert [n for n, _ in g.plan(grid, found, lambda b: True, only="c-*").missing] == ["c-s0", "c-s1", "c-s2"]
    assert [n for n, _ in g.plan(grid, {}, lambda b: True, shard=(1, 4)).missing] == ["a-s1", "b-s2"]


def test_tasks_queued_on_other_code_or_params_are_queued_anew_and_their_old_tasks_dropped(grid):
    """A queue left from an earlier commit would run first, for nothing: those experiments are missing, not pending,
    and their queued or running tasks are the ones run_grid removes (other grids' tasks are left alone)."""
    def entry(state, baseline, loss="infonce", seed=0):
        return {"baseline": baseline, "state": state, "rev": "r",
                "data": {"params": {"params.yaml": {"data": {"train": {"loss": loss, "seed": seed}}}}}}
    found = {"a-s0": [entry("queued", "old-code")], "a-s1": [entry("queued", "head", seed=1)],
             "b-s0": [entry("running", "head", loss="infonce")]}   # b is cosine in the grid file
    p = g.plan(grid, found, is_current=lambda b: b == "head")
    assert p.pending == ["a-s1"] and {"a-s0", "b-s0"} <= {n for n, _ in p.missing}
    tasks = [("1", "a-s0", "Queued"), ("2", "a-s1", "Queued"), ("3", "b-s0", "Running"), ("4", "a-s0", "Success"),
             ("5", "other-grid-s0", "Queued"), ("6", "c-s2", "Failed")]
    assert g.outdated_tasks(tasks, p) == [("1", "a-s0", "Queued"), ("3", "b-s0", "Running")]


def test_a_dry_run_prints_the_plan_in_queue_order_and_the_tasks_it_would_remove(monkeypatch, capsys):
    import run_grid
    grid = g.load_grid("experiments.yaml", REPO)
    missing = [(n, o) for n, _, _, o in grid.experiments() if n in ("cosine-s1", "infonce-s1", "cosine-s0")]
    seen = {}

    def survey(grid_, root, only, shard):
        seen.update(only=only, shard=shard)
        return g.Plan({"infonce-s0": {}}, ["supervised-s0"], [], missing), [], [("t", "cosine-s0", "Queued")]
    monkeypatch.setattr(g, "survey", survey)
    assert run_grid.main(["--dry-run", "--only", "*", "--shard", "0/1"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert seen == {"only": "*", "shard": (0, 1)}
    assert out[0] == "grid: 1 done, 1 queued or running on current code, 3 to queue"
    assert [line.split()[0] for line in out[1:4]] == ["cosine-s0", "infonce-s1", "cosine-s1"]
    assert "-S train.loss=cosine" in out[1]
    assert out[4] == "cosine-s0: queued on other code or params (would be removed from the queue)"


def test_workers_are_started_again_only_when_none_is_seen_and_nothing_runs(grid, monkeypatch):
    """Under load `dvc queue status` can count 0 workers while one runs an experiment: no second worker then; once
    nothing runs and no worker is seen for three polls, the workers are started again."""
    from types import SimpleNamespace
    polls = iter([([("1", "a-s0", "Running")], 0)] * 5 + [([("1", "a-s0", "Success"), ("2", "a-s1", "Queued")], 0)] * 3
                 + [([("1", "a-s0", "Success"), ("2", "a-s1", "Success")], 1)])
    started = []
    monkeypatch.setattr(g, "run", lambda *a, **k: SimpleNamespace(stdout="", returncode=0))
    monkeypatch.setattr(g, "survey", lambda *a: (g.Plan({}, ["a-s0", "a-s1"], [], []), [], []))
    monkeypatch.setattr(g, "queue_status", lambda root: next(polls))
    monkeypatch.setattr(g, "start_workers", lambda root, jobs: started.append(jobs))
    monkeypatch.setattr(g, "missing_listings", lambda root: [])
    g.run_grid(grid, REPO, poll=0, log=lambda m: None)
    assert started == [1, 1]   # the first start, and one after three polls with a queued experiment and no worker


def test_queue_status_name_shows_its_most_telling_task():
    tasks = [("b994d52", "a-s0", "Queued"), ("f5bafd5", "a-s0", "Success"), ("9faccfe", "a-s1", "Success"),
             ("1111111", "a-s2", "Success"), ("2222222", "a-s2", "Failed")]
    assert g.states(tasks) == {"a-s0": "Queued", "a-s1": "Success", "a-s2": "Failed"}


def test_exp_show_json_is_read_into_states():
    shown = [{"rev": "workspace", "name": None, "data": {}},
             {"rev": "c0ffee", "name": "main", "experiments": [
                 {"name": "a-s0", "executor": {"state": "success"},
                  "revs": [{"rev": "1", "name": "a-s0", "error": None, "data": {"metrics": {}}}]},
                 {"name": "a-s1", "executor": None, "revs": [{"rev": "2", "name": "a-s1", "error": None}]},
                 {"name": "b-s0", "executor": {"state": "failed"},
                  "revs": [{"rev": "3", "name": "b-s0", "error": {"msg": "Experiment run failed"}}]}]}]
    found = g.existing(shown)
    assert {n: [(e["baseline"], e["state"]) for e in v] for n, v in found.items()} == {
        "a-s0": [("c0ffee", "success")], "a-s1": [("c0ffee", "success")], "b-s0": [("c0ffee", "failed")]}


@pytest.mark.parametrize("grid_file", ["experiments.yaml", "experiments-quick.yaml", "experiments-finetune.yaml",
                                       "experiments-text.yaml", "experiments-study.yaml", "experiments-precision.yaml",
                                       "experiments-claims.yaml", "experiments-minirocket.yaml"])
def test_results_blocks_are_what_the_script_writes_for_the_committed_results(grid_file):
    grid = g.load_grid(REPO / grid_file, REPO)
    results = json.loads((REPO / grid.results).read_text())
    block = g.render(grid, results, g.family_members(grid, REPO))
    assert g.readme_block((REPO / grid.document).read_text()) == block, \
        f"{grid.document}'s results block is stale: run `make results`"


def test_a_small_grid_runs_through_the_dvc_queue_and_a_rerun_skips_it(tmp_path, tiny_text_model):
    """2 seeds x 1 configuration, 200 synthetic records, 1 epoch: queued, run by a queue worker, collected."""
    root = tmp_path / "repo"
    root.mkdir()
    env = make_repo(root, tiny_text_model, epochs=1)
    (root / "experiments.yaml").write_text(
        "seeds: [0, 1]\nconfigs:\n  cos: {train.loss: cosine}\ntargets: [evaluate]\n"
        "metrics: [zero_shot_auc_macro]\nclaims:\n  - {text: trained beats untrained, a: cos, b: cos, "
        "metric: zero_shot_auc_macro, b_metric: baseline_zero_shot_auc_macro, direction: higher}\n")
    (root / "README.md").write_text(f"# t\n{g.BEGIN}\n{g.END}\n")
    run(["git", "add", "-A"], root, env)
    run(["git", "commit", "-qm", "grid"], root, env)
    grid_cmd = [sys.executable, "src/run_grid.py", "--poll", "2"]
    out = run(grid_cmd, root, env)
    assert "0 done, 0 already queued, 2 to queue" in out and "2/2 finished" in out
    results = json.loads((root / "results/grid.json").read_text())
    assert [(e["name"], e["params"]["train.seed"], e["params"]["train.loss"]) for e in results["experiments"]] == [
        ("cos-s0", 0, "cosine"), ("cos-s1", 1, "cosine")]
    aucs = [e["metrics"]["metrics/eval.json"]["zero_shot_auc_macro"] for e in results["experiments"]]
    assert all(math.isfinite(a) for a in aucs)
    for e in results["experiments"]:   # each run says what it ran on and what each stage cost
        assert e["metrics"]["metrics/data.json"]["source"] == "synthetic"
        assert e["metrics"]["metrics/cost/train.json"]["stage"] == "train"
    readme = (root / "README.md").read_text()
    assert "| cos | synthetic 200 | 0, 1 |" in readme and "| evaluate |" in readme
    # each experiment commit carries the evaluate stage's kept resamples: the claim's two-level interval is paired
    for e in results["experiments"]:
        kept = e["resamples"]
        assert sorted(kept) == ["baseline_zero_shot_auc_macro", "zero_shot_auc_macro"]
        assert len(kept["zero_shot_auc_macro"]) == len(kept["baseline_zero_shot_auc_macro"]) > 0
    row = next(line for line in readme.splitlines() if line.startswith("| trained beats untrained"))
    assert row.count("[") == 3 and "]*" not in row
    # committing the results does not change the pipeline code: a re-run finds both experiments and queues nothing
    run(["git", "add", "-A"], root, env)
    run(["git", "commit", "-qm", "results"], root, env)
    assert "2 done, 0 already queued, 0 to queue" in run(grid_cmd, root, env)
    assert json.loads((root / "results/grid.json").read_text()) == results
    # a clone has no experiment refs: its collect keeps the committed rows, still current there
    run(["git", "clone", "-q", str(root), str(tmp_path / "clone")], tmp_path, env)
    run([sys.executable, str(root / "src/results_table.py"), "--collect-only"], tmp_path / "clone", env)
    assert json.loads((tmp_path / "clone/results/grid.json").read_text()) == results


def test_uncommitted_pipeline_changes_are_refused_before_anything_is_queued(tmp_path, grid):
    env = dict(os.environ, GIT_AUTHOR_NAME="test", GIT_AUTHOR_EMAIL="test@example.com",
               GIT_COMMITTER_NAME="test", GIT_COMMITTER_EMAIL="test@example.com")
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy(REPO / name, tmp_path / name)
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "init"]):
        run(cmd, tmp_path, env)
    assert "src/ecgalign/training.py" in g.pipeline_paths(tmp_path)
    (tmp_path / "params.yaml").write_text((tmp_path / "params.yaml").read_text().replace("epochs: 15", "epochs: 2"))
    with pytest.raises(g.GridError, match="uncommitted changes to the pipeline code or params.yaml:\n M params.yaml"):
        g.run_grid(grid, tmp_path)


def test_a_cache_without_the_locks_directory_listings_is_refused_before_anything_is_queued(tmp_path, grid):
    """A clone on a new machine has dvc.lock but not the `.dir` objects it names: an experiment restored from the
    run cache would fail hours into a grid (`failed to load directory`), so the grid asks for `make repro` first."""
    env = dict(os.environ, GIT_AUTHOR_NAME="test", GIT_AUTHOR_EMAIL="test@example.com",
               GIT_COMMITTER_NAME="test", GIT_COMMITTER_EMAIL="test@example.com")
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy(REPO / name, tmp_path / name)
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump({"schema": "2.0", "stages": {
        "text_embeddings": {"cmd": "x", "outs": [{"path": "data/text", "md5": "aae03416b7.dir"},
                                                 {"path": "metrics/text.json", "md5": "0123456789"}]},
        "train": {"cmd": "y", "deps": [{"path": "data/text", "md5": "aae03416b7.dir"},
                                       {"path": "data/signals", "md5": "7dcf822973.dir"}]}}}))
    for cmd in (["git", "init", "-q"], ["dvc", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "init"]):
        run(cmd, tmp_path, env)
    assert g.missing_listings(tmp_path) == ["data/signals", "data/text"]
    listing = tmp_path / ".dvc/cache/files/md5/aa/e03416b7.dir"
    listing.parent.mkdir(parents=True)
    listing.write_text("[]")
    with pytest.raises(g.GridError, match=r"^the DVC cache lacks the directory listings dvc.lock names for "
                                          r"data/signals: .* run `make repro` \(or `dvc repro`\) here first"):
        g.run_grid(grid, tmp_path)


def test_a_missing_dvc_on_path_is_one_error_that_says_how_to_run_the_grid(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(g.GridError, match=r"^`dvc` is not on PATH: run the grid through `make grid`"):
        g.exp_show(tmp_path)


def test_an_experiment_stays_current_when_only_code_of_stages_it_does_not_run_changes():
    evaluate = g.pipeline_paths(REPO, g.run_stages(REPO, ["evaluate"]))
    assert {"src/ecgalign/training.py", "src/evaluate_alignment.py", "params.yaml"} <= set(evaluate)
    assert "src/finetune.py" not in evaluate and "src/ecgalign/finetune.py" not in evaluate
    assert {"src/finetune.py", "src/ecgalign/training.py"} <= set(g.pipeline_paths(REPO))


def test_an_experiment_stays_current_when_only_params_of_stages_it_does_not_run_change(tmp_path):
    """Params count as DVC counts them, by the keys dvc.yaml declares for the stages the grid runs."""
    env = dict(os.environ, GIT_AUTHOR_NAME="test", GIT_AUTHOR_EMAIL="test@example.com",
               GIT_COMMITTER_NAME="test", GIT_COMMITTER_EMAIL="test@example.com")
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy(REPO / name, tmp_path / name)
    (tmp_path / "grid.yaml").write_text("seeds: [0]\nconfigs: {a: {}}\nmetrics: [m]\ntargets: [evaluate]\n")
    (tmp_path / "ft.yaml").write_text("seeds: [0]\nconfigs: {a: {}}\nmetrics: [m]\ntargets: [finetune]\n")
    evaluate, finetune = (g.load_grid(tmp_path / f, tmp_path) for f in ("grid.yaml", "ft.yaml"))
    assert "finetune" not in g.stage_params(tmp_path, evaluate.stages)
    assert {"finetune", "train", "data"} <= set(g.stage_params(tmp_path, finetune.stages))

    def commit(old, new):
        path = tmp_path / "params.yaml"
        path.write_text(path.read_text().replace(old, new, 1))
        run(["git", "add", "-A"], tmp_path, env)
        run(["git", "commit", "-qm", new or "init"], tmp_path, env)
        return run(["git", "rev-parse", "HEAD"], tmp_path, env).split()[0]
    run(["git", "init", "-q"], tmp_path, env)
    commit("", "")
    ran = {"params": {"params.yaml": {"data": yaml.safe_load((tmp_path / "params.yaml").read_text())}}}

    def current(grid, overrides=None):   # the experiment that ran with the first commit's params (+ overrides)
        data = json.loads(json.dumps(ran))
        for key, value in (overrides or {}).items():
            section, leaf = key.split(".")
            data["params"]["params.yaml"]["data"][section][leaf] = value
        return g.params_match(data, {**g.head_params(tmp_path, grid.stages), **(overrides or {})})
    commit("  patience: 2 ", "  patience: 3 ")           # finetune.patience
    assert current(evaluate) and not current(finetune)
    commit("# Every knob", "# Each knob")                 # a comment: no value changed
    assert current(evaluate) and not current(finetune)
    commit("  precision: fp32              # fp32 | bf16 (autocast)", "  precision: bf16              # fp32 | bf16 (autocast)")
    assert not current(evaluate)                          # train.precision: a new default stales the experiment ...
    assert current(evaluate, {"train.precision": "bf16"})  # ... unless it set that value itself
    commit("epochs: 15", "epochs: 2")                    # train.epochs, upstream of both
    assert not current(evaluate, {"train.precision": "bf16"})


def test_the_text_grid_is_a_view_of_the_main_grids_own_experiments():
    """Same names with other overrides would make the two grids re-run each other's experiments."""
    main, text = (g.load_grid(REPO / f, REPO) for f in ("experiments.yaml", "experiments-text.yaml"))
    assert set(text.configs) <= set(main.configs)
    assert {n: text.configs[n] for n in text.configs} == {n: main.configs[n] for n in text.configs}
    assert (text.seeds, text.seed_params, text.targets) == (main.seeds, main.seed_params, main.targets)


def test_starting_queue_workers_returns_while_the_workers_run(tmp_path, monkeypatch):
    """`dvc queue start` leaves workers behind that inherit its output: the call must not wait for them."""
    import time
    fake = tmp_path / "bin" / "dvc"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho started $@\nsleep 60 &\n")   # a 'worker' holding stdout for a minute
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:{os.environ['PATH']}")
    began = time.monotonic()
    g.start_workers(tmp_path, 2)
    assert time.monotonic() - began < 30
    assert (tmp_path / ".dvc" / "tmp" / "queue-start.log").read_text() == "started queue start -j 2\n"


def test_a_collect_that_leaves_out_experiments_of_the_previous_snapshot_names_them(tmp_path, monkeypatch, capsys):
    import results_table
    (tmp_path / "grid.yaml").write_text("seeds: [0, 1]\nconfigs:\n  a: {}\nmetrics: [ecg_to_text_r1]\nclaims: []\n")
    (tmp_path / "README.md").write_text(f"# t\n{g.BEGIN}\n{g.END}\n")
    (tmp_path / "grid.json").write_text(json.dumps({"note": "n", "experiments": [exp("a", 0, 0.5), exp("a", 1, 0.6)]}))
    monkeypatch.setattr(results_table.g, "collect", lambda grid, root, earlier: {"experiments": [exp("a", 0, 0.5)]})
    assert results_table.main(["--grid", str(tmp_path / "grid.yaml"), "--results", str(tmp_path / "grid.json"),
                               "--readme", str(tmp_path / "README.md"), "--collect"]) == 0
    assert "warning: 1 experiment(s) of the previous snapshot are not current experiments here and were left " \
           "out: a-s1;" in capsys.readouterr().err
    assert json.loads((tmp_path / "grid.json").read_text())["note"] == "n"


def test_an_earlier_snapshot_keeps_exactly_its_rows_on_current_code_and_params(grid):
    def row(name, baseline="cur", **params):
        config, seed = name.rsplit("-s", 1)
        return {"name": name, "config": config, "seed": int(seed), "baseline": baseline,
                "params": {"train.seed": int(seed), "train.loss": "infonce", "data.source": "synthetic", **params}}
    rows = [row("a-s0"), row("a-s1", baseline="old"), row("a-s2", **{"data.source": "local"}),
            row("b-s0", **{"train.loss": "cosine"}), row("z-s0"), row("a-s3")]
    kept = g.still_current(grid, rows, lambda b: b == "cur", head={"data.source": "synthetic"})
    # a-s1: other code; a-s2: other params than HEAD's; b-s0: lacks b's overrides; z, a-s3: not cells of the grid
    assert [r["name"] for r in kept] == ["a-s0"]


def test_the_code_check_runs_one_git_diff_per_baseline(grid, monkeypatch):
    calls = []
    monkeypatch.setattr(g, "same_code", lambda root, baseline, *_: calls.append(baseline) or baseline == "head")
    is_current = g.current_code(grid, REPO)
    assert [is_current(b) for b in ("head", "old", "head", "head", "old")] == [True, False, True, True, False]
    assert calls == ["head", "old"]


def test_experiments_are_queued_seed_by_seed(grid):
    """A grid stopped part-way must leave paired seeds: every configuration's seed 0 before any seed 1."""
    missing = g.plan(grid, {}, lambda b: True).missing
    assert [n for n, _ in g.queue_order(grid, missing)] == ["a-s0", "b-s0", "c-s0", "a-s1", "b-s1", "c-s1",
                                                            "a-s2", "b-s2", "c-s2"]
    assert dict(g.queue_order(grid, missing)) == dict(missing)


def test_two_level_interval_resamples_seeds_and_each_runs_test_records():
    """Without kept resamples each run is redrawn from its recorded interval, the arms independently (False)."""
    claim = g.Claim("a beats b", "a", "b", "m", "higher")

    def run(config, seed, value, half=None):
        extra = {} if half is None else {"m_ci_low": value - half, "m_ci_high": value + half}
        return exp(config, seed, 0.5, m=value, ci_level=0.95, **extra)

    # no test-record spread: the seed bootstrap of the differences 0.1 and 0.3 alone, means in {0.1, 0.2, 0.3}
    flat = {"experiments": [run("a", 0, 0.6, 0.0), run("a", 1, 0.8, 0.0), run("b", 0, 0.5, 0.0), run("b", 1, 0.5, 0.0)]}
    assert g.two_level(flat, claim) == (pytest.approx(0.1), pytest.approx(0.3), False)
    # each run's interval (se 0.05 a run) widens it beyond the seeds' spread
    wide = {"experiments": [run("a", 0, 0.6, 0.098), run("a", 1, 0.8, 0.098), run("b", 0, 0.5, 0.098),
                            run("b", 1, 0.5, 0.098)]}
    low, high, paired = g.two_level(wide, claim)
    assert low < 0.05 and high > 0.35 and not paired and g.two_level(wide, claim) == (low, high, False)   # seeded
    # a run without a recorded interval: no two-level interval
    assert g.two_level({"experiments": [run("a", 0, 0.6), run("a", 1, 0.8), run("b", 0, 0.5), run("b", 1, 0.5)]},
                       claim) is None


def test_two_level_interval_pairs_the_arms_on_the_kept_resamples():
    """Kept resamples: the arms of a seed drawn on the same resample. Test-set noise both arms share cancels (the
    unpaired interval of the same runs is far wider); a run without them falls back to the unpaired one."""
    claim = g.Claim("a beats b", "a", "b", "m", "higher")
    rng = np.random.default_rng(0)
    shared = {s: rng.normal(0, 0.05, 200) for s in (0, 1)}   # each seed's test-set noise, common to both arms

    def run(config, seed, value, kept=True):
        e = exp(config, seed, 0.5, m=value, m_ci_low=value - 0.098, m_ci_high=value + 0.098, ci_level=0.95)
        if kept:
            e["resamples"] = {"m": [round(v, 5) for v in (value + shared[seed]).tolist()]}
        return e

    runs = [run("a", 0, 0.6), run("a", 1, 0.8), run("b", 0, 0.5), run("b", 1, 0.5)]
    low, high, paired = g.two_level({"experiments": runs}, claim)
    assert paired and (low, high) == (pytest.approx(0.1, abs=1e-4), pytest.approx(0.3, abs=1e-4))
    unpaired = g.two_level({"experiments": runs[:3] + [run("b", 1, 0.5, kept=False)]}, claim)
    assert not unpaired[2] and unpaired[0] < 0.05 and unpaired[1] > 0.35
    # two figures of one run (b_metric) pair the same way
    both = g.Claim("m beats n", "a", "a", "m", "higher", b_metric="n")
    for e, base in zip(runs[:2], (0.5, 0.5)):
        e["metrics"]["metrics/eval.json"]["n"] = base
        e["resamples"]["n"] = [round(v, 5) for v in (base + shared[e["seed"]]).tolist()]
    assert g.two_level({"experiments": runs}, both)[2] is True


def test_the_collector_keeps_the_resamples_of_the_keys_the_claims_cite(tmp_path):
    env = dict(os.environ, GIT_AUTHOR_NAME="test", GIT_AUTHOR_EMAIL="test@example.com",
               GIT_COMMITTER_NAME="test", GIT_COMMITTER_EMAIL="test@example.com")
    run(["git", "init", "-q"], tmp_path, env)
    (tmp_path / "f").write_text("x\n")
    run(["git", "add", "-A"], tmp_path, env)
    run(["git", "commit", "-qm", "before"], tmp_path, env)
    before = run(["git", "rev-parse", "HEAD"], tmp_path, env).strip()
    (tmp_path / "metrics").mkdir()
    from ecgalign.resamples import write_resamples
    write_resamples(tmp_path / "metrics" / "eval_resamples.json", {"m": [0.5, None], "n": [0.25, 0.75],
                                                                   "other": [1.0, 1.0]}, 3, 1000)
    write_resamples(tmp_path / "metrics" / "minirocket_resamples.json", {"r": [0.5, 0.5]}, 3, 1000)
    run(["git", "add", "-A"], tmp_path, env)
    run(["git", "commit", "-qm", "after"], tmp_path, env)
    after = run(["git", "rev-parse", "HEAD"], tmp_path, env).strip()
    grid = g.Grid([0], ["train.seed"], {"a": {}, "b": {}}, [], claims=[
        g.Claim("t", "a", "b", "m", "higher", b_metric="metrics/minirocket.json:r"),
        g.Claim("u", "a", "b", "metrics/train.json:epochs", "higher"), g.Claim("v", "a", "b", "n", "higher")])
    keys = g.cited_keys(grid)
    assert keys == ["m", "metrics/minirocket.json:r", "metrics/train.json:epochs", "n"]
    assert g.kept_resamples(tmp_path, after, keys) == {"m": [0.5, None], "metrics/minirocket.json:r": [0.5, 0.5],
                                                       "n": [0.25, 0.75]}   # train.json kept none
    assert g.kept_resamples(tmp_path, before, keys) == {}   # a run older than the files


def test_a_grid_never_collected_is_one_error_line_saying_what_to_run(tmp_path, capsys):
    import results_table
    (tmp_path / "experiments-new.yaml").write_text("configs:\n  a: {}\nmetrics: [m]\nclaims: []\n")
    assert results_table.main(["--grid", str(tmp_path / "experiments-new.yaml"), "--results",
                               str(tmp_path / "grid-new.json"), "--readme", str(tmp_path / "README.md")]) == 2
    assert capsys.readouterr().err == (f"error: {tmp_path / 'grid-new.json'} not found: the grid has not been run "
                                       f"and collected yet (make grid GRID=experiments-new.yaml)\n")


def test_a_new_stage_in_dvc_yaml_leaves_a_grid_of_other_stages_current(tmp_path):
    """dvc.yaml counts by the definitions of the stages a grid runs: a stage added elsewhere stales nothing, a changed
    definition of a stage the grid runs does."""
    env = dict(os.environ, GIT_AUTHOR_NAME="test", GIT_AUTHOR_EMAIL="test@example.com",
               GIT_COMMITTER_NAME="test", GIT_COMMITTER_EMAIL="test@example.com")
    shutil.copy(REPO / "dvc.yaml", tmp_path / "dvc.yaml")
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "init"]):
        run(cmd, tmp_path, env)
    base = run(["git", "rev-parse", "HEAD"], tmp_path, env).strip()
    stages = g.run_stages(tmp_path, ["train"])
    spec = (tmp_path / "dvc.yaml").read_text()
    (tmp_path / "dvc.yaml").write_text(spec + "  extra:\n    cmd: python src/extra.py\n    deps: [data/model]\n")
    run(["git", "commit", "-qam", "a new stage"], tmp_path, env)
    assert g.same_code(tmp_path, base, ["dvc.yaml"], stages)
    assert not g.same_code(tmp_path, base, ["dvc.yaml"], ())      # the whole pipeline: the new stage is in it
    moved = yaml.safe_load(spec)   # train's checkpoint moved to a metrics declaration: no figure changes
    train = moved["stages"]["train"]
    train["metrics"] = [*train.get("metrics", []), train["outs"].pop(0)]
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump(moved))
    run(["git", "commit", "-qam", "an output declared elsewhere"], tmp_path, env)
    assert g.same_code(tmp_path, base, ["dvc.yaml"], stages)
    (tmp_path / "dvc.yaml").write_text(spec.replace("python src/train_alignment.py", "python src/train_alignment.py -v"))
    run(["git", "commit", "-qam", "train's command changed"], tmp_path, env)
    assert not g.same_code(tmp_path, base, ["dvc.yaml"], stages)


def test_a_snapshot_leaves_the_resamples_files_to_the_kept_resamples():
    """The resamples files are declared metrics (so that DVC keeps the stage in its run cache), and DVC reports their
    data with the others; a results row keeps only the cited keys' resamples, not every figure's 200 values."""
    grid = g.Grid([0], ["train.seed"], {"a": {}}, [], claims=[])
    data = {"params": {"params.yaml": {"data": {"train": {"seed": 0}}}},
            "metrics": {"metrics/eval.json": {"data": {"m": 0.5}},
                        "metrics/eval_resamples.json": {"data": {"seed": 0, "figures": {"m": [0.5, 0.25]}}}}}
    found = {"a-s0": [{"baseline": "head", "state": "success", "rev": "r", "data": data}]}
    rows = g.snapshot(grid, found, lambda b: True, head={})["experiments"]
    assert rows[0]["metrics"] == {"metrics/eval.json": {"m": 0.5}}


def test_a_grid_without_claims_renders_its_table_and_no_verdicts(tmp_path):
    (tmp_path / "grid.yaml").write_text("seeds: [0, 1]\nconfigs:\n  a: {}\nmetrics: [ecg_to_text_r1]\nclaims: []\n")
    grid = g.load_grid(tmp_path / "grid.yaml", tmp_path)
    block = g.render(grid, {"experiments": [exp("a", 0, 0.5), exp("a", 1, 0.7)]})
    assert "| a | " in block and "0.600 ± 0.141" in block
    assert "Verdicts are" not in block and "| claim |" not in block
