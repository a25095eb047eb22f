"""The PTB-XL table layer: clear errors for broken tables and missing records."""
import shutil

import pytest

from ecgalign import ptbxl

HEADER = "ecg_id,scp_codes,strat_fold,filename_lr,filename_hr\n"
ROW = "{i},\"{{'NORM': 100.0}}\",{fold},records100/00000/{i:05d}_lr,records500/00000/{i:05d}_hr\n"


def _write(tmp_path, text, encoding="utf-8"):
    (tmp_path / ptbxl.DATABASE).write_bytes(text.encode(encoding) if isinstance(text, str) else text)
    return tmp_path


@pytest.mark.parametrize("text, message", [
    ("ecg_id,scp_codes,strat_fold,filename_lr\n1,{},1,x\n", "missing column(s) ['filename_hr']"),
    (HEADER, "the table has no records"),
    ("", "the file is empty"),
    (HEADER + ROW.format(i=1, fold=1) + ROW.format(i=1, fold=2), "ecg_id 1 is listed more than once"),
    (HEADER + ROW.format(i=1, fold=11), "ecg_id 1: strat_fold 11 is outside 1-10"),
    (HEADER + "abc,{},1,x,y\n", "ecg_id 'abc' (row 2) is not an integer"),
    (HEADER.encode() + b"1,\"{'NORM': 100.0}\",1,r\xe9cords,x\n", "not UTF-8 text"),
])
def test_broken_tables(tmp_path, text, message):
    with pytest.raises(ptbxl.DataError) as e:
        ptbxl.read_database(_write(tmp_path, text))
    assert message in str(e.value) and ptbxl.DATABASE in str(e.value)


def test_missing_records_are_listed(ptbxl_mini, tmp_path):
    db = ptbxl.read_database(ptbxl_mini).head(5)
    for r in db["filename_lr"]:
        for f in ptbxl.record_files(r):
            (tmp_path / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(ptbxl_mini / f, tmp_path / f)
    ptbxl.check_records(tmp_path, db, 100)
    (tmp_path / "records100/00000/00002_lr.dat").unlink()
    (tmp_path / "records100/00000/00004_lr.hea").unlink()
    with pytest.raises(ptbxl.DataError, match=r"2 of 5 records at 100 Hz lack their .hea/.dat files, first: "
                                              r"records100/00000/00002_lr, records100/00000/00004_lr"):
        ptbxl.check_records(tmp_path, db, 100)
    with pytest.raises(ptbxl.DataError, match="5 of 5 records at 500 Hz"):
        ptbxl.check_records(tmp_path, db, 500)


def test_dataset_identity_is_the_checksum_of_the_tables_and_the_record_count(ptbxl_mini, tmp_path):
    import shutil
    for name in (ptbxl.DATABASE, ptbxl.STATEMENTS):
        shutil.copy(ptbxl_mini / name, tmp_path / name)
    ident = ptbxl.dataset_identity(tmp_path, source="local", sampling_rate=100, n_records=1000)
    assert ident["database_sha256"] == "d60a95c410ac107cc039b929fbe1e7fb1ffc5c5a8b65589a6a99e5117c3a6077"
    assert ident["dataset"] == "d60a95c410ac-1000" and ident["source"] == "local"
    (tmp_path / ptbxl.DATABASE).write_text((ptbxl_mini / ptbxl.DATABASE).read_text().replace("NORM", "IMI", 1))
    assert ptbxl.dataset_identity(tmp_path, n_records=1000)["dataset"] != ident["dataset"]   # a relabelled record
