"""The fault matrix (cases in tests/faults.py, shared with bench/fault_matrix.py): every broken input, interruption
and misuse ends in its documented error (its type, and a message naming the culprit: file, ecg_id, field or param key)
or a counted skip, and leaves no partial artifact under a final name and no temporary file behind."""
import pytest

from faults import CASES, SLOW, run_case


@pytest.mark.parametrize("case", CASES + SLOW, ids=lambda c: f"{c.group}-{c.name}")
def test_fault_is_handled(case, tmp_path, fault_cache):
    outcome = run_case(case, tmp_path, fault_cache)
    if outcome.status == "skipped":
        pytest.skip(outcome.detail)
    assert not outcome.problems, f"[{case.group}] {case.name}: " + "; ".join(outcome.problems)
