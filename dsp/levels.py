"""Streaming A-weighted levels: Fast/Slow time weighting and LAeq per second (IEC 61672-1).

Levels are 10*log10(mean square) of samples in [-1, 1], i.e. RMS relative to full scale: a
full-scale sine reads -3.01 dBFS. With the installer's calibration offset they are dB(A) SPL.
All filter state is carried across blocks, so any split of a signal into blocks gives the same
numbers. R1: only numbers leave this module; `weighted` is handed to the detector in memory.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from dsp.iir import SOSFilter
from dsp.weighting import runtime_sos

__all__ = ["FAST_TAU", "FLOOR_DB", "SLOW_TAU", "LevelBlock", "LevelMeter", "calibration_offset"]

FAST_TAU = 0.125   # s, IEC 61672-1 time weighting F
SLOW_TAU = 1.0     # s, time weighting S
FLOOR_DB = -120.0  # dBFS: what silence reads, instead of -inf
_FLOOR_MS = 10.0 ** (FLOOR_DB / 10.0)


def _db(mean_square: float) -> float:
    return 10.0 * math.log10(max(mean_square, _FLOOR_MS))


def _smoothing(tau: float, fs: int) -> float:
    """One-pole smoothing of the squared signal: y += a * (x^2 - y), a = 1 - exp(-1/(tau fs))."""
    return -math.expm1(-1.0 / (tau * fs))


@dataclass(frozen=True)
class LevelBlock:
    seconds: list[float]      # LAeq,1s of every second completed in this block (offset applied)
    weighted: np.ndarray      # the A-weighted block (float64), for the detector
    fast_db: float            # Fast level at the end of the block
    slow_db: float            # Slow level at the end of the block
    # Where the Fast series started, so fast_max_db can be derived from `weighted` on demand.
    _fast_start: float = field(default=0.0, repr=False, compare=False)  # mean square
    _fast_a: float = field(default=0.0, repr=False, compare=False)
    _offset: float = field(default=0.0, repr=False, compare=False)

    @cached_property
    def fast_max_db(self) -> float:
        """Highest Fast level within the block (the end level for an empty block). The hub only
        uses the end levels, so the per-sample Fast series is computed here, when asked."""
        if self.weighted.size == 0:
            return self.fast_db
        a = self._fast_a   # y += a (e - y) as a one-section filter from the block's start value
        one_pole = SOSFilter([[a, 0.0, 0.0, 1.0, a - 1.0, 0.0]],
                             zi=[(1.0 - a) * self._fast_start, 0.0])
        fast = one_pole(self.weighted * self.weighted)
        return _db(float(fast.max())) + self._offset


class LevelMeter:
    """A-weighting, Fast/Slow exponential time weighting and LAeq per second, streaming."""

    def __init__(self, fs: int, calibration_offset_db: float | None = None):
        if isinstance(fs, bool) or not float(fs).is_integer():
            raise ValueError(f"The sample rate must be a whole number of Hz, not {fs!r}.")
        self.fs = int(fs)
        # stored class 1 sections at 16/44.1/48 kHz (numpy only); ValueError below 8 kHz
        self._filter = SOSFilter(runtime_sos(self.fs))
        if calibration_offset_db is not None and not math.isfinite(calibration_offset_db):
            raise ValueError(f"The calibration offset must be a finite number of dB, "
                             f"not {calibration_offset_db!r}.")
        self.calibration_offset_db = calibration_offset_db
        self._offset = float(calibration_offset_db or 0.0)
        self._a = {tau: _smoothing(tau, self.fs) for tau in (FAST_TAU, SLOW_TAU)}
        self._ms = {FAST_TAU: 0.0, SLOW_TAU: 0.0}   # time-weighted mean square, end of last block
        self._sec_sum = 0.0
        self._sec_n = 0
        self._weights: dict[float, tuple[np.ndarray, float]] = {}  # for blocks of _weights_n
        self._weights_n = -1

    @property
    def unit(self) -> str:
        return "dBA" if self.calibration_offset_db is not None else "dBFS"

    def _level(self, mean_square: float) -> float:
        return _db(mean_square) + self._offset

    def _time_weight(self, energy: np.ndarray) -> None:
        # Only the end values are needed: y_N = r^N y_0 + a * sum r^(N-1-k) e_k (r = 1 - a), one
        # weighted sum per time constant; a per-sample lfilter cost ~17 us per 1600 samples.
        # Not `w @ e`: OpenBLAS may thread it, and on a busy 2-core machine that cost ~7 ms per
        # 16000 samples instead of ~10 us.
        n = energy.size
        if n != self._weights_n:
            self._weights_n = n
            self._weights = {tau: (a * (1.0 - a) ** np.arange(n - 1, -1, -1, dtype=np.float64),
                                   (1.0 - a) ** n) for tau, a in self._a.items()}
        for tau, (w, rn) in self._weights.items():
            self._ms[tau] = rn * self._ms[tau] + float(np.multiply(w, energy).sum())

    def process(self, block: np.ndarray) -> LevelBlock:
        x = np.asarray(block)
        if x.ndim == 2 and 1 in x.shape:
            x = x.reshape(-1)
        if x.ndim != 1 or x.dtype.kind not in "fiu":
            raise ValueError(f"A level block must be a 1-D array of mono samples; got "
                             f"shape {x.shape} of {x.dtype}.")
        fast_start = self._ms[FAST_TAU]
        if x.size and not np.all(np.isfinite(x)):
            # Rejected before touching the filter state, which NaN would poison for good.
            raise ValueError("The audio block contains NaN or infinite samples; it was skipped.")
        seconds: list[float] = []
        # A-weighted in float64 (float32 state would drift at the 20 Hz poles)
        weighted = self._filter(x)
        if weighted.size:
            energy = weighted * weighted
            self._time_weight(energy)
            seconds = self._laeq_seconds(energy)
        return LevelBlock(seconds, weighted, self._level(self._ms[FAST_TAU]),
                          self._level(self._ms[SLOW_TAU]), fast_start, self._a[FAST_TAU],
                          self._offset)

    def _laeq_seconds(self, energy: np.ndarray) -> list[float]:
        done: list[float] = []
        i, n = 0, energy.size
        while i < n:
            take = min(self.fs - self._sec_n, n - i)
            self._sec_sum += float(energy[i:i + take].sum())
            self._sec_n += take
            i += take
            if self._sec_n == self.fs:
                done.append(self._level(self._sec_sum / self.fs))
                self._sec_sum, self._sec_n = 0.0, 0
        return done


def calibration_offset(block_of_reference_tone: np.ndarray, reference_db_spl: float = 94.0) -> float:
    """The offset that turns this meter's dBFS into dB(A): record the calibrator's 1 kHz tone
    (A-weighting is 0 dB there) for a second or more and pass the samples here."""
    x = np.asarray(block_of_reference_tone, dtype=np.float64).reshape(-1)
    if x.size < 1000:
        raise ValueError("Calibration needs at least 1000 samples of the calibrator's tone.")
    if not np.all(np.isfinite(x)):
        raise ValueError("The calibration recording contains NaN or infinite samples.")
    if np.max(np.abs(x)) >= 0.999:
        raise ValueError("The calibration recording is clipped: lower the microphone gain and "
                         "calibrate again.")
    x = x - x.mean()
    level = _db(float(np.mean(x * x)))
    if level < -90.0:
        raise ValueError(f"The calibration recording is nearly silent ({level:.1f} dBFS): is the "
                         f"calibrator on and fitted to the microphone?")
    parts = [_db(float(np.mean(p * p))) for p in np.array_split(x, 10)]
    if max(parts) - min(parts) > 1.0:
        raise ValueError(f"The calibration tone was not steady (it varied by "
                         f"{max(parts) - min(parts):.1f} dB): keep the calibrator on the "
                         f"microphone for the whole recording.")
    return float(reference_db_spl) - level
