"""The PTB-XL benchmark label rules on hand-made cases, and the published class counts on the full label table."""
import numpy as np
import pandas as pd
import pytest

from ecgalign import labels as lb

# code: diagnostic, form, rhythm, diagnostic_class, diagnostic_subclass
TABLE = pd.DataFrame.from_dict({
    "NORM": (1.0, None, None, "NORM", "NORM"), "IMI": (1.0, None, None, "MI", "IMI"),
    "ASMI": (1.0, None, None, "MI", "AMI"), "NDT": (1.0, 1.0, None, "STTC", "STTC"),
    "PVC": (None, 1.0, None, None, None), "LVOLT": (None, 1.0, None, None, None),
    "SR": (None, None, 1.0, None, None), "AFIB": (None, None, 1.0, None, None),
    "LVH": (1.0, None, None, "HYP", "LVH"),
}, orient="index", columns=["diagnostic", "form", "rhythm", "diagnostic_class", "diagnostic_subclass"])

RECORDS = [
    {"NORM": 100.0, "SR": 0.0},                 # 0: superdiagnostic NORM, rhythm SR
    {"IMI": 15.0, "ASMI": 0.0, "AFIB": 0.0},    # 1: likelihood 0 counts: MI (IMI, AMI), AFIB
    {"PVC": 0.0, "LVOLT": 0.0},                 # 2: form only: out of every diagnostic task and of rhythm
    {"NDT": 50.0, "SR": 0.0},                   # 3: NDT is diagnostic (STTC) and form
]


def test_superdiagnostic_and_rhythm_of_hand_cases():
    y, classes, keep = lb.task_labels(RECORDS, TABLE, "superdiagnostic")
    assert classes == ["NORM", "MI", "STTC"]   # the benchmark's order; HYP: no record carries LVH, so no class
    assert y.astype(int).tolist() == [[1, 0, 0], [0, 1, 0], [0, 0, 0], [0, 0, 1]]
    assert keep.tolist() == [True, True, False, True]
    y, classes, keep = lb.task_labels(RECORDS, TABLE, "rhythm")
    assert classes == ["AFIB", "SR"] and y.astype(int).tolist() == [[0, 1], [1, 0], [0, 0], [0, 1]]
    assert keep.tolist() == [True, True, False, True]


def test_sub_diagnostic_form_and_all():
    y, classes, keep = lb.task_labels(RECORDS, TABLE, "subdiagnostic")
    assert classes == ["AMI", "IMI", "NORM", "STTC"] and y[1].tolist() == [True, True, False, False]
    y, classes, keep = lb.task_labels(RECORDS, TABLE, "diagnostic")
    assert classes == ["ASMI", "IMI", "NDT", "NORM"] and keep.tolist() == [True, True, False, True]
    y, classes, keep = lb.task_labels(RECORDS, TABLE, "form")
    assert classes == ["LVOLT", "NDT", "PVC"] and keep.tolist() == [False, False, True, True]
    y, classes, keep = lb.task_labels(RECORDS, TABLE, "all")
    assert len(classes) == 8 and keep.all() and y.sum() == 9


def test_prompt_statements_and_errors():
    assert lb.class_statements(TABLE, "superdiagnostic")["MI"] == ["IMI", "ASMI"]
    assert lb.class_statements(TABLE, "rhythm") == {"SR": ["SR"], "AFIB": ["AFIB"]}
    with pytest.raises(ValueError, match="unknown benchmark task 'super'"):
        lb.task_labels(RECORDS, TABLE, "super")
    with pytest.raises(ValueError, match="no column 'diagnostic_subclass'"):
        lb.task_labels(RECORDS, TABLE.drop(columns="diagnostic_subclass"), "subdiagnostic")


def test_published_class_counts_on_the_full_table(ptbxl_metadata):
    from ecgalign.ptbxl import read_database, read_statements
    from ecgalign.reports import parse_scp_codes

    db = read_database(ptbxl_metadata)
    table = read_statements(ptbxl_metadata)
    codes = [parse_scp_codes(s, i) for i, s in zip(db["ecg_id"], db["scp_codes"])]
    n_classes = {task: len(lb.task_labels(codes, table, task)[1]) for task in lb.TASKS}
    assert n_classes == {"superdiagnostic": 5, "subdiagnostic": 23, "diagnostic": 44, "form": 19, "rhythm": 12,
                         "all": 71}
    y, classes, keep = lb.task_labels(codes, table, "superdiagnostic")
    assert dict(zip(classes, y.sum(axis=0).tolist())) == {"NORM": 9528, "MI": 5486, "STTC": 5250, "CD": 4907,
                                                          "HYP": 2655}
    assert keep.sum() == int(np.sum(y.any(axis=1))) < len(db)
