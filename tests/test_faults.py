"""The fault matrix (cases in tests/faults.py, shared with bench/fault_matrix.py): every broken input, interruption
and misuse ends in its documented error (type + message naming file, ecg_id, field or param key) or a counted skip,
and leaves no partial artifact under a final name and no temporary file behind."""
import pytest

from faults import CASES, SLOW, run_case


def _param(case):
    marks = [pytest.mark.xfail(reason=f"not handled yet; proposed fix: {case.gap}", strict=True)] if case.gap else []
    return pytest.param(case, id=f"{case.group}-{case.name}", marks=marks)


@pytest.mark.parametrize("case", [_param(c) for c in CASES + SLOW])
def test_fault_is_handled(case, tmp_path, fault_cache):
    outcome = run_case(case, tmp_path, fault_cache)
    if outcome.status == "skipped":
        pytest.skip(outcome.detail)
    assert not outcome.problems, f"[{case.group}] {case.name}: " + "; ".join(outcome.problems)
