"""reports stage: data/reports.jsonl, one structured report per record (see ecgalign.reports)."""
import time

from ecgalign import params, ptbxl, reports
from ecgalign.artifacts import RAW, REPORTS, REPORTS_METRICS
from ecgalign.atomic import write_json
from ecgalign.errors import run


def main() -> None:
    p = params.load()
    start = time.time()
    db = ptbxl.read_database(RAW)
    records, skipped = reports.build_reports(db, ptbxl.read_statements(RAW), on_error=p.reports.on_error)
    for ecg_id, reason in skipped[:10]:
        print(f"reports: skipped {reason}")
    if not records:
        raise reports.ReportError(f"{RAW / ptbxl.DATABASE}: every one of {len(db)} records was skipped")
    folds = {r["strat_fold"] for r in records}
    for name in ("train_folds", "val_folds", "test_folds"):
        chosen = getattr(p.split, name)
        if not folds & set(chosen):
            raise ptbxl.DataError(f"split.{name}={chosen}: no record of the dataset is in these folds "
                                  f"(folds present: {sorted(folds)})")
    reports.write_reports(REPORTS, records)
    write_json(REPORTS_METRICS, {"n_records": len(records), "n_skipped": len(skipped),
                                 "skipped_ecg_ids": [e for e, _ in skipped[:100]]})
    print(f"reports: {len(records)} reports, {len(skipped)} skipped, in {time.time() - start:.2f} s")


if __name__ == "__main__":
    from ecgalign.cost import measured
    with measured("reports"):
        run(main)
