"""Levels: LAeq per second, Fast/Slow time weighting, calibration; streamed in any block sizes."""
from __future__ import annotations

import math

import numpy as np
import pytest

from dsp.levels import FLOOR_DB, LevelMeter, calibration_offset

FS = 16000


def tone(freq: float, seconds: float, amplitude: float, fs: int = FS) -> np.ndarray:
    t = np.arange(round(seconds * fs)) / fs
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def sine_dbfs(amplitude: float) -> float:
    return 20 * math.log10(amplitude / math.sqrt(2))


@pytest.mark.parametrize("fs", [16000, 44100, 48000])
def test_1_khz_sine_gives_its_rms_level_each_second(fs):
    m = LevelMeter(fs)
    out = m.process(tone(1000, 3, 0.25, fs))
    assert m.unit == "dBFS"
    assert len(out.seconds) == 3
    # the first second includes the filter's few-ms settling; the others are exact
    assert out.seconds[0] == pytest.approx(sine_dbfs(0.25), abs=0.05)
    assert out.seconds[1:] == pytest.approx([sine_dbfs(0.25)] * 2, abs=0.01)


def test_calibration_offset_makes_dba_and_is_what_the_calibrator_says():
    # A calibrator (94 dB at 1 kHz) that the microphone hears at amplitude 0.1
    offset = calibration_offset(tone(1000, 2, 0.1))
    assert offset == pytest.approx(94.0 - sine_dbfs(0.1), abs=0.01)
    m = LevelMeter(FS, calibration_offset_db=offset)
    assert m.unit == "dBA"
    loud = m.process(tone(1000, 2, 0.1)).seconds[-1]
    assert loud == pytest.approx(94.0, abs=0.01)
    # 20 dB quieter at the microphone reads 74 dB(A)
    assert m.process(tone(1000, 2, 0.01)).seconds[-1] == pytest.approx(74.0, abs=0.05)


def test_100_hz_is_19_dB_below_1_khz():
    a = LevelMeter(FS).process(tone(1000, 2, 0.3)).seconds[-1]
    b = LevelMeter(FS).process(tone(100, 2, 0.3)).seconds[-1]
    assert a - b == pytest.approx(19.1, abs=0.2)


def test_silence_reads_a_finite_floor():
    m = LevelMeter(FS, calibration_offset_db=100.0)
    out = m.process(np.zeros(FS, dtype=np.float32))
    assert out.seconds == [pytest.approx(FLOOR_DB + 100.0)]
    assert math.isfinite(out.fast_db) and math.isfinite(out.slow_db)
    assert out.fast_db == pytest.approx(FLOOR_DB + 100.0)


def test_fast_follows_a_burst_within_half_a_second_and_slow_does_not():
    m = LevelMeter(FS)
    m.process(np.zeros(FS, dtype=np.float32))
    burst = tone(1000, 2.0, 0.5)
    steady = sine_dbfs(0.5)
    fast, slow = [], []
    for i in range(0, burst.size, 160):      # 10 ms blocks
        out = m.process(burst[i:i + 160])
        fast.append(out.fast_db)
        slow.append(out.slow_db)
    at = lambda s: round(s * 100) - 1
    # Fast (tau 125 ms): within 1 dB of the steady level by 0.5 s (it is ~0.08 dB off there)
    assert fast[at(0.5)] > steady - 1.0
    assert fast[at(0.1)] < steady - 2.0      # ...but a real rise, not a jump
    # Slow (tau 1 s) is still more than 1 dB low at 0.5 s and within 1 dB only after ~1.5 s
    assert slow[at(0.5)] < steady - 3.0
    assert slow[at(2.0)] > steady - 1.0
    # Decay after the burst: IEC rates 34.7 dB/s (Fast) and 4.3 dB/s (Slow)
    after_f, after_s = [], []
    for _ in range(5):                       # 0.5 s of silence in 100 ms blocks
        out = m.process(np.zeros(1600, dtype=np.float32))
        after_f.append(out.fast_db)
        after_s.append(out.slow_db)
    assert (after_f[1] - after_f[4]) / 0.3 == pytest.approx(34.7, abs=0.3)
    assert (after_s[1] - after_s[4]) / 0.3 == pytest.approx(4.34, abs=0.1)


def test_fast_and_slow_match_a_per_sample_reference_and_fast_max_is_the_peak():
    # An independent check of the meter's closed-form end values and its on-demand Fast maximum:
    # the IEC one-pole recursion y += (1 - exp(-1/(tau fs))) (x^2 - y), one sample at a time.
    m = LevelMeter(FS, calibration_offset_db=50.0)
    burst = np.concatenate([tone(1000, 0.2, 0.5), np.zeros(int(0.3 * FS), np.float32)])
    blocks = [m.process(burst), m.process(np.zeros(FS // 10, np.float32))]
    for tau, end_attr in ((0.125, "fast_db"), (1.0, "slow_db")):
        a = 1.0 - math.exp(-1.0 / (tau * FS))
        y, series = 0.0, []
        for b in blocks:
            s = []
            for e in b.weighted * b.weighted:
                y += a * (e - y)
                s.append(y)
            series.append(s)
            assert getattr(b, end_attr) == pytest.approx(10 * math.log10(y) + 50.0, abs=1e-9)
        if tau == 0.125:
            for b, s in zip(blocks, series, strict=False):
                assert b.fast_max_db == pytest.approx(10 * math.log10(max(s)) + 50.0, abs=1e-9)
    # the burst ended 0.3 s before the block did: its peak is ~10 dB above the end level
    assert blocks[0].fast_max_db > blocks[0].fast_db + 9.0
    assert blocks[0].fast_max_db == pytest.approx(sine_dbfs(0.5) + 50.0, abs=1.0)
    assert blocks[1].fast_max_db < blocks[0].fast_db     # still falling: its start is its max


def test_any_split_into_blocks_gives_the_same_numbers():
    rng = np.random.default_rng(7)
    x = (rng.standard_normal(int(3.7 * FS)) * 0.1).astype(np.float32)
    x[FS:FS + 4000] += tone(440, 0.25, 0.6)
    whole = LevelMeter(FS, calibration_offset_db=90.0).process(x)
    m = LevelMeter(FS, calibration_offset_db=90.0)
    cuts = np.sort(rng.choice(np.arange(1, x.size), size=37, replace=False))
    parts = [m.process(p) for p in np.split(x, cuts)] + [m.process(np.zeros(0, np.float32))]
    seconds = [s for p in parts for s in p.seconds]
    assert len(seconds) == len(whole.seconds) == 3
    assert seconds == pytest.approx(whole.seconds, abs=1e-9)
    assert parts[-1].fast_db == pytest.approx(whole.fast_db, abs=1e-9)
    assert parts[-1].slow_db == pytest.approx(whole.slow_db, abs=1e-9)
    assert np.allclose(np.concatenate([p.weighted for p in parts]), whole.weighted, atol=1e-12)
    assert max(p.fast_max_db for p in parts) == pytest.approx(whole.fast_max_db, abs=1e-9)


def test_bad_blocks_are_refused_without_poisoning_the_state():
    m = LevelMeter(FS)
    before = m.process(tone(1000, 0.5, 0.2)).fast_db
    bad = tone(1000, 0.1, 0.2)
    bad[10] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        m.process(bad)
    with pytest.raises(ValueError, match="1-D"):
        m.process(np.zeros((2, 100)))
    after = m.process(tone(1000, 0.5, 0.2)).fast_db
    assert math.isfinite(after) and after == pytest.approx(before, abs=0.5)


def test_bad_settings_and_calibration_recordings_are_refused_with_a_reason():
    with pytest.raises(ValueError, match="at least 8000 Hz"):
        LevelMeter(4000)
    with pytest.raises(ValueError, match="whole number"):
        LevelMeter(16000.5)
    with pytest.raises(ValueError, match="finite"):
        LevelMeter(FS, calibration_offset_db=float("nan"))
    with pytest.raises(ValueError, match="silent"):
        calibration_offset(np.zeros(FS))
    with pytest.raises(ValueError, match="not steady"):
        calibration_offset(np.concatenate([tone(1000, 1.5, 0.1), np.zeros(FS // 2)]))
    with pytest.raises(ValueError, match="clipped"):
        calibration_offset(np.clip(tone(1000, 1, 2.0), -1, 1))


# -- the run-time path is numpy only: it must still be the class 1 filter -------------------------
@pytest.mark.parametrize("fs", [16000, 44100, 48000])
def test_the_meter_weights_exactly_as_scipys_recursive_filter_of_the_stored_sections(fs):
    from scipy import signal

    from dsp.weighting import runtime_sos
    rng = np.random.default_rng(fs)
    x = (rng.standard_normal(3 * fs) * 0.2).astype(np.float32)
    m = LevelMeter(fs)
    cuts = np.sort(rng.choice(np.arange(1, x.size), size=29, replace=False))
    got = np.concatenate([m.process(p).weighted for p in np.split(x, cuts)])
    ref = signal.sosfilt(runtime_sos(fs), x.astype(np.float64))
    assert np.max(np.abs(got - ref)) < 1e-10 * np.max(np.abs(ref))


@pytest.mark.parametrize("fs", [16000, 44100, 48000])
def test_class1_measured_through_the_meter(fs):
    """Tones at every third octave from 25 Hz to 0.45 fs, LAeq read from the meter (the numpy
    run-time path), against the IEC curve and the class 1 limits."""
    from dsp.weighting import CLASS1_LIMITS, a_weighting_db, third_octave_frequencies
    f = third_octave_frequencies()
    limits = np.array([(lo, hi) for _, lo, hi in CLASS1_LIMITS])
    keep = (f >= 25.0 * 10 ** -0.05) & (f <= 0.45 * fs)
    ref = LevelMeter(fs).process(tone(1000, 3, 0.1, fs)).seconds[-1]
    bad = []
    for fi, (lo, hi) in zip(f[keep], limits[keep], strict=False):
        level = LevelMeter(fs).process(tone(fi, 3, 0.1, fs)).seconds[-1]
        dev = level - ref - float(a_weighting_db(fi))
        if not lo <= dev <= hi:
            bad.append((round(fi), round(dev, 2)))
    assert not bad, f"outside class 1 at fs={fs}: {bad}"
