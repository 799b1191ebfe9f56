"""Vocal-effort features of one second of audio, computed for all its frames at once.

Raised vocal effort (shouting) changes speech in ways a level meter alone cannot see
(Traunmüller & Eriksson 2000; Rostolland 1982): F0 rises (about 8-12 semitones), the spectrum
tilts up (more energy above 1 kHz as the glottal pulse sharpens) and the voiced level rises. A loud
TV or someone talking close to the microphone is loud but keeps its normal F0 and tilt; a vacuum
cleaner is loud and harmonic but stationary; impulses are loud but unvoiced. So per frame we
measure level, voicing and F0 (normalised autocorrelation), and the high-band energy ratio, and per
second the syllabic level modulation.

Frames are 40 ms with a 20 ms hop at 16 kHz (50 per second). Everything is vectorised over the
second's frames: a per-frame Python loop would cost the CPU budget (<= 5 ms per second of audio).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dsp.weighting import a_weighting_db

FS = 16000
HOP = 320                 # 20 ms
WIN = 640                 # 40 ms: two periods of a 50 Hz voice, and room for the autocorrelation
NFFT = 1024               # >= WIN + the longest lag: the lags used are those of a linear, not a
                          # circular, autocorrelation (2048 cost twice the FFT time for nothing)
F0_MIN, F0_MAX = 70.0, 600.0
VOICED_R = 0.55           # normalised autocorrelation peak above which a frame counts as voiced
LOW_BAND = (100.0, 1000.0)
HIGH_BAND = (1000.0, 5000.0)
FLOOR_DB = -120.0

_window = np.hanning(WIN).astype(np.float64)
_LAG_LO = int(FS / F0_MAX)
_LAG_HI = int(FS / F0_MIN)
if NFFT < WIN + _LAG_HI:
    raise ValueError("NFFT too short: the autocorrelation's lags would wrap round")
# the window's own autocorrelation, to undo its taper on long lags (Boersma 1993)
_wr = np.fft.irfft(np.abs(np.fft.rfft(_window, NFFT)) ** 2, NFFT)[:_LAG_HI + 1]
_wr = _wr / _wr[0]
# a periodicity at a lag below this (above ~700 Hz: past the voice range with a margin) that is
# TONE_SHARE as strong as the voice-range peak makes the frame a tone, not voiced (`_tone`)
TONE_LAG_HI = _LAG_LO - 3
TONE_SHARE = 0.9
SUBHARMONIC_SHARE = 0.9   # a shorter lag this close to the best peak is the period (`frames`)
_freqs = np.fft.rfftfreq(NFFT, 1.0 / FS)
_low = (_freqs >= LOW_BAND[0]) & (_freqs < LOW_BAND[1])
_high = (_freqs >= HIGH_BAND[0]) & (_freqs < HIGH_BAND[1])
# A-weighted mean square of a frame from its power spectrum (Parseval; one-sided bins count twice
# except DC and Nyquist): the frame level without filtering the samples a second time
with np.errstate(divide="ignore"):
    _a_power = 10.0 ** (a_weighting_db(_freqs) / 10.0)
_a_power[1:-1] *= 2.0
_a_power /= NFFT * float(np.sum(_window ** 2))


@dataclass(frozen=True)
class Frames:
    """Per-frame measurements of one second (arrays of equal length)."""

    level_db: np.ndarray      # A-weighted frame level, dBFS (Hann-windowed mean square)
    voicing: np.ndarray       # normalised autocorrelation peak 0..1
    f0_hz: np.ndarray         # F0 where voiced, else NaN
    hi_ratio_db: np.ndarray   # energy 1-5 kHz over 0.1-1 kHz, dB
    low_db: np.ndarray        # energy 0.1-1 kHz, dB (the two bands, for the tilt of several frames
    high_db: np.ndarray       # energy 1-5 kHz, dB   together and for the room's share of each)

    @property
    def voiced(self) -> np.ndarray:
        return ~np.isnan(self.f0_hz)

    def part(self, start: int, stop: int) -> Frames:
        return Frames(*(a[start:stop] for a in self._arrays()))

    def then(self, later: Frames) -> Frames:
        """These frames followed by `later`'s."""
        return Frames(*(np.concatenate((a, b)) for a, b in zip(self._arrays(), later._arrays(), strict=True)))

    def _arrays(self) -> tuple[np.ndarray, ...]:
        return self.level_db, self.voicing, self.f0_hz, self.hi_ratio_db, self.low_db, self.high_db


def frame_view(x: np.ndarray) -> np.ndarray:
    """Overlapping frames of `x` (len = WIN + k * HOP) as a read-only strided view."""
    n = 1 + (len(x) - WIN) // HOP
    return np.lib.stride_tricks.as_strided(x, shape=(n, WIN), strides=(x.strides[0] * HOP, x.strides[0]),
                                           writeable=False)


def _tone(r: np.ndarray, peak: np.ndarray) -> np.ndarray:
    """Frames whose periodicity is a tone above the voice range (a phone's ring, an alarm's beep):
    the autocorrelation swings negative and back up to (almost) the voice-range peak within a
    lag shorter than a voice's period. The voice-range search alone reads such a tone as one of
    its subharmonics (a 1074 Hz ring as 216 or 533 Hz, a 4.1 kHz beep as 410 Hz), a voice with a
    high pitch. A voice's autocorrelation falls from lag 0 to its first zero over a quarter of
    its dominant period and does not come back this high before a whole period."""
    short = r[:, 1:TONE_LAG_HI]
    swung = np.minimum.accumulate(short, axis=1) < 0.0
    high = short >= np.maximum(VOICED_R, TONE_SHARE * peak)[:, None]
    return (swung & high).any(axis=1)


def frames(raw: np.ndarray) -> Frames:
    """Features of every frame of `raw` (16 kHz)."""
    fr = frame_view(np.ascontiguousarray(raw, dtype=np.float64))
    spec = np.fft.rfft(fr * _window, NFFT, axis=1)
    power = spec.real ** 2 + spec.imag ** 2
    level = 10.0 * np.log10((power * _a_power).sum(axis=1) + 1e-12)
    ac = np.fft.irfft(power, NFFT, axis=1)[:, :_LAG_HI + 1]
    energy = ac[:, 0] + 1e-12
    r_all = ac / energy[:, None] / _wr
    r = r_all[:, _LAG_LO:]
    rows = np.arange(len(r))
    peak = r[rows, np.argmax(r, axis=1)]
    # the period is the shortest lag that is a local peak almost as periodic as the best: a steady
    # voice is as periodic at two, three or five periods (the window correction even favours the
    # long lags), and taking the best lag read a 440 Hz voice as 147 Hz
    inner = r[:, 1:-1]
    near_best = (inner >= r[:, :-2]) & (inner >= r[:, 2:]) & (inner >= SUBHARMONIC_SHARE * peak[:, None])
    first = np.where(near_best.any(axis=1), np.argmax(near_best, axis=1) + 1, np.argmax(r, axis=1))
    lag = (first + _LAG_LO).astype(np.float64)
    voicing = np.clip(peak, 0.0, 1.0)
    f0 = np.where((voicing >= VOICED_R) & ~_tone(r_all, voicing), FS / lag, np.nan)

    lo = power[:, _low].sum(axis=1) + 1e-12
    hi = power[:, _high].sum(axis=1) + 1e-12
    lo_db, hi_db = 10.0 * np.log10(lo), 10.0 * np.log10(hi)
    return Frames(level_db=level, voicing=voicing, f0_hz=f0, hi_ratio_db=hi_db - lo_db, low_db=lo_db,
                  high_db=hi_db)
