"""metrics/cost/<stage>.json: written by the stage that ran, with its own time and memory; nothing on failure."""
import json

import numpy as np
import pytest

from ecgalign.cost import measured
from ecgalign.errors import DataError, run


def test_a_stage_that_ends_writes_its_wall_time_cpu_time_and_peak_memory(tmp_path):
    with measured("train", tmp_path):
        block = np.ones((64, 1024, 1024), dtype=np.uint8)   # 64 MiB touched: the peak is at least that
        block.sum()
    cost = json.loads((tmp_path / "train.json").read_text())
    assert set(cost) == {"stage", "seconds", "cpu_seconds", "peak_rss_mb", "cpus"}
    assert cost["stage"] == "train" and cost["cpus"] >= 1
    assert cost["seconds"] >= 0 and cost["cpu_seconds"] >= 0
    assert cost["peak_rss_mb"] > 64


def test_a_failed_stage_writes_nothing(tmp_path, capsys):
    def main():
        raise DataError("record 7: bad")
    with pytest.raises(SystemExit):
        with measured("reports", tmp_path):
            run(main)
    assert not (tmp_path / "reports.json").exists()
    assert capsys.readouterr().err == "error: record 7: bad (fix or replace the dataset (data.source, data.path), " \
                                      "then rerun dvc repro)\n"


def test_only_rank_0_writes_under_torchrun(tmp_path, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    with measured("train", tmp_path):
        pass
    assert not (tmp_path / "train.json").exists()
