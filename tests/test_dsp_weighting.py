"""A-weighting: the digital filter meets IEC 61672-1 class 1 where the hub listens."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from dsp.weighting import (
    CLASS1_LIMITS,
    a_weighting_db,
    a_weighting_sos,
    class1_deviation,
    third_octave_frequencies,
)


def test_analogue_curve_matches_the_standards_table():
    # IEC 61672-1:2013 Table 3 design goals (rounded to 0.1 dB in the standard).
    table = {10: -70.4, 31.5: -39.4, 100: -19.1, 1000: 0.0, 4000: 1.0, 8000: -1.1, 20000: -9.3}
    got = a_weighting_db(third_octave_frequencies())
    nominal = [row[0] for row in CLASS1_LIMITS]
    for f, goal in table.items():
        assert got[nominal.index(f)] == pytest.approx(goal, abs=0.05), f


def test_limits_table_is_complete_and_sane():
    nominal = [row[0] for row in CLASS1_LIMITS]
    assert nominal[0] == 10 and nominal[-1] == 20000 and len(nominal) == 34
    assert all(lo < 0 < hi for _, lo, hi in CLASS1_LIMITS)
    assert {f: (lo, hi) for f, lo, hi in CLASS1_LIMITS}[1000] == (-0.7, 0.7)


@pytest.mark.parametrize("fs", [16000, 22050, 32000, 44100, 48000])
def test_class1_at_every_third_octave_from_25_hz_to_045_fs(fs):
    sos = a_weighting_sos(fs)
    assert sos.ndim == 2 and sos.shape[1] == 6
    assert np.all(np.abs(signal.sos2zpk(sos)[1]) < 1.0), "unstable filter"
    f, dev, lo, hi = class1_deviation(sos, fs)
    assert f[0] == pytest.approx(25.12, abs=0.01) and f[-1] <= 0.45 * fs
    bad = [(round(fi), round(d, 2)) for fi, d, l, h in zip(f, dev, lo, hi, strict=False) if not l <= d <= h]
    assert not bad, f"outside class 1 at fs={fs}: {bad}"
    # exactly 0 dB at 1 kHz: the calibrator's frequency must not need a correction
    _, h1k = signal.sosfreqz(sos, worN=[1000.0], fs=fs)
    assert 20 * np.log10(abs(h1k[0])) == pytest.approx(0.0, abs=1e-6)


def test_plain_bilinear_fails_at_16_khz():
    # The regression the tests must catch: scipy's bilinear transform of the analogue filter.
    poles = -2 * np.pi * np.array([20.598997, 20.598997, 107.65265, 737.86223, 12194.217, 12194.217])
    z, p, k = signal.bilinear_zpk(np.zeros(4), poles, 1.0, 16000)
    sos = signal.zpk2sos(z, p, k)
    _, h = signal.sosfreqz(sos, worN=[1000.0], fs=16000)
    sos[0, :3] /= abs(h[0])
    _f, dev, lo, hi = class1_deviation(sos, 16000)
    assert not np.all((dev >= lo) & (dev <= hi))
    assert dev[-1] < -2.0  # 6.3 kHz is several dB low


def test_low_sample_rates_are_refused_with_a_sentence():
    with pytest.raises(ValueError, match="at least 8000 Hz"):
        a_weighting_sos(4000)
    with pytest.raises(ValueError, match="number of Hz"):
        a_weighting_sos("fast")


def test_design_is_cached_deterministic_and_not_shared():
    a, b = a_weighting_sos(16000), a_weighting_sos(16000.0)
    assert np.array_equal(a, b) and a is not b
    a[0, 0] = 123.0
    assert a_weighting_sos(16000)[0, 0] != 123.0


# -- the stored coefficients the hub runs (dsp/weighting_coeffs.py, numpy only at run time) ------
# The stored sections are the product: what every hub runs and what the detector was tuned with.
# A fresh least-squares design may land elsewhere with another numpy/scipy (it did: 0.05 apart at
# 16 kHz with numpy 2.4/scipy 1.17), so the tests check the stored sections themselves, and
# `--write-coeffs` says how far a new design is from them before anything is replaced.
def test_stored_sections_are_stable_filters_at_the_hubs_capture_rates():
    from dsp.weighting import RUNTIME_RATES, runtime_sos
    from dsp.weighting_coeffs import SOS
    assert sorted(SOS) == sorted(RUNTIME_RATES) == [16000, 44100, 48000]
    for fs in RUNTIME_RATES:
        sos = runtime_sos(fs)
        assert sos.ndim == 2 and sos.shape[1] == 6
        assert np.all(np.abs(signal.sos2zpk(sos)[1]) < 1.0), f"unstable stored filter at {fs}"
        _, h1k = signal.sosfreqz(sos, worN=[1000.0], fs=fs)
        assert 20 * np.log10(abs(h1k[0])) == pytest.approx(0.0, abs=1e-6), fs


def test_write_coeffs_says_whether_a_new_design_differs_from_the_stored_one(tmp_path, capsys,
                                                                           monkeypatch):
    import dsp.weighting as w
    from dsp.weighting_coeffs import SOS
    out = tmp_path / "coeffs.py"
    assert w.main(["--write-coeffs", "--out", str(out)]) == 0
    said = capsys.readouterr().out
    written = {}
    exec(out.read_text(), written)
    # what was written is the design of this machine's libraries, and the report compares it with
    # the stored sections: either "identical" or the largest difference in dB
    for fs in w.RUNTIME_RATES:
        assert np.array_equal(np.array(written["SOS"][fs]), w.a_weighting_sos(fs))
    if all(np.array_equal(np.array(SOS[fs]), w.a_weighting_sos(fs)) for fs in w.RUNTIME_RATES):
        assert "identical to the stored sections" in said
    else:
        assert "differs from the stored sections" in said
    # a stored set 1 % (0.086 dB) away from this design is reported as such, with its size in dB
    moved = {}
    for fs in w.RUNTIME_RATES:
        rows = w.a_weighting_sos(fs)
        rows[0, :3] *= 1.01
        moved[fs] = tuple(tuple(float(v) for v in row) for row in rows)
    monkeypatch.setattr(w, "_stored_sections", lambda: moved)
    assert w.main(["--write-coeffs", "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert "differs from the stored sections" in said and "16000 Hz: up to 0.09 dB" in said
    assert w.main(["--write"]) == 2


def test_runtime_sections_are_class1_and_other_rates_fall_back_to_the_design():
    from dsp.weighting import runtime_sos
    for fs in (16000, 44100, 48000):
        _f, dev, lo, hi = class1_deviation(runtime_sos(fs), fs)
        assert np.all((dev >= lo) & (dev <= hi)), fs
    assert np.array_equal(runtime_sos(22050), a_weighting_sos(22050))   # not stored: designed
    with pytest.raises(ValueError, match="at least 8000 Hz"):
        runtime_sos(4000)


def test_numpy_frequency_response_equals_scipys():
    from dsp.weighting import sos_response
    sos = a_weighting_sos(44100)
    f = np.geomspace(10, 22000, 300)
    _, ref = signal.sosfreqz(sos, worN=f, fs=44100)
    # rounding near the poles at z ~ 1 (20 Hz at 44.1 kHz) leaves ~1e-10 relative
    assert np.max(np.abs(sos_response(sos, f, 44100) / ref - 1)) < 1e-8
