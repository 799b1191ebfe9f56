"""Streaming rational resampling in numpy (44.1/48 kHz capture -> 16 kHz features; files at any rate).

A polyphase FIR: up by L, low-pass, down by M (L/M = fs_out/fs_in in lowest terms), computing only
the output samples that are kept. The low-pass is a Kaiser-windowed sinc designed here with numpy
(no scipy at run time, docs/audio.md): flat to PASS_RATIO * min(fs_in, fs_out) / 2, at least
ATTEN_DB down from min(fs_in, fs_out) / 2 on, so nothing above the new Nyquist frequency folds back
(for 16 kHz out: flat to 6.5 kHz, -80 dB from 8 kHz; the features use 0.1-5 kHz).

Outputs come in whole "periods" of G*L output samples (G*M input samples): one period is one row
of a single matrix product with a fixed (G*L x G*M + K - 1) matrix holding the polyphase taps, so a
block is one small product however it is cut. The K - 1 inputs the next output needs are carried
over, so blocks join seamlessly; an output period is returned as soon as its inputs are in (for
48 -> 16 kHz every 2 ms of input, 44.1 -> 16 kHz every 10 ms).
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["Resampler", "lowpass_taps", "resample"]

ATTEN_DB = 80.0
PASS_RATIO = 0.8125        # pass band edge / stop band edge: 6.5 kHz / 8 kHz for 16 kHz out
PERIOD_OUT = 32            # at least this many outputs per row of the product (G*L >= 32)


def lowpass_taps(up: int, down: int, fs_in: float, fs_out: float) -> np.ndarray:
    """The anti-aliasing / anti-imaging FIR at rate up * fs_in, gain `up`; symmetric, and its
    length 2 * down * q + 1 makes its delay a whole number (q) of output samples."""
    stop = min(fs_in, fs_out) / 2.0
    passband = PASS_RATIO * stop
    fs_hi = up * fs_in
    width = 2.0 * math.pi * (stop - passband) / fs_hi
    n = math.ceil((ATTEN_DB - 7.95) / (2.285 * width)) + 1     # Kaiser's length estimate
    n = 2 * down * -(-(n - 1) // (2 * down)) + 1
    beta = 0.1102 * (ATTEN_DB - 8.7)
    fc = (passband + stop) / 2.0 / fs_hi                               # cycles per sample
    t = np.arange(n) - (n - 1) / 2.0
    return up * 2.0 * fc * np.sinc(2.0 * fc * t) * np.kaiser(n, beta)


class Resampler:
    """`y = r(x)`: stateful fs_in -> fs_out; any block sizes, the same samples out."""

    def __init__(self, fs_in: int, fs_out: int = 16000):
        if int(fs_in) != fs_in or int(fs_out) != fs_out or fs_in <= 0 or fs_out <= 0:
            raise ValueError(f"resampling needs whole positive rates, not {fs_in!r} -> {fs_out!r}")
        g = math.gcd(int(fs_in), int(fs_out))
        self.up, self.down = int(fs_out) // g, int(fs_in) // g
        h = lowpass_taps(self.up, self.down, fs_in, fs_out)
        self.delay_out = (len(h) - 1) // (2 * self.down)  # whole output samples
        k = -(-len(h) // self.up)                        # taps per phase
        h = np.concatenate((h, np.zeros(k * self.up - len(h))))
        reps = max(1, -(-PERIOD_OUT // self.up))         # G: periods per row
        n_out, n_in = reps * self.up, reps * self.down
        # output r of a row sits at input r*M/L of the row: phase (r*M) % L, last input (r*M)//L
        w = np.zeros((n_out, n_in + k - 1))
        for r in range(n_out):
            phase, last = (r * self.down) % self.up, (r * self.down) // self.up
            # y = sum_j h[phase + L j] x[last - j]; x[last - j] is column k - 1 + last - j
            w[r, k - 1 + last - np.arange(k)] = h[phase::self.up][:k]
        self._w_t = np.ascontiguousarray(w.T)
        self._k, self._n_in = k, n_in
        self._buf = np.zeros(k - 1)                      # the inputs before the next row

    def __call__(self, x) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64).reshape(-1)
        buf = np.concatenate((self._buf, x))
        rows = (len(buf) - (self._k - 1)) // self._n_in
        if rows <= 0:
            self._buf = buf
            return np.zeros(0)
        width = self._n_in + self._k - 1
        view = np.lib.stride_tricks.as_strided(buf, shape=(rows, width),
                                               strides=(buf.strides[0] * self._n_in, buf.strides[0]),
                                               writeable=False)
        out = (view @ self._w_t).reshape(-1)
        self._buf = buf[rows * self._n_in:].copy()
        return out


def resample(x, fs_in: int, fs_out: int = 16000) -> np.ndarray:
    """A whole recording at fs_out, aligned with the input (the filter's delay taken out) and
    ceil(len(x) * fs_out / fs_in) samples long."""
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    if fs_in == fs_out:
        return x.copy()
    r = Resampler(fs_in, fs_out)
    n_out = -(-len(x) * r.up // r.down)
    pad = np.zeros(r._n_in + r._k + (r.delay_out + 1) * r.down // r.up + 1)   # flushes the tail
    y = np.concatenate((r(x), r(pad)))
    return y[r.delay_out:r.delay_out + n_out]
