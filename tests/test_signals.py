"""The signals stage on real PTB-XL records: equal to wfdb.rdsamp, row order, training-fold stats, bad records."""
import shutil

import numpy as np
import pytest
import wfdb

from ecgalign import ptbxl
from ecgalign.signals import SignalError, extract, load_signals, parse_header, read_record


def table_rows(root, n, rate, start=0):
    """The first n rows (from `start`) of the table whose records at `rate` exist, as reports.jsonl rows."""
    db = ptbxl.read_database(root)
    col = ptbxl.filename_column(rate)
    db = db[[(root / f"{r}.hea").is_file() for r in db[col]]].iloc[start:start + n]
    return db[["ecg_id", "strat_fold", "filename_lr", "filename_hr"]].to_dict("records")


def rdsamp(root, record):
    return wfdb.rdsamp(str(root / record))[0].T.astype(np.float32)


@pytest.mark.parametrize("rate,n,workers", [(100, 50, 1), (100, 50, 2), (500, 10, 2)])
def test_equals_rdsamp_in_report_order(ptbxl_mini, tmp_path, rate, n, workers):
    rows = table_rows(ptbxl_mini, n, rate)[::-1]  # reversed: the array must follow the rows, not ecg_id
    stats = extract(rows, ptbxl_mini, rate, [1, 2, 3, 4, 5, 6, 7, 8], tmp_path / "signals", workers=workers,
                    chunk_size=7, progress=False)
    x, loaded = load_signals(tmp_path / "signals")
    assert isinstance(x, np.memmap) and x.dtype == np.float32
    assert x.shape == (n, 12, ptbxl.SAMPLES[rate]) and loaded.items() <= stats.items() and "seconds" not in loaded
    col = ptbxl.filename_column(rate)
    for i, row in enumerate(rows):
        np.testing.assert_array_equal(x[i], rdsamp(ptbxl_mini, row[col]), err_msg=f"ecg_id {row['ecg_id']}")
    assert stats["fast_path_records"] == n and stats["n_records"] == n and stats["sampling_rate"] == rate


def test_stats_use_training_folds_only(ptbxl_mini, tmp_path):
    rows = table_rows(ptbxl_mini, 12, 100)
    folds = {r["strat_fold"] for r in rows}
    train = sorted(folds)[: len(folds) // 2]
    stats = extract(rows, ptbxl_mini, 100, train, tmp_path / "s", workers=1, chunk_size=5, progress=False)
    x = np.stack([rdsamp(ptbxl_mini, r["filename_lr"]) for r in rows]).astype(np.float64)
    mask = np.array([r["strat_fold"] in train for r in rows])
    assert 0 < mask.sum() < len(rows)
    np.testing.assert_allclose(stats["mean"], x[mask].mean(axis=(0, 2)), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(stats["std"], x[mask].std(axis=(0, 2)), rtol=1e-9)
    assert not np.allclose(stats["mean"], x.mean(axis=(0, 2)), rtol=1e-3)  # all folds would give other numbers
    assert stats["n_train_records"] == mask.sum() and stats["train_folds"] == train


# --- bad records: a tmp copy of five real records, the third one broken -------------------------------------------

@pytest.fixture
def five(ptbxl_mini, tmp_path):
    rows = table_rows(ptbxl_mini, 5, 100)
    root = tmp_path / "ptbxl"
    for r in rows:
        for f in ptbxl.record_files(r["filename_lr"]):
            (root / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(ptbxl_mini / f, root / f)
    return root, rows, rows[2]


def edit_header(path, record_line=None, drop_last=False, line_edit=None):
    lines = path.read_text().splitlines()
    if record_line:
        lines[0] = record_line(lines[0].split())
    if drop_last:
        lines = lines[:-1]
    if line_edit:
        lines = line_edit(lines)
    path.write_text("\n".join(lines) + "\n")


def replace_sample(root, rec, value):
    """Set lead I's first sample to `value` and fix the header checksum so only the value itself is wrong."""
    dat, hea = root / f"{rec}.dat", root / f"{rec}.hea"
    d = np.fromfile(dat, dtype="<i2")
    old, d[0] = int(d[0]), value
    d.tofile(dat)

    def fix(lines):
        f = lines[1].split()
        f[6] = str((int(f[6]) - old + value) % 65536)
        return [lines[0], " ".join(f)] + lines[2:]
    edit_header(hea, line_edit=fix)


def swap_v1_v2(lines):
    lines[7], lines[8] = lines[8], lines[7]
    return lines


BAD = {
    "missing .hea": (lambda root, rec: (root / f"{rec}.hea").unlink(), "header file missing"),
    "missing .dat": (lambda root, rec: (root / f"{rec}.dat").unlink(), "signal file missing"),
    "truncated .dat": (lambda root, rec: (root / f"{rec}.dat").write_bytes((root / f"{rec}.dat").read_bytes()[:-2]),
                       "23998 bytes, expected 24000"),
    "11 leads": (lambda root, rec: edit_header(root / f"{rec}.hea", lambda f: " ".join([f[0], "11"] + f[2:]), True),
                 "declares 11 leads, expected 12"),
    "fs 250": (lambda root, rec: edit_header(root / f"{rec}.hea", lambda f: " ".join(f[:2] + ["250"] + f[3:])),
               "sampling frequency 250 Hz in the header, expected 100 Hz"),
    "length 999": (lambda root, rec: edit_header(root / f"{rec}.hea", lambda f: " ".join(f[:3] + ["999"] + f[4:])),
                   "signal length 999 samples in the header, expected 1000"),
    "lead order": (lambda root, rec: edit_header(root / f"{rec}.hea", line_edit=swap_v1_v2),
                   "are not the 12 PTB-XL leads in order"),
    "checksum": (lambda root, rec: (root / f"{rec}.dat").write_bytes(b"\x07\x00" + (root / f"{rec}.dat")
                                                                      .read_bytes()[2:]), "the file is corrupt"),
    "non-finite": (lambda root, rec: replace_sample(root, rec, -32768),
                   "1 non-finite sample(s), first in lead I at sample 0"),
}


@pytest.mark.parametrize("case", BAD)
def test_bad_record_is_an_error_naming_it(five, tmp_path, case):
    root, rows, bad = five
    damage, message = BAD[case]
    damage(root, bad["filename_lr"])
    out = tmp_path / "out" / "signals"
    with pytest.raises(SignalError, match=f"ecg_id {bad['ecg_id']}: .*{bad['filename_lr'][-8:]}.*") as e:
        extract(rows, root, 100, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], out, workers=2 if case == "fs 250" else 1,
                chunk_size=2, progress=False)
    assert message in str(e.value)
    assert not out.exists() and list(out.parent.iterdir()) == []  # no signals.npy, no temp folder left
    if case == "fs 250":   # read by a worker process: the error arrives as itself, no worker traceback chained
        assert type(e.value) is SignalError and e.value.__cause__ is None and e.value.__suppress_context__


def test_a_dead_worker_is_an_error_not_a_hang(five, tmp_path, monkeypatch):
    """A reader process killed mid-record (SIGKILL, the OOM killer) fails the stage naming its rows."""
    import os
    import signal

    from ecgalign import signals
    root, rows, bad = five
    real = signals.read_record

    def read(root_, record, sampling_rate, ecg_id=None):
        if ecg_id == bad["ecg_id"]:
            os.kill(os.getpid(), signal.SIGKILL)
        return real(root_, record, sampling_rate, ecg_id)
    monkeypatch.setattr(signals, "read_record", read)   # the workers are forked: they see the patch
    out = tmp_path / "signals"
    with pytest.raises(SignalError, match=rf"a reader process died .* while reading ecg_id {bad['ecg_id']}-"):
        extract(rows, root, 100, list(range(1, 11)), out, workers=2, chunk_size=1, progress=False)
    assert not out.exists()


def test_failed_run_keeps_the_previous_output(five, tmp_path):
    root, rows, bad = five
    out = tmp_path / "signals"
    extract(rows, root, 100, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], out, workers=1, progress=False)
    before = (out / "signals.npy").read_bytes()
    (root / f"{bad['filename_lr']}.dat").unlink()
    with pytest.raises(SignalError):
        extract(rows, root, 100, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], out, workers=1, progress=False)
    assert (out / "signals.npy").read_bytes() == before


def test_other_wfdb_formats_go_through_rdsamp(five, tmp_path):
    """A format-212 record (not the fast path) is read by wfdb.rdsamp and checked the same way."""
    root, rows, bad = five
    rec = bad["filename_lr"]
    sig, fields = wfdb.rdsamp(str(root / rec))
    folder, name = (root / rec).parent, (root / rec).name
    for f in ptbxl.record_files(rec):
        (root / f).unlink()
    wfdb.wrsamp(name, fs=100, units=fields["units"], sig_name=fields["sig_name"], p_signal=sig, fmt=["212"] * 12,
                adc_gain=[1000.0] * 12, baseline=[0] * 12, write_dir=str(folder))
    assert not parse_header(root / f"{rec}.hea", bad["ecg_id"]).fast
    x, fast = read_record(root, rec, 100, bad["ecg_id"])
    assert not fast
    np.testing.assert_array_equal(x, rdsamp(root, rec))
    stats = extract(rows, root, 100, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], tmp_path / "s", workers=1, progress=False)
    assert (stats["fast_path_records"], stats["wfdb_records"]) == (4, 1)
    edit_header(root / f"{rec}.hea", lambda f: " ".join(f[:2] + ["250"] + f[3:]))
    with pytest.raises(SignalError, match=f"ecg_id {bad['ecg_id']}: .*sampling frequency 250 Hz"):
        read_record(root, rec, 100, bad["ecg_id"])


def test_rows_and_folds_are_checked(five, tmp_path):
    root, rows, _ = five
    with pytest.raises(SignalError, match=r"reports row 2 \(ecg_id 2\): field 'filename_lr' missing"):
        extract([rows[0], {"ecg_id": 2, "strat_fold": 1}], root, 100, [1], tmp_path / "s", progress=False)
    folds = sorted({r["strat_fold"] for r in rows})
    other = [f for f in range(1, 11) if f not in folds][:1]
    with pytest.raises(SignalError, match="no record is in the training folds"):
        extract(rows, root, 100, other, tmp_path / "s", progress=False)
    assert not (tmp_path / "s").exists()


def test_load_signals_errors(tmp_path, five):
    with pytest.raises(SignalError, match="run the signals stage first"):
        load_signals(tmp_path / "nothing")
    root, rows, _ = five
    extract(rows, root, 100, list(range(1, 11)), tmp_path / "s", workers=1, progress=False)
    np.save(tmp_path / "s" / "signals.npy", np.zeros((4, 12, 1000), np.float32))
    with pytest.raises(SignalError, match=r"shape \(4, 12, 1000\) float32 does not match"):
        load_signals(tmp_path / "s")
