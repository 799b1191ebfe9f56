"""Synthetic sounds for the evaluation set (sim/evalset.py): room noise, reverberation, a TV
loudspeaker, music, laughter, door slams, clapping and a vacuum cleaner.

Every function returns float64 audio at an arbitrary scale; evalset sets the calibrated level.
All randomness comes from the caller's numpy Generator, so the set is deterministic."""
from __future__ import annotations

import numpy as np
from scipy import signal
from scipy.fft import next_fast_len

Rng = np.random.Generator


def shaped_noise(n: int, fs: int, rng: Rng, slope_db_oct: float,
                 lo: float = 20.0, hi: float | None = None) -> np.ndarray:
    """Gaussian noise with a spectral slope (dB per octave), band-limited to [lo, hi] Hz."""
    m = next_fast_len(n, real=True)
    spec = np.fft.rfft(rng.standard_normal(m))
    f = np.fft.rfftfreq(m, 1 / fs)
    g = np.zeros_like(f)
    band = (f >= lo) & (f <= (hi or fs / 2))
    g[band] = (f[band] / 1000.0) ** (slope_db_oct / (20 * np.log10(2)))
    return np.fft.irfft(spec * g, m)[:n]


def bandpass(x: np.ndarray, fs: int, lo: float | None, hi: float | None, order: int = 2) -> np.ndarray:
    ny = fs / 2
    if lo and hi and hi < ny * 0.99:
        sos = signal.butter(order, [lo / ny, hi / ny], "bandpass", output="sos")
    elif lo:
        sos = signal.butter(order, lo / ny, "highpass", output="sos")
    elif hi and hi < ny * 0.99:
        sos = signal.butter(order, hi / ny, "lowpass", output="sos")
    else:
        return x
    return signal.sosfilt(sos, x)


def room_noise(n: int, fs: int, rng: Rng) -> np.ndarray:
    """A quiet living room: brownish ventilation/traffic rumble, a fridge's mains hum."""
    x = shaped_noise(n, fs, rng, -4.5, lo=25.0)
    t = np.arange(fs) / fs                        # one second holds whole mains cycles: tile it
    hum_hz = rng.choice([50.0, 60.0])
    hum = sum(np.sin(2 * np.pi * hum_hz * k * t + rng.uniform(0, 2 * np.pi)) / k for k in (1, 2, 3, 4))
    hum = np.tile(hum, n // fs + 1)[:n]
    return x / np.std(x) + 0.3 * hum / np.std(hum)


def room_ir(fs: int, rng: Rng, distance_m: float, rt60: float,
            critical_distance_m: float = 1.2) -> np.ndarray:
    """Impulse response: a direct path and an exponentially decaying diffuse tail whose
    direct-to-reverberant energy ratio is (critical distance / distance)^2, i.e. more reverb
    further away. Normalised to unit energy; the caller applies the 1/d level drop."""
    n = int(rt60 * 1.2 * fs)
    t = np.arange(n) / fs
    tail = rng.standard_normal(n) * np.exp(-6.91 * t / rt60)
    tail[: int(0.003 * fs)] = 0.0                        # first reflections after ~3 ms
    tail = bandpass(tail, fs, None, 5000.0, order=1)      # walls and furniture absorb highs
    drr = (critical_distance_m / distance_m) ** 2
    ir = tail * np.sqrt(1.0 / (drr * np.sum(tail ** 2)))
    ir[0] = 1.0
    return ir / np.sqrt(np.sum(ir ** 2))


def loudspeaker(x: np.ndarray, fs: int) -> np.ndarray:
    """A flat-screen TV's speakers: nothing below ~150 Hz, rolled off above ~8 kHz."""
    return bandpass(x, fs, 150.0, 7500.0, order=3)


def _env_adsr(n: int, fs: int, attack: float, decay_tau: float) -> np.ndarray:
    t = np.arange(n) / fs
    return np.minimum(t / max(attack, 1e-4), 1.0) * np.exp(-np.maximum(t - attack, 0) / decay_tau)


def _formant_gain(freqs: np.ndarray, formants: list[tuple[float, float]]) -> np.ndarray:
    """Magnitude of a cascade of resonances (centre Hz, bandwidth Hz) at the given frequencies."""
    g = np.ones_like(freqs)
    for fc, bw in formants:
        g = g * (fc ** 2) / np.sqrt((fc ** 2 - freqs ** 2) ** 2 + (bw * freqs) ** 2)
    return g


def voiced(f0: np.ndarray, fs: int, formants: list[tuple[float, float]],
           breath: float, rng: Rng) -> np.ndarray:
    """Additive source-filter voice: harmonics of a time-varying f0 (-12 dB/oct glottal source)
    shaped by formants, plus formant-shaped aspiration noise (breathiness)."""
    phase = 2 * np.pi * np.cumsum(f0) / fs
    out = np.zeros(len(f0))
    step = 32                                   # harmonic amplitudes change slowly: 2 ms control rate
    f0c = f0[::step]
    for h in range(1, int(fs / 2 / max(f0.min(), 50.0)) + 1):
        fh = h * f0c
        amp = np.where(fh < fs / 2 * 0.95, _formant_gain(fh, formants) / h ** 2, 0.0)
        out += np.repeat(amp, step)[:len(f0)] * np.sin(h * phase)
    if breath > 0:
        noise = shaped_noise(len(f0), fs, rng, 0.0, lo=300.0)
        m = next_fast_len(len(f0), real=True)
        spec = np.fft.rfft(noise, m)
        spec *= _formant_gain(np.fft.rfftfreq(m, 1 / fs), formants)
        noise = np.fft.irfft(spec, m)[:len(f0)]
        out += breath * noise * np.std(out) / (np.std(noise) + 1e-12)
    return out


VOWEL_A = [(800.0, 90.0), (1250.0, 110.0), (2600.0, 160.0)]
VOWEL_O = [(500.0, 80.0), (900.0, 100.0), (2500.0, 160.0)]


def music(n: int, fs: int, rng: Rng, singer: bool = True) -> np.ndarray:
    """A pop-like bed: chords (2 s each), a bright melody with harmonics, drums at 100-130 bpm,
    and optionally a singer-like voiced melody with 5-6 Hz vibrato (a hard negative: a sung
    vowel is high, loud, harmonic and sustained, like a shouted one)."""
    t = np.arange(n) / fs
    root = 110.0 * 2 ** (rng.integers(0, 12) / 12)
    prog = [0, 5, 7, 3, 8, 10]
    out = np.zeros(n)
    seg = int(2.0 * fs)
    for i, s in enumerate(range(0, n, seg)):
        e = min(n, s + seg)
        step = prog[rng.integers(len(prog))] if i else 0
        for interval in (0, 4 if rng.random() < 0.5 else 3, 7, 12):
            f = root * 2 ** ((step + interval) / 12)
            tone = sum(np.sin(2 * np.pi * f * k * t[s:e]) / k ** 1.5 for k in range(1, 6))
            out[s:e] += tone * _env_adsr(e - s, fs, 0.02, 1.5)
    beat = 60.0 / rng.uniform(100, 130)
    mel = np.zeros(n)
    scale = np.array([0, 2, 4, 5, 7, 9, 11, 12])
    for s in np.arange(0, n / fs, beat / 2):
        i0, i1 = int(s * fs), min(n, int((s + beat / 2) * fs))
        f = 2 * root * 2 ** (rng.choice(scale) / 12)
        tt = t[i0:i1]
        mel[i0:i1] = sum(np.sin(2 * np.pi * f * k * tt) / k for k in range(1, 8)) * _env_adsr(i1 - i0, fs, 0.01, 0.15)
    out = out / np.std(out) + 0.7 * mel / (np.std(mel) + 1e-12)
    out += 1.2 * drums(n, fs, rng, beat)
    if singer:
        out += 1.5 * sung_melody(n, fs, rng, root * 2)
    return out


def drums(n: int, fs: int, rng: Rng, beat: float) -> np.ndarray:
    """Kick on beats 1 and 3, snare on 2 and 4, hi-hat on eighths."""
    out = np.zeros(n)
    kn = int(0.25 * fs)
    tk = np.arange(kn) / fs
    kick = np.sin(2 * np.pi * np.cumsum(50 + 70 * np.exp(-tk / 0.03)) / fs) * np.exp(-tk / 0.08)
    sn = int(0.2 * fs)
    snare = (bandpass(rng.standard_normal(sn), fs, 1000, 6000) + 0.5 * np.sin(2 * np.pi * 190 * np.arange(sn) / fs)) \
        * np.exp(-np.arange(sn) / fs / 0.05)
    hn = int(0.05 * fs)
    hat = bandpass(rng.standard_normal(hn), fs, 6000, None) * np.exp(-np.arange(hn) / fs / 0.012)
    for i, s in enumerate(np.arange(0, n / fs, beat / 2)):
        i0 = int(s * fs)
        for hit, every, off, g in ((kick, 4, 0, 1.0), (snare, 4, 2, 0.6), (hat, 1, 0, 0.15)):
            if i % every == off:
                m = min(len(hit), n - i0)
                out[i0:i0 + m] += g * hit[:m]
    return out / (np.std(out) + 1e-12)


def sung_melody(n: int, fs: int, rng: Rng, base: float) -> np.ndarray:
    """Sustained sung vowels (0.4-1.2 s notes) with 5-6 Hz, +-0.4 semitone vibrato."""
    f0 = np.zeros(n)
    gate = np.zeros(n)
    t0 = 0
    while t0 < n:
        dur = int(rng.uniform(0.4, 1.2) * fs)
        f0[t0:t0 + dur] = base * 2 ** (rng.choice([0, 2, 4, 5, 7, 9]) / 12)
        g = np.ones(min(dur, n - t0))
        r = min(int(0.05 * fs), len(g) // 2)
        g[:r] = np.linspace(0, 1, r)
        g[-r:] = np.linspace(1, 0, r)
        gate[t0:t0 + len(g)] = g if rng.random() < 0.85 else 0.0
        t0 += dur
    f0 = signal.savgol_filter(f0, int(0.03 * fs) | 1, 1)        # legato glides between notes
    t = np.arange(n) / fs
    f0 = f0 * 2 ** (0.4 / 12 * np.sin(2 * np.pi * rng.uniform(5.0, 6.0) * t))
    return voiced(f0, fs, VOWEL_A if rng.random() < 0.5 else VOWEL_O, 0.05, rng) * gate


def laugh_burst(fs: int, rng: Rng) -> np.ndarray:
    """'ha-ha-ha': 4-12 syllables at 4-6 per second, each an aspirated /h/ then a breathy /a/
    at a high, falling f0 (laughter f0 is typically 200-500 Hz; Bachorowski et al. 2001)."""
    n_syl = int(rng.integers(4, 13))
    rate = rng.uniform(4.0, 6.0)
    f_start = rng.uniform(220, 480)
    parts = []
    for i in range(n_syl):
        syl = int(fs / rate)
        h = int(syl * rng.uniform(0.25, 0.4))
        v = syl - h
        f0 = f_start * 2 ** (-i * rng.uniform(0.3, 0.8) / 12) * np.linspace(1.05, 0.95, v)
        vowel = voiced(f0, fs, VOWEL_A, 0.4, rng) * np.hanning(v) ** 0.5
        asp = bandpass(rng.standard_normal(h), fs, 500, 6000) * np.hanning(h)
        asp *= 0.3 * np.std(vowel) / (np.std(asp) + 1e-12)
        parts.append(np.concatenate([asp, vowel]) * (1.0 - 0.5 * i / n_syl))
    return np.concatenate(parts)


def door_slam(fs: int, rng: Rng) -> np.ndarray:
    """A door hitting its frame: a low thump (60-120 Hz panel mode, fast decay), broadband impact
    and a latch click with a short resonant rattle. Its peak is what a level meter reacts to."""
    n = int(0.8 * fs)
    t = np.arange(n) / fs
    mode = rng.uniform(60, 120)
    thump = np.sin(2 * np.pi * mode * t) * np.exp(-t / rng.uniform(0.06, 0.15))
    impact = bandpass(rng.standard_normal(n), fs, 100, 4000) * np.exp(-t / 0.012)
    click = bandpass(rng.standard_normal(n), fs, 1500, 6000) * np.exp(-np.maximum(t - 0.02, 0) / 0.008) * (t >= 0.02)
    rattle = np.sin(2 * np.pi * rng.uniform(300, 700) * t) * np.exp(-t / 0.1)
    return 1.0 * thump + 0.8 * impact + 0.4 * click + 0.15 * rattle


def clap(fs: int, rng: Rng) -> np.ndarray:
    """One hand clap: a ~1 ms noise onset with a 5-10 ms decay, coloured by the cupped-hand
    resonance (roughly 1-2.5 kHz; Repp 1987)."""
    n = int(0.08 * fs)
    t = np.arange(n) / fs
    x = rng.standard_normal(n) * np.minimum(t / 0.0008, 1.0) * np.exp(-t / rng.uniform(0.005, 0.010))
    fc = rng.uniform(1000, 2500)
    return bandpass(x, fs, fc / 1.8, min(fc * 1.8, fs / 2 * 0.95)) + 0.3 * x


def clap_train(fs: int, rng: Rng) -> np.ndarray:
    """10-30 claps at 2.5-5 Hz with timing jitter."""
    k = int(rng.integers(10, 31))
    period = 1.0 / rng.uniform(2.5, 5.0)
    onsets = np.cumsum(np.r_[0.0, period * rng.uniform(0.9, 1.1, k - 1)])
    out = np.zeros(int((onsets[-1] + 0.1) * fs))
    for o in onsets:
        c = clap(fs, rng) * rng.uniform(0.7, 1.0)
        i = int(o * fs)
        m = min(len(c), len(out) - i)
        out[i:i + m] += c[:m]
    return out


def vacuum(n: int, fs: int, rng: Rng) -> np.ndarray:
    """A vacuum cleaner: motor harmonics on a 200-400 Hz fundamental that spins up over ~1.5 s,
    broadband airflow noise peaking at 1-4 kHz, and +-3 dB swells as it is pushed to and fro."""
    t = np.arange(n) / fs
    f_motor = rng.uniform(200, 400)
    spin = 0.5 + 0.5 * np.minimum(t / 1.5, 1.0)
    phase = 2 * np.pi * np.cumsum(f_motor * spin * (1 + 0.003 * np.sin(2 * np.pi * 0.7 * t))) / fs
    hum = sum(np.sin(k * phase + rng.uniform(0, 2 * np.pi)) / k for k in range(1, 12) if k * f_motor < fs / 2.1)
    air = bandpass(shaped_noise(n, fs, rng, -1.5, lo=80.0), fs, 300, None, order=1)
    air = air + 0.6 * bandpass(rng.standard_normal(n), fs, 1000, 4000)
    x = 0.5 * hum / np.std(hum) + air / np.std(air)
    stroke = 10 ** (3 * np.sin(2 * np.pi * rng.uniform(0.4, 0.9) * t) / 20)
    ramp = np.minimum(np.minimum(t / 0.5, (t[-1] - t) / 0.5), 1.0).clip(0, 1)
    return x * stroke * ramp
