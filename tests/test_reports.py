"""Reports: exact text for real PTB-XL records, the scp_codes parser on every real string and on malformed ones."""
import json

import pandas as pd
import pytest

from ecgalign import ptbxl
from ecgalign.reports import ReportError, build_reports, parse_scp_codes, read_reports, write_reports

EXPECTED = {
    1: "Normal/abnormal: normal ECG, Confidence score: 100.0\n"
       "Other QRS morphology descriptive statements: low QRS voltages in the frontal and horizontal leads, "
       "Confidence score: 0.0\n"
       "Statements related to impulse formation (abnormalities): sinus rhythm, Confidence score: 0.0",
    17: "Statements related to impulse formation (abnormalities): atrial flutter, Confidence score: 100.0\n"
        "Normal/abnormal: abnormal QRS, Confidence score: 0.0\n"
        "Statements related to impulse formation (abnormalities): atrial fibrillation, Confidence score: 0.0",
    39: "Myocardial Infarction: inferior myocardial infarction, Confidence score: 15.0\n"
        "other ST-T descriptive statements: long QT-interval, Confidence score: 100.0\n"
        "Basic roots for coding ST-T changes and abnormalities: non-specific ST changes, Confidence score: 100.0\n"
        "other ST-T descriptive statements: suggests digitalis-effect, Confidence score: 100.0\n"
        "Normal/abnormal: abnormal QRS, Confidence score: 0.0\n"
        "Statements related to impulse formation (abnormalities): sinus rhythm, Confidence score: 0.0",
}


def test_exact_reports_of_real_records(ptbxl_mini, tmp_path):
    db = ptbxl.read_database(ptbxl_mini)
    records, skipped = build_reports(db, ptbxl.read_statements(ptbxl_mini))
    assert skipped == [] and len(records) == 1000
    assert [r["ecg_id"] for r in records] == list(range(1, 1001))
    by_id = {r["ecg_id"]: r for r in records}
    for ecg_id, text in EXPECTED.items():
        assert by_id[ecg_id]["report"] == text
    assert by_id[1]["scp_codes"] == {"NORM": 100.0, "LVOLT": 0.0, "SR": 0.0}
    assert by_id[1]["strat_fold"] == 3 and by_id[1]["filename_lr"] == "records100/00000/00001_lr"
    # one line per code, in scp_codes order, for every record
    assert all(len(r["report"].split("\n")) == len(r["scp_codes"]) for r in records)
    write_reports(tmp_path / "r.jsonl", records)
    assert read_reports(tmp_path / "r.jsonl") == records
    first = json.loads((tmp_path / "r.jsonl").read_text().split("\n")[0])
    assert list(first) == ["ecg_id", "strat_fold", "filename_lr", "filename_hr", "scp_codes", "report"]


def test_parser_on_every_real_scp_codes_string(ptbxl_metadata):
    db = ptbxl.read_database(ptbxl_metadata)
    statements = ptbxl.read_statements(ptbxl_metadata)
    records, skipped = build_reports(db, statements)
    assert len(records) == 21837 and not skipped
    likelihoods = {v for r in records for v in r["scp_codes"].values()}
    assert likelihoods == {0.0, 10.0, 14.0, 15.0, 30.0, 34.0, 35.0, 50.0, 80.0, 100.0}
    assert sum(v == 0.0 for r in records for v in r["scp_codes"].values()) == 29027
    assert {len(r["scp_codes"]) for r in records} == set(range(1, 10))


@pytest.mark.parametrize("text, message", [
    ("{'NORM': 100.0", "is not a Python dict literal"),
    ("['NORM']", "is a list, not a dict"),
    ("{'NORM': 'high'}", "likelihood of NORM is 'high', not a number"),
    ("{'NORM': -5.0}", "likelihood of NORM is -5.0, outside 0-100"),
    ("{'NORM': 150.0}", "likelihood of NORM is 150.0, outside 0-100"),
    ("{'NORM': float('nan')}", "is not a Python dict literal"),
    ("{}", "is an empty dict"),
    ("__import__('os').system('echo pwned')", "is not a Python dict literal"),
    ("{1: 100.0}", "code 1 is not a string"),
])
def test_malformed_scp_codes_name_the_record(text, message):
    with pytest.raises(ReportError, match=r"ecg_id 42: scp_codes") as e:
        parse_scp_codes(text, 42)
    assert message in str(e.value)


def _table(*scp_codes):
    return pd.DataFrame({"ecg_id": range(1, len(scp_codes) + 1), "scp_codes": scp_codes,
                         "strat_fold": 1, "filename_lr": "x", "filename_hr": "y"})


def test_unknown_code_raises_or_is_counted_as_skip(ptbxl_mini):
    statements = ptbxl.read_statements(ptbxl_mini)
    db = _table("{'NORM': 100.0, 'SR': 0.0}", "{'XYZ': 50.0}", "not a dict")
    with pytest.raises(ReportError, match="ecg_id 2: scp_codes names 'XYZ', which scp_statements.csv does not"):
        build_reports(db, statements)
    records, skipped = build_reports(db, statements, on_error="skip")
    assert [r["ecg_id"] for r in records] == [1]
    assert [e for e, _ in skipped] == [2, 3]
