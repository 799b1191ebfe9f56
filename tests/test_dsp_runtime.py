"""The hub's sound path is numpy only: no scipy at run time (scipy.signal alone is ~70 MB resident).
Also the numpy pieces that replace it: the recursive filter (dsp/iir.py) and the resampler
(dsp/resample.py), each checked against scipy here, in the tests."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import signal

from dsp.iir import SOSFilter
from dsp.resample import Resampler, resample

ROOT = Path(__file__).resolve().parents[1]

_RUN = r"""
import json, sys, time
import numpy as np
from dsp.pipeline import SoundPipeline
from dsp.service import ArraySource, SoundService
import dsp.levels, dsp.features, dsp.detector, dsp.thermometer, dsp.detect_cli
extra = sys.argv[1]
if extra:
    __import__(extra)
rng = np.random.default_rng(0)
frames = 0
for fs in (16000, 44100, 48000):
    p = SoundPipeline(fs, calibrate_seconds=2)
    for _ in range(40):
        frames += len(p.process((rng.standard_normal(fs // 10) * 0.05).astype(np.float32)))
    p.process(np.zeros(fs // 10, np.float32))
got = []
src = ArraySource((rng.standard_normal(16000 * 3) * 0.05).astype(np.float32), 16000, speed=50.0)
svc = SoundService(src, SoundPipeline(16000), got.append).start()
t0 = time.monotonic()
while not src.done and time.monotonic() - t0 < 20:
    time.sleep(0.02)
svc.stop()
print(json.dumps({"frames": frames, "service_frames": len(got),
                  "scipy": sorted(m for m in sys.modules if m == "scipy" or m.startswith("scipy."))}))
"""


def _fresh(extra: str = "") -> dict:
    r = subprocess.run([sys.executable, "-c", _RUN, extra], cwd=ROOT, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.splitlines()[-1])


def test_the_pipeline_and_the_sound_service_run_without_importing_scipy():
    out = _fresh()
    assert out["frames"] >= 3 * 3 and out["service_frames"] >= 2   # it really ran, at every rate
    assert out["scipy"] == [], out["scipy"]


def test_the_subprocess_check_does_see_scipy_when_it_is_imported():
    # the evaluation-set builder may use scipy: the check above would catch a run-time import
    assert "scipy" in _fresh("sim.evalset")["scipy"]


# -- dsp/iir.py: the A-weighting cascade without scipy ----------------------------------------
def test_sos_filter_equals_scipys_sosfilt_with_state_for_any_split():
    from dsp.weighting import a_weighting_sos
    rng = np.random.default_rng(3)
    sos = np.vstack([a_weighting_sos(48000), signal.butter(4, 0.05, output="sos")])
    x = rng.standard_normal(20000)
    zi = rng.standard_normal((sos.shape[0], 2)) * 0.1
    ref, zf = signal.sosfilt(sos, x, zi=zi)
    for sizes in ([20000], [1, 127, 128, 129, 1920, 1921, 3999], [7] * 300):
        f = SOSFilter(sos, zi=zi)
        cuts = np.cumsum(sizes)
        cuts = cuts[cuts < x.size]
        y = np.concatenate([f(p) for p in np.split(x, cuts)])
        # rounding only (both sides round differently; ~1e-10 relative for these 5 sections)
        assert np.max(np.abs(y - ref)) < 1e-9 * np.max(np.abs(ref)), sizes
        assert np.max(np.abs(f.state - zf.reshape(-1))) < 1e-8 * np.max(np.abs(zf)), sizes
    assert SOSFilter(sos)(np.zeros(0)).size == 0
    with pytest.raises(ValueError, match="shape"):
        SOSFilter(np.ones((2, 5)))


# -- dsp/resample.py: 44.1/48 kHz capture to 16 kHz -------------------------------------------
@pytest.mark.parametrize("fs", [44100, 48000])
def test_resampler_passes_speech_band_and_stops_what_would_fold_back(fs):
    t = np.arange(2 * fs) / fs
    for f0 in (200, 1000, 5000, 6400):
        y = resample(np.sin(2 * np.pi * f0 * t), fs)
        ref = np.sin(2 * np.pi * f0 * np.arange(len(y)) / 16000)
        mid = slice(2000, len(y) - 2000)
        assert np.max(np.abs(y[mid] - ref[mid])) < 1e-3, f0     # flat, and aligned in time
    for f0 in (8000, 9000, 12000, 20000):
        y = resample(np.sin(2 * np.pi * f0 * t), fs)
        assert 20 * np.log10(np.std(y[2000:-2000]) * np.sqrt(2)) < -75, f0


@pytest.mark.parametrize("fs", [44100, 48000, 22050])
def test_resampler_streams_the_same_samples_whatever_the_blocks(fs):
    rng = np.random.default_rng(fs)
    x = rng.standard_normal(fs)
    whole = Resampler(fs)(x)
    r = Resampler(fs)
    cuts = np.sort(rng.choice(np.arange(1, x.size), size=41, replace=False))
    parts = np.concatenate([r(p) for p in np.split(x, cuts)])
    assert len(parts) == len(whole) and np.allclose(parts, whole, rtol=0, atol=1e-12)
    # and agrees with scipy's polyphase resampler away from the ends, in the band both pass flat
    spec = np.fft.rfft(x)
    spec[np.fft.rfftfreq(x.size, 1 / fs) > 6000] = 0
    x = np.fft.irfft(spec, x.size)
    ref = signal.resample_poly(x, 16000, fs)
    mine = resample(x, fs)
    assert len(mine) == len(ref)
    mid = slice(500, len(ref) - 500)
    assert np.sqrt(np.mean((mine[mid] - ref[mid]) ** 2)) < 0.01 * np.std(ref[mid])
