"""How long the reports stage's work takes on the full 21,837-row PTB-XL table (target: under 5 s).

    python bench/bench_reports.py [PTB-XL folder with the two tables, default ../shared/ptbxl-metadata]
"""
import sys
import tempfile
import time
from pathlib import Path

from ecgalign import ptbxl, reports

root = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parents[2] / "shared" / "ptbxl-metadata")
if not (root / ptbxl.DATABASE).exists():
    sys.exit(f"{root} has no {ptbxl.DATABASE}: pass a PTB-XL folder")
times = []
for _ in range(3):
    start = time.perf_counter()
    db = ptbxl.read_database(root)
    records, skipped = reports.build_reports(db, ptbxl.read_statements(root))
    with tempfile.TemporaryDirectory() as tmp:
        reports.write_reports(Path(tmp) / "reports.jsonl", records)
    times.append(time.perf_counter() - start)
print(f"reports: {len(records)} records ({len(skipped)} skipped), read + parse + format + write: "
      f"best {min(times):.2f} s of 3 runs ({len(records) / min(times):,.0f} records/s); target < 5 s")
