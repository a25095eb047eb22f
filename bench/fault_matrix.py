"""The fault matrix (tests/faults.py) outside pytest: every case run once, one line each, then the count.

    python bench/fault_matrix.py                 # every case, the SIGKILL-and-resume one included
    python bench/fault_matrix.py -k download     # only cases whose group or name contains 'download'

Prints "N cases tried, N handled as documented"; exits 1 if a case is not handled as documented.
"""
import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# the cases are the test suite's (tests/faults.py) and run the stage scripts of src/: neither is part of the installed
# ecgalign package, so both folders are put on the path as pytest's own `pythonpath` setting does for the tests
sys.path[:0] = [str(REPO / "src"), str(REPO / "tests")]

from faults import CASES, SLOW, run_case  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-k", default="", help="run only cases whose 'group: name' contains this text")
    args = ap.parse_args()
    cases = [c for c in CASES + SLOW if args.k.lower() in f"{c.group}: {c.name}".lower()]
    outcomes, start = [], time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="fault-matrix-") as tmp:
        for i, case in enumerate(cases):
            o = run_case(case, Path(tmp) / f"case{i}", Path(tmp) / "cache")
            outcomes.append(o)
            detail = " ".join(o.detail.split())
            print(f"{o.status:>9}  [{case.group}] {case.name}: {detail[:160]}{'...' if len(detail) > 160 else ''}"
                  f"  ({o.seconds:.1f} s)", flush=True)
    tried = [o for o in outcomes if o.status != "skipped"]
    handled = sum(o.status == "handled" for o in tried)
    skipped = len(outcomes) - len(tried)
    print(f"{len(tried)} cases tried, {handled} handled as documented"
          + (f", {skipped} skipped" if skipped else "") + f" ({time.perf_counter() - start:.0f} s)")
    return int(any(o.status == "FAILED" for o in tried))


if __name__ == "__main__":
    sys.exit(main())
