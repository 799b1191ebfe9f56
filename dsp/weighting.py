"""A-weighting (IEC 61672-1:2013) as a digital filter that meets class 1 at the hub's sample rates.

The plain bilinear transform of the analogue A-weighting squeezes everything above a few kHz
towards Nyquist: at 16 kHz it is almost 6 dB low at 6.3 kHz, far outside class 1. Instead the
filter keeps the analogue structure (four zeros at DC, six real poles, two more real zeros) and
fits the free poles and zeros by least squares to the analogue curve in dB on a log-frequency
grid, starting from the bilinear design. The fit has an analytic Jacobian and takes a few
milliseconds; results are cached per sample rate, and the gain is set so 1 kHz is exactly 0 dB
(the calibrator's frequency).

The design needs scipy (optimize, signal), which the hub must not load at run time (~70 MB
resident, R: docs/audio.md). So the hub's capture rates (RUNTIME_RATES) use coefficients designed
here once and stored in dsp/weighting_coeffs.py, written by

    python -m dsp.weighting --write-coeffs

and a test checks that they equal a fresh design, so they cannot silently drift from it.
`runtime_sos(fs)` gives the stored sections; any other rate falls back to the design (and so
imports scipy, lazily). Everything else in this module is numpy only.
"""
from __future__ import annotations

import sys
from functools import lru_cache
from pathlib import Path

import numpy as np

__all__ = [
    "CLASS1_LIMITS",
    "MIN_FS",
    "RUNTIME_RATES",
    "a_weighting_db",
    "a_weighting_sos",
    "class1_deviation",
    "runtime_sos",
    "sos_response",
    "third_octave_frequencies",
]

RUNTIME_RATES = (16000, 44100, 48000)   # stored in dsp/weighting_coeffs.py

MIN_FS = 8000.0

# Pole frequencies of the analogue A-weighting, IEC 61672-1:2013 Annex E (E.2, E.3).
_F1 = 20.598997057618316
_F2 = 107.65264864304629
_F3 = 737.8622307362901
_F4 = 12194.217147998012
_A1000 = -2.000  # the analogue curve's value at 1 kHz before normalisation (Annex E.4)

# IEC 61672-1:2013 Table 3, class 1 acceptance limits:
# (nominal one-third-octave frequency in Hz, lower limit dB, upper limit dB).
CLASS1_LIMITS: tuple[tuple[float, float, float], ...] = (
    (10.0, -np.inf, 3.0), (12.5, -np.inf, 2.5), (16.0, -4.0, 2.0), (20.0, -2.0, 2.0),
    (25.0, -1.5, 2.0), (31.5, -1.5, 1.5), (40.0, -1.0, 1.0), (50.0, -1.0, 1.0),
    (63.0, -1.0, 1.0), (80.0, -1.0, 1.0), (100.0, -1.0, 1.0), (125.0, -1.0, 1.0),
    (160.0, -1.0, 1.0), (200.0, -1.0, 1.0), (250.0, -1.0, 1.0), (315.0, -1.0, 1.0),
    (400.0, -1.0, 1.0), (500.0, -1.0, 1.0), (630.0, -1.0, 1.0), (800.0, -1.0, 1.0),
    (1000.0, -0.7, 0.7), (1250.0, -1.0, 1.0), (1600.0, -1.0, 1.0), (2000.0, -1.0, 1.0),
    (2500.0, -1.0, 1.0), (3150.0, -1.0, 1.0), (4000.0, -1.0, 1.0), (5000.0, -1.5, 1.5),
    (6300.0, -2.0, 1.5), (8000.0, -2.5, 1.5), (10000.0, -3.0, 2.0), (12500.0, -5.0, 2.0),
    (16000.0, -16.0, 2.5), (20000.0, -np.inf, 3.0),
)


def third_octave_frequencies() -> np.ndarray:
    """Exact base-10 mid-band frequencies (IEC 61260-1) matching CLASS1_LIMITS, 10 Hz .. 20 kHz."""
    return 1000.0 * 10.0 ** (np.arange(-20, 14) / 10.0)


def a_weighting_db(f) -> np.ndarray:
    """The analogue A-weighting in dB (0 dB at 1 kHz), IEC 61672-1:2013 equation (E.6)."""
    f = np.asarray(f, dtype=float)
    f2 = f * f
    with np.errstate(divide="ignore"):
        ratio = (_F4 ** 2 * f2 * f2) / ((f2 + _F1 ** 2) * np.sqrt(f2 + _F2 ** 2)
                                        * np.sqrt(f2 + _F3 ** 2) * (f2 + _F4 ** 2))
        return 20.0 * np.log10(ratio) - _A1000


def _check_fs(fs: float) -> float:
    try:
        fs = float(fs)
    except (TypeError, ValueError):
        raise ValueError(f"The sample rate must be a number of Hz, not {fs!r}.") from None
    if not np.isfinite(fs) or fs < MIN_FS:
        raise ValueError(f"A-weighting needs a sample rate of at least {MIN_FS:.0f} Hz to reach "
                         f"the class 1 frequency range; got {fs:g} Hz.")
    return fs


# Optimised parameters: 2 free zeros then 6 poles, all real; 4 zeros stay at z = 1 (DC).
_N_ZEROS = 2
_N_POLES = 6
_DB = 10.0 / np.log(10.0)


def _fit_grid(fs: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    f = np.geomspace(10.0, 0.49 * fs, 240)
    # Weight the residual by the inverse class 1 half-width so the fit spends its freedom
    # where the tolerance is tight (0.7 dB at 1 kHz, 1 dB up to 4 kHz).
    nominal = np.array([row[0] for row in CLASS1_LIMITS])
    half = np.array([min(row[2], -row[1]) if np.isfinite(row[1]) else row[2]
                     for row in CLASS1_LIMITS])
    weight = 1.0 / np.interp(np.log(f), np.log(nominal), half)
    return np.cos(2 * np.pi * f / fs), a_weighting_db(f), weight


def _log_mag(x: np.ndarray, c: np.ndarray) -> np.ndarray:
    # 10*log10|e^jw - r|^2 = 10*log10(1 - 2 r cos w + r^2) for a real root r.
    terms = _DB * np.log(1.0 - 2.0 * np.outer(c, x) + x * x)
    return terms[:, :_N_ZEROS].sum(axis=1) - terms[:, _N_ZEROS:].sum(axis=1)


def _design(fs: float) -> tuple[np.ndarray, np.ndarray, float]:
    from scipy import optimize, signal  # the design only: never on the hub's run-time path
    poles = -2.0 * np.pi * np.array([_F1, _F1, _F2, _F3, _F4, _F4])
    _, p0, _ = signal.bilinear_zpk([], poles, 1.0, fs)
    c, target, weight = _fit_grid(fs)
    dc = 4 * _DB * np.log(2.0 - 2.0 * c)                    # the four fixed zeros at DC
    x0 = np.concatenate([np.zeros(_N_ZEROS), np.sort(p0.real), [0.0]])  # last: gain in dB

    def residual(x: np.ndarray) -> np.ndarray:
        return weight * (dc + _log_mag(x[:-1], c) + x[-1] - target)

    def jacobian(x: np.ndarray) -> np.ndarray:
        r = x[:-1]
        d = _DB * (2.0 * r - 2.0 * c[:, None]) / (1.0 - 2.0 * np.outer(c, r) + r * r)
        d[:, _N_ZEROS:] *= -1.0
        return weight[:, None] * np.hstack([d, np.ones((c.size, 1))])

    lim = 0.999999
    lower = np.r_[np.full(_N_ZEROS + _N_POLES, -lim), -np.inf]
    upper = np.r_[np.full(_N_ZEROS + _N_POLES, lim), np.inf]
    sol = optimize.least_squares(residual, x0, jac=jacobian, bounds=(lower, upper),
                                 xtol=1e-10, ftol=1e-10, gtol=1e-10, max_nfev=500)
    zeros = np.r_[np.ones(4), sol.x[:_N_ZEROS]]
    pole_z = sol.x[_N_ZEROS:-1]
    _, h = signal.freqz_zpk(zeros, pole_z, 1.0, [1000.0], fs=fs)
    return zeros, pole_z, float(1.0 / abs(h[0]))


def a_weighting_sos(fs: float) -> np.ndarray:
    """Second-order sections (n, 6) for scipy.signal.sosfilt; class 1 from 25 Hz to 0.45 fs."""
    return _sos(_check_fs(fs)).copy()  # a copy: callers (and sosfilt) may not share the cache


@lru_cache(maxsize=16)
def _sos(fs: float) -> np.ndarray:
    from scipy import signal
    zeros, poles, gain = _design(fs)
    return signal.zpk2sos(zeros, poles, gain, pairing="nearest")


def runtime_sos(fs: float) -> np.ndarray:
    """The sections the hub runs at `fs`: stored for RUNTIME_RATES (numpy only), else designed
    now (which imports scipy; a ValueError below MIN_FS either way)."""
    fs = _check_fs(fs)
    from dsp.weighting_coeffs import SOS
    stored = SOS.get(int(fs)) if fs.is_integer() else None
    if stored is None:
        return a_weighting_sos(fs)
    return np.array(stored, dtype=np.float64)


def sos_response(sos: np.ndarray, f, fs: float) -> np.ndarray:
    """Complex frequency response of second-order sections at frequencies f (Hz), numpy only."""
    z1 = np.exp(-2j * np.pi * np.asarray(f, dtype=float) / fs)   # z^-1
    z2 = z1 * z1
    h = np.ones_like(z1)
    for b0, b1, b2, a0, a1, a2 in np.asarray(sos, dtype=float):
        h = h * (b0 + b1 * z1 + b2 * z2) / (a0 + a1 * z1 + a2 * z2)
    return h


def class1_deviation(sos: np.ndarray, fs: float, f_low: float = 25.0,
                     f_high_ratio: float = 0.45) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                          np.ndarray]:
    """The filter's deviation from the analogue curve at each exact third-octave frequency in
    [f_low, f_high_ratio * fs]: (frequencies, deviation dB, lower limit, upper limit)."""
    f = third_octave_frequencies()
    limits = np.array([(lo, hi) for _, lo, hi in CLASS1_LIMITS])
    keep = (f >= f_low * 10 ** -0.05) & (f <= f_high_ratio * fs)
    f, limits = f[keep], limits[keep]
    h = sos_response(sos, f, fs)
    return f, 20.0 * np.log10(np.abs(h)) - a_weighting_db(f), limits[:, 0], limits[:, 1]


COEFFS_FILE = Path(__file__).with_name("weighting_coeffs.py")


def coeffs_source() -> str:
    """The text of dsp/weighting_coeffs.py: a fresh design at RUNTIME_RATES, exact (repr) floats."""
    lines = ['"""A-weighting second-order sections [b0 b1 b2 a0 a1 a2] at the hub\'s capture rates.',
             "",
             "Generated by `python -m dsp.weighting --write-coeffs` from dsp.weighting.a_weighting_sos",
             "(the class 1 design, which needs scipy). These stored sections are what every hub runs:",
             "a fresh design may differ with other numpy/scipy versions. Do not edit by hand;",
             'tests/test_dsp_weighting.py and tests/test_dsp_levels.py check they are class 1."""',
             "", "SOS = {"]
    for fs in RUNTIME_RATES:
        lines.append(f"    {fs}: (")
        for row in a_weighting_sos(fs):
            lines.append("        (" + ", ".join(repr(float(v)) for v in row) + "),")
        lines.append("    ),")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _stored_sections() -> dict:
    from dsp.weighting_coeffs import SOS
    return SOS


def design_difference() -> dict[int, float]:
    """Per run-time rate, the largest difference in dB (20 Hz .. 0.45 fs) between a fresh design
    and the stored sections; 0.0 where they are identical."""
    stored = _stored_sections()
    out: dict[int, float] = {}
    for fs in RUNTIME_RATES:
        new = a_weighting_sos(fs)
        old = np.array(stored[fs], dtype=np.float64) if fs in stored else None
        if old is not None and old.shape == new.shape and np.array_equal(old, new):
            out[fs] = 0.0
            continue
        if old is None:
            out[fs] = float("inf")
            continue
        f = np.geomspace(20.0, 0.45 * fs, 400)
        ratio = np.abs(sos_response(new, f, fs)) / np.abs(sos_response(old, f, fs))
        out[fs] = float(np.max(np.abs(20.0 * np.log10(ratio))))
    return out


USAGE = ("usage: python -m dsp.weighting --write-coeffs [--out FILE]   (writes a fresh design to\n"
         "       FILE, default dsp/weighting_coeffs.py, and says how far it is from the stored one)")


def main(argv: list[str]) -> int:
    if not argv or argv[0] != "--write-coeffs" or len(argv) not in (1, 3) \
            or (len(argv) == 3 and argv[1] != "--out"):
        print(USAGE, file=sys.stderr)
        return 2
    out = Path(argv[2]) if len(argv) == 3 else COEFFS_FILE
    diff = design_difference()   # before writing: the stored sections are the ones compared
    out.write_text(coeffs_source())
    print(f"wrote {out} ({', '.join(str(r) for r in RUNTIME_RATES)} Hz)")
    if all(d == 0.0 for d in diff.values()):
        print("the new design is identical to the stored sections")
    else:
        print("the new design differs from the stored sections (the detector was tuned with the "
              "stored ones; run make bench before committing it):")
        for fs, d in diff.items():
            print(f"  {fs} Hz: up to {d:.2f} dB")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
