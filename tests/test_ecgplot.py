"""ECG printouts: the 3x4 + rhythm-strip layout, paper scale (25 mm/s, 10 mm/mV, equal aspect), PNG output."""
import numpy as np
import pytest
from PIL import Image

from ecgalign import ecgplot
from ecgalign.ptbxl import LEADS


def test_layout_is_the_standard_3x4_plus_rhythm_strip():
    seg = ecgplot.segments(1000)
    assert len(seg) == 13
    assert seg[0] == ("I", 0, 0, 250) and seg[1] == ("AVR", 0, 250, 500) and seg[3] == ("V4", 0, 750, 1000)
    assert seg[4] == ("II", 1, 0, 250) and seg[11] == ("V6", 2, 750, 1000)
    assert seg[12] == ("II", 3, 0, 1000)
    assert sorted({s[0] for s in seg[:12]}) == sorted(LEADS)
    assert ecgplot.segments(5000)[3] == ("V4", 0, 3750, 5000)


def test_smooth_is_a_40ms_moving_average():
    a = np.zeros((1, 20))
    a[0, 10] = 4.0
    s = ecgplot.smooth(a, 100)            # 4 samples at 100 Hz
    assert s.sum() == pytest.approx(4.0) and s.max() == pytest.approx(1.0) and np.count_nonzero(s) == 4


@pytest.mark.parametrize("fs", [100, 500])
def test_plot_writes_a_png_at_paper_scale(tmp_path, fs):
    """A 1 mV, 10 s square-ish record: the PNG's width/height follows the 250 mm x 120 mm page (+ calibration)."""
    t = np.arange(10 * fs) / fs
    x = np.tile(np.sin(2 * np.pi * t) * 0.5, (12, 1))
    path = ecgplot.plot_ecg(x, fs, tmp_path / "ecg.png", title="ecg_id 1\nNormal ECG")
    w, h = Image.open(path).size
    assert 1.6 < w / h < 2.4                                    # (250 + 10) mm wide, 120 mm + title high
    a = ecgplot.plot_ecg(x, fs, tmp_path / "attr.png", attribution=x, attribution_label="IG")
    assert Image.open(a).size[0] == pytest.approx(w, rel=0.02)
    with pytest.raises(ValueError, match=r"signal must have shape \(12, samples\), got \(3, 1000\)"):
        ecgplot.plot_ecg(np.zeros((3, 1000)), 100, tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()


def test_statement_auc_plot_shows_best_and_worst(tmp_path):
    table = [{"code": f"C{i}", "auc": 1 - i / 60, "n_positive": i + 1, "n_negative": 10} for i in range(50)]
    table.append({"code": "X", "auc": None, "n_positive": 0, "n_negative": 10})
    path = ecgplot.plot_statement_auc(table, tmp_path / "auc.png", k=20)
    assert Image.open(path).size[1] > 400
