"""The synthetic PTB-XL: real layout and columns, PTB-XL's label conventions, determinism, and labels that can be
measured back out of the signals (rate, RR irregularity, QRS width, ST level)."""
import ast
import re

import numpy as np
import pandas as pd
import pytest
import wfdb
from scipy.signal import find_peaks, medfilt, peak_widths

from ecgalign import ptbxl, synthetic

N = 300
FS = 100
LIKELIHOODS = {15.0, 35.0, 50.0, 80.0, 100.0}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    stats = synthetic.generate(root, n_records=N, seed=0, sampling_rate=FS)
    db = ptbxl.read_database(root)
    db["codes"] = db["scp_codes"].map(ast.literal_eval)
    return root, db, stats


@pytest.fixture(scope="module")
def measured(dataset):
    """Per record: heart rate and RR variation from lead II R peaks, QRS width, ST level in inferior leads."""
    root, db, _ = dataset
    rows = []
    for rec in db.itertuples():
        x, _ = wfdb.rdsamp(str(root / rec.filename_lr))
        peaks = r_peaks(x[:, ptbxl.LEADS.index("II")])
        rr = np.diff(peaks) / FS
        inner = peaks[(peaks > 10) & (peaks < len(x) - 10)]
        inferior = x[:, [ptbxl.LEADS.index(lead) for lead in ("II", "III", "AVF")]].mean(1)
        rows.append({"codes": rec.codes, "hr": 60 / np.median(rr), "rr_cv": rr.std() / rr.mean(),
                     "qrs_ms": qrs_width_ms(x),
                     # ST level 80 ms after the R peak against the PR segment 60 ms before it
                     "st_inferior": np.median(inferior[inner + 8] - inferior[inner - 6])})
    return pd.DataFrame(rows)


def typical_max(a: np.ndarray) -> float:
    """Median of the 1-second maxima: the size of a typical beat, not of one large ectopic beat."""
    return float(np.median(a[: len(a) // FS * FS].reshape(-1, FS).max(1)))


def r_peaks(lead: np.ndarray) -> np.ndarray:
    """R peaks of one lead: the largest deflections (either sign), at least 300 ms apart."""
    a = np.abs(lead - np.median(lead))
    peaks, _ = find_peaks(a, distance=int(0.3 * FS), height=0.5 * typical_max(a))
    return peaks


def qrs_width_ms(x: np.ndarray) -> float:
    """Median width at half height of the QRS complexes of the spatial magnitude (12 leads, baseline removed)."""
    baseline = np.stack([medfilt(x[:, j], 61) for j in range(x.shape[1])], 1)
    m = np.sqrt(((x - baseline) ** 2).sum(1))
    peaks, _ = find_peaks(m, distance=int(0.3 * FS), height=0.5 * typical_max(m))
    return float(np.median(peak_widths(m, peaks, rel_height=0.5)[0]) / FS * 1000)


def having(df: pd.DataFrame, code: str, alone_with_rhythm: bool = False) -> pd.DataFrame:
    return df[df["codes"].map(lambda c: code in c and (not alone_with_rhythm or len(c) == 2))]


def files(root) -> dict:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# --- determinism -------------------------------------------------------------------------------------------------

def test_same_seed_gives_identical_bytes_and_another_seed_differs(tmp_path):
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        synthetic.generate(tmp_path / name, n_records=25, seed=seed)
    a, b, c = (files(tmp_path / name) for name in "abc")
    assert len(a) == 2 + 2 * 25 and a == b
    assert a.keys() == c.keys()
    assert a["ptbxl_database.csv"] != c["ptbxl_database.csv"]
    assert a["records100/00000/00001_lr.dat"] != c["records100/00000/00001_lr.dat"]


def test_first_records_do_not_depend_on_n_records(tmp_path, dataset):
    root, db, _ = dataset
    synthetic.generate(tmp_path, n_records=20, seed=0)
    small = ptbxl.read_database(tmp_path)
    assert small["scp_codes"].tolist() == db["scp_codes"][:20].tolist()
    assert small["strat_fold"].tolist() == db["strat_fold"][:20].tolist()
    for rec in ("records100/00000/00001_lr.dat", "records100/00000/00020_lr.hea"):
        assert (tmp_path / rec).read_bytes() == (root / rec).read_bytes()


# --- tables ------------------------------------------------------------------------------------------------------

def test_tables_have_the_real_headers_and_rows(dataset, ptbxl_metadata):
    root, db, _ = dataset
    real_header = (ptbxl_metadata / ptbxl.DATABASE).read_text(encoding="utf-8").splitlines()[0]
    assert (root / ptbxl.DATABASE).read_text(encoding="utf-8").splitlines()[0] == real_header
    real = pd.read_csv(ptbxl_metadata / ptbxl.STATEMENTS, index_col=0)
    ours = pd.read_csv(root / ptbxl.STATEMENTS, index_col=0)
    assert list(ours.columns) == list(real.columns)
    assert sorted(ours.index) == sorted(synthetic.CODES)
    pd.testing.assert_frame_equal(ours, real.loc[ours.index])          # copied values, the real file's order
    # frequencies near PTB-XL's
    real_codes = pd.read_csv(ptbxl_metadata / ptbxl.DATABASE, usecols=["scp_codes"])["scp_codes"].map(ast.literal_eval)
    for code in ("NORM", "SR", "IMI", "ASMI", "LVH"):
        share, real_share = having(db, code).shape[0] / N, real_codes.map(lambda c: code in c).mean()
        assert abs(share - real_share) < 0.1, (code, share, real_share)


def test_database_reads_and_follows_ptbxl_layout(dataset):
    root, db, stats = dataset
    assert list(pd.read_csv(root / ptbxl.DATABASE).columns) == list(synthetic.COLUMNS)
    assert db["ecg_id"].tolist() == list(range(1, N + 1))
    assert db["patient_id"].is_unique
    assert db.loc[9, "filename_lr"] == "records100/00000/00010_lr"
    assert db.loc[9, "filename_hr"] == "records500/00000/00010_hr"
    assert sorted(db["strat_fold"].unique()) == list(range(1, 11))
    assert db["strat_fold"].value_counts().tolist() == [N // 10] * 10
    assert set(db["sex"]) <= {0, 1} and db["age"].between(18, 95).all()
    dates = pd.to_datetime(db["recording_date"], format="%Y-%m-%d %H:%M:%S")
    assert dates.min() >= pd.Timestamp("1984-11-09") and dates.max() < pd.Timestamp("2002-01-01")
    statements = ptbxl.read_statements(root)
    assert set(statements.index) == set(synthetic.CODES)
    assert stats["n_records"] == N and sum(stats["fold_counts"].values()) == N
    assert stats["code_counts"]["SR"] == having(db, "SR").shape[0]


def test_every_fold_is_present_with_twenty_records(tmp_path):
    stats = synthetic.generate(tmp_path, n_records=20, seed=7)
    assert stats["fold_counts"] == {f: 2 for f in range(1, 11)}
    assert sorted(ptbxl.read_database(tmp_path)["strat_fold"].unique()) == list(range(1, 11))


def test_scp_codes_follow_ptbxl_conventions(dataset):
    root, db, _ = dataset
    statements = ptbxl.read_statements(root)
    diagnostic = set(statements.index[statements["diagnostic"] == 1])
    rhythm = set(statements.index[statements["rhythm"] == 1])
    mi = set(statements.index[statements["diagnostic_class"] == "MI"])
    for rec in db.itertuples():
        assert re.fullmatch(r"\{'[A-Z0-9_]+': \d+\.0(, '[A-Z0-9_]+': \d+\.0)*\}", rec.scp_codes), rec.scp_codes
        codes = rec.codes
        assert set(codes) <= set(statements.index), (rec.ecg_id, codes)
        for code, likelihood in codes.items():
            if code in diagnostic:
                assert likelihood in LIKELIHOODS, (rec.ecg_id, code, likelihood)
            else:
                assert likelihood == 0.0, (rec.ecg_id, code, likelihood)
        assert len(set(codes) & rhythm) == 1, (rec.ecg_id, codes)
        assert set(codes) & diagnostic, (rec.ecg_id, codes)
        if "NORM" in codes:
            assert not set(codes) & (mi | {"CLBBB", "CRBBB", "LVH", "ISC_", "AFIB"}), (rec.ecg_id, codes)
        assert not {"AFIB", "1AVB"} <= set(codes)
    n_codes = db["codes"].map(len)
    assert n_codes.between(2, 3).mean() > 0.75
    diag_likelihoods = [v for c in db["codes"] for k, v in c.items() if k in diagnostic]
    assert np.mean(np.array(diag_likelihoods) == 100.0) > 0.6
    assert 0.7 < having(db, "SR").shape[0] / N < 0.92


# --- records -----------------------------------------------------------------------------------------------------

def test_records_read_with_wfdb(dataset):
    root, db, _ = dataset
    assert not (root / "records500").exists()
    real_line = re.compile(r"\d{5}_lr\.dat 16 1000\.0\(0\)/mV 16 0 -?\d+ \d+ 0 (I|II|III|AVR|AVL|AVF|V[1-6])")
    for rec in db.iloc[[0, 1, N - 1]].itertuples():
        x, fields = wfdb.rdsamp(str(root / rec.filename_lr))
        assert x.shape == (1000, 12) and x.dtype == np.float64
        assert fields["fs"] == 100 and fields["sig_name"] == list(ptbxl.LEADS) and set(fields["units"]) == {"mV"}
        assert 0.2 < np.ptp(x[:, 1]) < 8.0                                  # a plausible lead II, in mV
        lines = (root / (rec.filename_lr + ".hea")).read_text().splitlines()
        assert lines[0] == f"{rec.ecg_id:05d}_lr 12 100 1000"
        assert all(real_line.fullmatch(line) for line in lines[1:]), lines


def test_writer_matches_wfdb_wrsamp(tmp_path):
    x = np.random.default_rng(0).normal(0, 1.5, (1000, 12)).round(3)
    synthetic.write_record(tmp_path / "ours" / "00007_lr", x, 100)
    (tmp_path / "wfdb").mkdir()
    wfdb.wrsamp("00007_lr", fs=100, units=["mV"] * 12, sig_name=list(ptbxl.LEADS), p_signal=x.copy(),
                fmt=["16"] * 12, adc_gain=[1000] * 12, baseline=[0] * 12, write_dir=str(tmp_path / "wfdb"))
    assert (tmp_path / "ours/00007_lr.dat").read_bytes() == (tmp_path / "wfdb/00007_lr.dat").read_bytes()
    ours = (tmp_path / "ours/00007_lr.hea").read_text().replace("1000.0(0)", "1000(0)")
    assert ours == (tmp_path / "wfdb/00007_lr.hea").read_text()             # PTB-XL writes the gain as 1000.0
    back, _ = wfdb.rdsamp(str(tmp_path / "ours/00007_lr"))
    np.testing.assert_allclose(back, x, atol=5e-4)


def test_500_hz_records(tmp_path):
    synthetic.generate(tmp_path, n_records=20, seed=1, sampling_rate=500)
    db = ptbxl.read_database(tmp_path)
    assert not (tmp_path / "records100").exists()
    x, fields = wfdb.rdsamp(str(tmp_path / db["filename_hr"].iloc[-1]))
    assert x.shape == (5000, 12) and fields["fs"] == 500
    ptbxl.check_records(tmp_path, db, 500)


@pytest.mark.parametrize("kwargs, message", [({"sampling_rate": 250}, "sampling_rate=250"),
                                             ({"n_records": 0}, "n_records=0")])
def test_bad_arguments_are_refused(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        synthetic.generate(tmp_path, **kwargs)
    assert not (tmp_path / ptbxl.DATABASE).exists()


# --- labels are measurable in the signals -------------------------------------------------------------------------

def test_heart_rate_follows_the_rhythm_code(measured):
    hr = {c: having(measured, c)["hr"].median() for c in ("SBRAD", "SR", "STACH")}
    assert hr["SBRAD"] < 60 < hr["SR"] < 100 < hr["STACH"], hr


def test_atrial_fibrillation_is_irregular(measured):
    sr = having(measured, "SR")
    sr = sr[~sr["codes"].map(lambda c: "PVC" in c)]
    afib = having(measured, "AFIB")
    assert afib["rr_cv"].median() > 0.12 > 0.05 > sr["rr_cv"].median(), (afib["rr_cv"].median(), sr["rr_cv"].median())


def test_bundle_branch_blocks_widen_the_qrs(measured):
    norm = having(measured, "NORM")["qrs_ms"].median()
    for code in ("CLBBB", "CRBBB"):
        width = having(measured, code)["qrs_ms"].median()
        assert width > norm + 30, (code, width, norm)


def test_inferior_infarction_raises_st_in_inferior_leads(measured):
    norm = having(measured, "NORM", alone_with_rhythm=True)["st_inferior"].median()
    imi = having(measured, "IMI")["st_inferior"].median()
    assert abs(norm) < 0.02 and imi > norm + 0.025, (imi, norm)

