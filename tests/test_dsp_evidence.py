"""The shouting score's evidence beyond pitch and level (issue 4): the tilt with the room's noise
taken out, the tilt path needing some F0 rise, and the articulation that tells speech from a laugh's
repeated vowel."""
from __future__ import annotations

import numpy as np

from dsp import detector as D
from dsp import features as F

FS = F.FS


def _voice(seconds: float, f0: float, bright: np.ndarray | float, rng) -> np.ndarray:
    """A harmonic voice; `bright` (per 20 ms hop, or one value) is the gain in dB of the harmonics
    above 1 kHz: a vowel's spectral balance."""
    n = int(seconds * FS)
    t = np.arange(n) / FS
    hop_gain = np.broadcast_to(np.asarray(bright, dtype=float), (n // F.HOP + 1,))
    g = 10 ** (np.repeat(hop_gain, F.HOP)[:n] / 20)
    x = np.zeros(n)
    for k in range(1, int(4500 / f0)):
        amp = 1.0 / k * (g if k * f0 > 1000 else 1.0)
        x += amp * np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 2 * np.pi))
    x = 0.05 * x / np.sqrt(np.mean(x ** 2))
    on = (t % 0.6) < 0.45                          # phrases with pauses, where the room is heard
    return x * on + 1e-5 * rng.standard_normal(n)


def _second(x: np.ndarray) -> D.Second:
    """The last second of `x` summarised as the pipeline does, with the last MODULATION_S as context."""
    fr = F.frames(x[-(int(D.MODULATION_S * FS) + F.WIN - F.HOP):])
    last = fr.part(len(fr.level_db) - 50, len(fr.level_db))
    return D.summarise(last, fr)


def _room(n: int, rng) -> np.ndarray:
    """Room noise: brownish (-6 dB/octave) from 100 Hz up, most of it in the low band."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / FS)
    spec *= np.where(f >= 100, 100.0 / np.maximum(f, 1.0), 0.0)
    b = np.fft.irfft(spec, n)
    return b / np.sqrt(np.mean(b ** 2))


def test_the_tilt_does_not_depend_on_the_rooms_low_noise():
    rng = np.random.default_rng(0)
    v = _voice(4.5, 200.0, 0.0, rng)
    clean = _second(v).hi_ratio_db
    noise = 0.03 * _room(len(v), rng)                                  # ~14 dB below the voice
    noisy = _second(v + noise).hi_ratio_db
    assert abs(noisy - clean) < 1.0, (clean, noisy)
    # a voice with a flatter tilt (+8 dB above 1 kHz, as with effort) reads flatter by about that
    flat = _second(_voice(4.5, 200.0, 8.0, rng) + noise).hi_ratio_db
    assert 6.0 < flat - clean < 10.0, (clean, flat)


def test_a_repeated_vowel_has_no_articulation_and_speech_has():
    rng = np.random.default_rng(1)
    steady = _second(_voice(4.5, 220.0, 0.0, rng))
    hops = int(4.5 * FS) // F.HOP + 1
    vowels = np.repeat(rng.choice([-12.0, -4.0, 0.0, 6.0], size=hops // 6 + 1), 6)[:hops]  # a new vowel every 120 ms
    speech = _second(_voice(4.5, 220.0, vowels, rng))
    w = D.Weights().articulation
    assert steady.articulation_db < w[0] < w[1] < speech.articulation_db, (steady, speech)


def _step(f0_st: float, hi_db: float) -> D.Second:
    return D.Second(frames=50, level_db=-20.0, voiced_frames=30, speech_db=-20.0, f0_st=f0_st,
                    hi_ratio_db=hi_db, modulation_db=8.0, articulation_db=6.0)


def test_a_flat_tilt_without_any_rise_in_pitch_is_not_effort():
    b = D.Baseline(speech_db=-50.0, f0_st=10.0, hi_ratio_db=-12.0, calibrated=True)
    # a TV's small loudspeaker or a close talker: flat, loud, at the normal pitch
    assert D.score(_step(f0_st=10.0, hi_db=0.0), b) == 0.0
    # a low voice shouting into a higher voice's range: the tilt carries it when F0 is raised
    two = D.Baseline(speech_db=-50.0, f0_st=10.0, hi_ratio_db=-12.0, calibrated=True,
                     f0_hist=list(np.bincount(np.r_[np.full(600, 7), np.full(400, 20)], minlength=D.HIST_BINS)
                                  / 1000.0), hist_seconds=60.0)
    low, _high = two.voices
    assert two.lowest_voice == low
    assert D.score(_step(f0_st=low + 9.0, hi_db=-6.0), two) >= 0.5
    assert D.score(_step(f0_st=low + 1.0, hi_db=-6.0), two) == 0.0
