"""reports stage: data/reports.jsonl, one structured report per record (see ecgalign.reports), with PTB-XL's own
free-text report beside it, as written (report_de) and in English (report_en, ecgalign.translate); metrics/reports.json
gets the translation's coverage (shares of word tokens translated, already English, unknown) and its commonest
unknown words."""
import time

from ecgalign import params, ptbxl, reports, translate
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
    translations = reports.add_free_text(records, db, translate.Translator())
    free = translate.coverage(translations)
    n_missing = sum(not r["report_de"].strip() for r in records)
    n_no_words = sum(bool(r["report_de"].strip()) and not t.n_words for r, t in zip(records, translations))
    reports.write_reports(REPORTS, records)
    write_json(REPORTS_METRICS, {"n_records": len(records), "n_skipped": len(skipped),
                                 "skipped_ecg_ids": [e for e, _ in skipped[:100]],
                                 "free_text": {"n_distinct_reports": len({r["report_en"] for r in records}),
                                               "n_missing": n_missing, "n_without_words": n_no_words, **free}})
    print(f"reports: {len(records)} reports, {len(skipped)} skipped, in {time.time() - start:.2f} s; free text: "
          f"{free['share_translated']:.1%} of {free['n_word_tokens']} word tokens translated, "
          f"{free['share_english']:.1%} already English, {free['share_unknown']:.2%} unknown (kept), "
          f"{free['share_dropped_edit']:.1%} dropped (edit: annotations); {n_missing} missing, {n_no_words} without "
          f"words (report_en \"\")")
    if free["top_unknown"]:
        print("reports: commonest unknown words: " + ", ".join(f"{w} ({c})" for w, c in free["top_unknown"][:10]))


if __name__ == "__main__":
    from ecgalign.cost import measured
    with measured("reports"):
        run(main)
