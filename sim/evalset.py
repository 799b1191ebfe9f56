"""The shouting detector's evaluation set, generated from Debian packages, never committed audio.

Positives are real recorded speech (pocketsphinx-testdata: English read speech; fillets-ng-data-nl:
Dutch acted voice lines) and espeak-ng speech, turned into raised vocal effort with the published
acoustics of shouting, mixed as two-voice arguments at 1-5 m in a reverberant, noisy room.
Negatives are what a level threshold fires on: the same speech loud at normal effort, a loud TV,
music with a singer, laughter, door slams, clapping, a vacuum cleaner, and calm conversation.
See docs/evaluation.md. All levels are calibrated: dB SPL = dBFS + CAL_OFFSET_DB, where dBFS is
20 log10 of the RMS (or of |peak| for peak SPL) of float audio with full scale 1.0."""
from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy import ndimage, signal
from scipy.fft import next_fast_len

from core.errors import HubError
from sim import synth

FS_DEFAULT = 16000
# A virtual microphone: 94 dB SPL at -26 dBFS (a typical MEMS mic). A shout at 1 m (~90 dB(A),
# crest factor ~20 dB) peaks near -10 dBFS; a 105 dB SPL door-slam peak at -15 dBFS.
CAL_OFFSET_DB = 120.0
CALIBRATE_S = 10.0
EPISODE_WINDOW_S = 10.0
EPISODE_SHOUT_S = 4.0

SEARCH_ROOT = Path("/usr/share")          # tests monkeypatch this to simulate missing packages

# Speech levels in dB(A) at 1 m (A-weighted Leq over an utterance). Pearsons et al. (1977) and
# ANSI S3.5: normal effort ~55-62 dB(A), shouted ~82-90 dB(A); the brief asks ~88-90 at 1 m.
NORMAL_1M = (55.0, 62.0)
SHOUT_1M = (84.0, 90.0)
ROOM_NOISE = (30.0, 40.0)
POSITIVE_CATEGORIES = ("shout-en", "shout-nl", "shout-espeak")
NEGATIVE_CATEGORIES = ("loud-speech", "tv", "music", "laughter", "door-slam", "clapping", "vacuum", "calm")
_POSITIVE_DISTANCES = (1.0, 3.0, 2.0, 5.0, 4.0)   # cycled; every category gets a 1 m clip first


class EvalSetError(HubError, FileNotFoundError):
    """A speech source (Debian package or program) the evaluation set is built from is missing."""


@dataclass(frozen=True)
class Clip:
    name: str
    positive: bool
    category: str
    fs: int
    audio: np.ndarray                              # float32 mono at the microphone
    shout_spans: tuple[tuple[float, float], ...]   # raised-effort speech active (s from start);
    #                                                a tv negative's brief dramatic lines are here too
    sustained_at: float | None                     # first t with >= 4 s of spans in (t-10, t]
    distance_m: float


# ----------------------------------------------------------------------------- sources

_PACKAGES = {
    "pocketsphinx-en": ("pocketsphinx-testdata", "pocketsphinx/test/data", "**/*.wav"),
    "fillets-nl": ("fillets-ng-data-nl", "games/fillets-ng/sound", "*/nl/*.ogg"),
}


def sources() -> dict[str, list[Path]]:
    """Speech files per corpus, plus the espeak-ng binary. Raises EvalSetError naming the
    Debian package to install when one is missing."""
    found: dict[str, list[Path]] = {}
    for corpus, (package, sub, pattern) in _PACKAGES.items():
        root = SEARCH_ROOT / sub
        files = sorted(root.glob(pattern)) if root.is_dir() else []
        if not files:
            raise EvalSetError(f"no speech for the evaluation set under {root} ({pattern}): "
                               f"install the Debian package {package} (apt-get install {package})")
        found[corpus] = files
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise EvalSetError("espeak-ng not found on PATH: install the Debian package espeak-ng")
    found["espeak-ng"] = [Path(exe)]
    return found


# ----------------------------------------------------------------------------- levels

# The set's levels are its ground truth, so they are measured here, not with the hub's own meter
# (dsp.levels, the thing under test): A-weighting applied exactly in the frequency domain, which
# also has no filter settling on 0.3-4 s utterances. The formula is IEC 61672's with rounded pole
# frequencies; it is within 0.005 dB of dsp.weighting.a_weighting_db from 10 Hz to 8 kHz (a test
# checks) and is kept as is because every clip's calibrated level was set with it.
def _a_weighting(f: np.ndarray) -> np.ndarray:
    """IEC 61672 A-weighting magnitude (linear), 0 dB at 1 kHz."""
    f2 = np.asarray(f, float) ** 2
    ra = (12194.0 ** 2 * f2 ** 2) / ((f2 + 20.6 ** 2) * np.sqrt((f2 + 107.7 ** 2) * (f2 + 737.9 ** 2))
                                     * (f2 + 12194.0 ** 2))
    return ra * 10 ** (2.0 / 20)


def laeq(x: np.ndarray, fs: int) -> float:
    """A-weighted equivalent level of x in dB SPL (calibrated by CAL_OFFSET_DB)."""
    n = next_fast_len(len(x), real=True)            # zero-padding keeps the energy (Parseval)
    spec = np.fft.rfft(np.asarray(x, float), n)
    spec *= _a_weighting(np.fft.rfftfreq(n, 1 / fs))
    power = np.sum(np.abs(spec[1:]) ** 2) * 2 / (n * len(x))
    return 10 * np.log10(power + 1e-20) + CAL_OFFSET_DB


def peak_spl(x: np.ndarray) -> float:
    return 20 * np.log10(np.max(np.abs(x)) + 1e-20) + CAL_OFFSET_DB


def _at_laeq(x: np.ndarray, fs: int, target_db: float) -> np.ndarray:
    return x * 10 ** ((target_db - laeq(x, fs)) / 20)


def _at_peak(x: np.ndarray, target_db: float) -> np.ndarray:
    return x * 10 ** ((target_db - peak_spl(x)) / 20)


# ----------------------------------------------------------------------------- shouting

def _frames(x: np.ndarray, n: int, hop: int) -> np.ndarray:
    """Frames of n samples every hop, zero-padded so the last one reaches the end of x (a copy;
    dsp.features.frame_view is a view for its fixed 40/20 ms frames and drops the tail)."""
    pad = np.concatenate([x, np.zeros(n)])
    count = max(1, (len(x) - 1) // hop + 1)
    idx = np.arange(n)[None, :] + hop * np.arange(count)[:, None]
    return pad[idx]


_VOICING_FRAME_S, _VOICING_HOP_S = 0.03, 0.01


def voicing(x: np.ndarray, fs: int) -> np.ndarray:
    """Per 10 ms hop, a voiced flag for the 30 ms frame starting there: normalised autocorrelation
    peak > 0.45 at a 70-450 Hz lag, and energy within 35 dB of the loudest frame. Deliberately not
    the detector's voicing (dsp.features): which frames the set raises must not be decided by the
    detector it evaluates."""
    n, hop = int(_VOICING_FRAME_S * fs), int(_VOICING_HOP_S * fs)
    fr = _frames(x, n, hop)
    fr = fr - fr.mean(axis=1, keepdims=True)
    spec = np.fft.rfft(fr, 2 * n, axis=1)
    ac = np.fft.irfft(np.abs(spec) ** 2, axis=1)[:, :n]
    lo, hi = int(fs / 450), int(fs / 70)
    peak = ac[:, lo:hi].max(axis=1) / (ac[:, 0] + 1e-12)
    energy = 10 * np.log10(ac[:, 0] + 1e-20)
    return (peak > 0.45) & (energy > energy.max() - 35)


def _envelope(mag: np.ndarray, n_fft: int, fs: int) -> np.ndarray:
    """Spectral envelope per frame through the harmonic peaks: a running maximum over 500 Hz
    (wider than any F0 spacing) then a 500 Hz moving average. Unlike a cepstral envelope it has
    no valley below F0, which would otherwise make the correction boost the new fundamental."""
    width = max(3, round(500.0 * n_fft / fs))
    peak = ndimage.maximum_filter1d(mag, width, axis=1, mode="nearest")
    return ndimage.uniform_filter1d(peak, width, axis=1, mode="nearest") + 1e-12


def _pitch_shift(x: np.ndarray, fs: int, semitones: float, tilt_db: float,
                 formant_ratio: float = 1.0) -> np.ndarray:
    """Duration-preserving pitch shift: phase-vocoder time stretch by r, then resampling by 1/r.
    Each stretched frame is re-shaped with the original formant envelope (so F0 rises but the
    vowel formants stay close to the talker's), and a high shelf of tilt_db from ~1 kHz is
    applied at the output frequencies. `formant_ratio` != 1 moves the envelope's low part (F1
    region, below 1.5 kHz, tapering to none at 3 kHz) up by that ratio: F1 rises with effort
    (Traunmüller & Eriksson 2000), the second way sim/sound_sources.py raises effort."""
    n_fft = 2 ** round(np.log2(0.064 * fs))
    ha = n_fft // 8
    hs = round(ha * 2 ** (semitones / 12))
    r = hs / ha
    win = signal.windows.hann(n_fft, sym=False)
    xp = np.concatenate([np.zeros(n_fft), x, np.zeros(n_fft)])
    spec = np.fft.rfft(_frames(xp, n_fft, ha) * win, axis=1)
    mag, phase = np.abs(spec), np.angle(spec)
    omega = 2 * np.pi * np.arange(mag.shape[1]) / n_fft
    dphi = np.diff(phase, axis=0, prepend=phase[:1] - omega * ha) - omega * ha
    inst = omega + (np.mod(dphi + np.pi, 2 * np.pi) - np.pi) / ha
    psi = phase[0] + np.cumsum(inst * hs, axis=0) - inst[0] * hs
    env = _envelope(mag, n_fft, fs)
    k = np.arange(mag.shape[1])
    f_k = k * r * fs / n_fft
    warp = 1.0 + (formant_ratio - 1.0) * np.clip((3000.0 - f_k) / 1500.0, 0.0, 1.0)
    kr = np.minimum(k * r / warp, k[-1])
    env_out = np.stack([np.interp(kr, k, e) for e in env])     # envelope at the output frequency
    corr = np.clip(env_out / (env + 1e-12), 10 ** (-24 / 20), 10 ** (24 / 20))
    f_out = k * r * fs / n_fft
    shelf = 10 ** (tilt_db * np.clip(np.log2(np.maximum(f_out, 1) / 1000.0) + 0.5, 0, 1) / 20)
    frames = np.fft.irfft(mag * corr * shelf * np.exp(1j * psi), n_fft, axis=1) * win
    out = np.zeros(hs * (len(frames) - 1) + n_fft)
    norm = np.zeros_like(out)
    for i, fr in enumerate(frames):
        out[i * hs:i * hs + n_fft] += fr
        norm[i * hs:i * hs + n_fft] += win ** 2
    out /= np.maximum(norm, 1e-3 * norm.max())
    q = Fraction(ha, hs)
    y = signal.resample_poly(out, q.numerator, q.denominator)
    start = round(n_fft - n_fft / 2 + n_fft / (2 * r))
    y = y[start:start + len(x)]
    return np.concatenate([y, np.zeros(len(x) - len(y))])


def shouting(speech: np.ndarray, fs: int, rng: np.random.Generator, semitones: float,
             gain_db: float, tilt_db: float, formant_ratio: float = 1.0) -> np.ndarray:
    """Raised vocal effort from normal-effort speech, after the acoustics of shouting:
    - F0 up `semitones` (shouted F0 is ~8-12 semitones above normal; Traunmüller & Eriksson 2000,
      Rostolland 1982), duration kept;
    - a flatter spectral tilt: +`tilt_db` high shelf from ~1 kHz (the energy above 1 kHz grows
      faster than the overall level with effort; Rostolland 1982, Lu & Cooke 2008);
    - +`gain_db` on the voiced frames relative to the input; unvoiced frames (consonants, pauses)
      get 6-12 dB less (drawn from rng): effort raises vowels much more than consonants
      (Traunmüller & Eriksson 2000).
    Returns float32 at the raised level (the caller calibrates the final SPL)."""
    x = np.asarray(speech, float)
    y = _pitch_shift(x, fs, semitones, tilt_db, formant_ratio)
    per_sample = np.repeat(voicing(x, fs), int(_VOICING_HOP_S * fs))[:len(x)]  # frames cover x
    if per_sample.any():
        y *= np.sqrt(np.mean(x[per_sample] ** 2) / (np.mean(y[per_sample] ** 2) + 1e-20))
    cons_db = gain_db - rng.uniform(6.0, 12.0)
    g_db = np.where(per_sample, gain_db, cons_db)
    smooth = int(0.02 * fs)
    g_db = np.convolve(g_db, np.ones(smooth) / smooth, mode="same")
    return (y * 10 ** (g_db / 20)).astype(np.float32)


# ----------------------------------------------------------------------------- speech pools

EN_ARGUE = ["You never listen to me!", "Why did you do that again?", "I told you a hundred times!",
            "Don't walk away from me!", "That is not what I said!", "You always do this!",
            "Stop it, just stop it now!", "Where were you all night?"]
NL_ARGUE = ["Je luistert nooit naar mij!", "Waarom doe je dat nou weer?", "Ik heb het je honderd keer gezegd!",
            "Loop niet bij me weg!", "Dat heb ik helemaal niet gezegd!", "Je doet dit altijd!",
            "Hou op, hou nou eens op!", "Waar was je de hele nacht?"]
EN_CALM = ["Shall we have pasta tonight?", "The bus was late again this morning.",
           "Can you pass me the salt, please?", "I think it might rain later.",
           "Did you call your mother today?", "The kids are asleep now."]
NL_CALM = ["Zullen we vanavond pasta eten?", "De bus was vanochtend weer te laat.",
           "Kun je het zout even aangeven?", "Ik denk dat het straks gaat regenen.",
           "Heb je je moeder vandaag gebeld?", "De kinderen slapen nu."]
ESPEAK_VOICES = {"en": (("en-us+m3", 48, 165), ("en+f3", 55, 170)),
                 "nl": (("nl+m1", 45, 160), ("nl+f2", 55, 165))}
_MEM: dict[str, np.ndarray] = {}


def _cache_path(key: str, cache_dir: Path | None) -> tuple[str, Path | None]:
    h = hashlib.sha1(key.encode()).hexdigest()[:20]
    return h, (cache_dir / f"evalset-{h}.npy" if cache_dir else None)


def _is_cached(key: str, cache_dir: Path | None) -> bool:
    h, path = _cache_path(key, cache_dir)
    return h in _MEM or (path is not None and path.exists())


def _cached(key: str, cache_dir: Path | None, make: Callable[[], np.ndarray]) -> np.ndarray:
    h, path = _cache_path(key, cache_dir)
    if h in _MEM:
        return _MEM[h]
    if path is not None and path.exists():
        arr = np.load(path)
    else:
        arr = np.asarray(make(), np.float32)
        if path is not None:   # written whole, then renamed: a reader never sees half a file
            path.parent.mkdir(parents=True, exist_ok=True)
            part = path.with_suffix(f".{os.getpid()}.part")
            with part.open("wb") as f:
                np.save(f, arr)
            os.replace(part, path)
    _MEM[h] = arr
    return arr


def _to_fs(x: np.ndarray, fs_in: int, fs: int) -> np.ndarray:
    if x.ndim > 1:
        x = x.mean(axis=1)
    if fs_in != fs:
        q = Fraction(fs, fs_in)
        x = signal.resample_poly(x, q.numerator, q.denominator)
    return x


def _trim(x: np.ndarray, fs: int) -> np.ndarray:
    """Remove DC/rumble and leading/trailing silence (frames > 35 dB below the loudest)."""
    x = synth.bandpass(x, fs, 70.0, None)
    hop = int(0.01 * fs)
    e = 10 * np.log10(np.mean(_frames(x, hop, hop) ** 2, axis=1) + 1e-20)
    on = np.flatnonzero(e > e.max() - 35)
    x = x[on[0] * hop:(on[-1] + 1) * hop]
    fade = np.minimum(1.0, np.minimum(np.arange(len(x)), np.arange(len(x))[::-1]) / (0.01 * fs))
    return x * fade


def _split(x: np.ndarray, fs: int, max_s: float = 4.0) -> list[np.ndarray]:
    """Cut long read sentences into utterances of at most max_s at their quietest 50 ms."""
    if len(x) <= max_s * fs:
        return [x]
    lo, hi = int(1.5 * fs), int(max_s * fs)
    w = int(0.05 * fs)
    energy = np.convolve(x[lo:hi] ** 2, np.ones(w), mode="same")
    cut = lo + int(np.argmin(energy[w:-w])) + w
    return [_trim(x[:cut], fs), *_split(_trim(x[cut:], fs), fs, max_s)]


def _load_file(path: Path, fs: int, cache_dir: Path | None) -> np.ndarray:
    def make() -> np.ndarray:
        x, fs_in = sf.read(str(path), dtype="float64", always_2d=False)
        return _trim(_to_fs(x, fs_in, fs), fs)
    return _cached(f"file:{path}:{fs}", cache_dir, make)


def _espeak_many(jobs: Sequence[tuple[str, str, int, int]], fs: int, cache_dir: Path | None) -> list[np.ndarray]:
    """Synthesise (text, voice, pitch, speed) jobs, 4 espeak-ng processes at a time."""
    out: dict[int, np.ndarray] = {}
    todo = []
    for i, (text, voice, pitch, speed) in enumerate(jobs):
        key = f"espeak:{voice}:{pitch}:{speed}:{text}:{fs}"
        if _is_cached(key, cache_dir):
            out[i] = _cached(key, cache_dir, lambda: np.zeros(1))
        else:
            todo.append((i, key))
    for b in range(0, len(todo), 4):
        procs = []
        for i, key in todo[b:b + 4]:
            text, voice, pitch, speed = jobs[i]
            procs.append((i, key, subprocess.Popen(
                ["espeak-ng", "-v", voice, "-p", str(pitch), "-s", str(speed), "-a", "100", "--stdout", text],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)))
        for i, key, p in procs:
            wav, _ = p.communicate()
            x, fs_in = sf.read(io.BytesIO(wav), dtype="float64")
            out[i] = _cached(key, cache_dir, lambda x=x, fs_in=fs_in: _trim(_to_fs(x, fs_in, fs), fs))
    return [out[i] for i in range(len(jobs))]


@dataclass
class _Household:
    """Two talkers: their calm (normal-effort) utterances and the lines they argue with."""
    name: str
    calm: list[list[np.ndarray]]
    argue: list[list[np.ndarray]]


def _households(fs: int, seed: int, cache_dir: Path | None) -> dict[str, _Household]:
    src = sources()
    rng = np.random.default_rng([seed, 7919])
    ps = src["pocketsphinx-en"]
    en = [[u for p in ps if "librivox" in p.parts for u in _split(_load_file(p, fs, cache_dir), fs)],
          [_load_file(p, fs, cache_dir) for p in ps if "librivox" not in p.parts]]
    nl = []
    for who in ("-m-", "-v-"):          # fillets' two fish: two different actors
        cand = [p for p in src["fillets-nl"] if who in p.name] or src["fillets-nl"]
        pick = rng.choice(len(cand), size=min(40, len(cand)), replace=False)
        utts = [_load_file(cand[i], fs, cache_dir) for i in sorted(pick)]
        nl.append([u for u in utts if 1.0 * fs <= len(u) <= 4.5 * fs][:20] or utts[:20])
    homes = {"en": _Household("en", en, en), "nl": _Household("nl", nl, nl)}
    for lang, (calm, argue) in {"en": (EN_CALM, EN_ARGUE), "nl": (NL_CALM, NL_ARGUE)}.items():
        jobs = [(t, v, p, s) for v, p, s in ESPEAK_VOICES[lang] for t in calm + argue]
        wavs = _espeak_many(jobs, fs, cache_dir)
        per = len(calm) + len(argue)
        homes[f"espeak-{lang}"] = _Household(
            f"espeak-{lang}",
            [wavs[i * per:i * per + len(calm)] for i in range(2)],
            [wavs[i * per + len(calm):(i + 1) * per] for i in range(2)])
    return homes


# ----------------------------------------------------------------------------- scenes

class _Scene:
    """Sources are rendered into the room one track at a time: dry track -> room impulse response
    for the source's distance -> calibrated level at the microphone -> summed."""

    def __init__(self, fs: int, rng: np.random.Generator, duration_s: float):
        self.fs, self.rng = fs, rng
        self.rt60 = rng.uniform(0.3, 0.6)                 # furnished living room
        self.mix = np.zeros(int(duration_s * fs))
        self.spans: list[tuple[float, float]] = []
        self.distance = 1.0                               # of the clip's main (test) source
        self.length = duration_s                          # the clip is cut to this at the end
        self._dry: dict[float, np.ndarray] = {}
        self._irs: dict[float, np.ndarray] = {}

    def track(self) -> np.ndarray:
        return np.zeros(len(self.mix))

    def put(self, track: np.ndarray, x: np.ndarray, t: float) -> tuple[float, float]:
        i = round(t * self.fs)
        m = max(0, min(len(x), len(track) - i))
        track[i:i + m] += x[:m]
        return (i / self.fs, (i + m) / self.fs)

    def render(self, dry: np.ndarray, distance_m: float) -> None:
        """Queue a dry track; tracks at the same distance share one impulse response."""
        key = round(distance_m, 2)
        if key in self._dry:
            self._dry[key] += dry
        else:
            self._dry[key] = dry

    def reverberate(self, x: np.ndarray, distance_m: float) -> np.ndarray:
        if distance_m not in self._irs:
            self._irs[distance_m] = synth.room_ir(self.fs, self.rng, distance_m, self.rt60)
        return signal.oaconvolve(x, self._irs[distance_m])[:len(x)]

    def room_noise(self) -> None:
        noise = synth.room_noise(len(self.mix), self.fs, self.rng)
        level = laeq(noise[:5 * self.fs], self.fs)        # stationary: 5 s measure it
        self.mix += noise * 10 ** ((self.rng.uniform(*ROOM_NOISE) - level) / 20)

    def talk(self, voices: list[list[np.ndarray]], t0: float, t1: float, level_1m: float,
             distance_m: float, pause: tuple[float, float] = (0.3, 1.5),
             effort: Callable[[np.ndarray], np.ndarray] | None = None,
             speech_s: float | None = None) -> list[tuple[float, float]]:
        """Voices alternate (each utterance at level_1m +- 2 dB, less 20 log10 d) from t0 until t1
        or until speech_s seconds were spoken; `effort` transforms each utterance (shouting).
        Returns the utterances' spans."""
        tracks = [self.track() for _ in voices]
        spans, t, spoken, who = [], t0, 0.0, int(self.rng.integers(len(voices)))
        level = level_1m - 20 * np.log10(distance_m)
        while True:
            u = voices[who][int(self.rng.integers(len(voices[who])))]
            if speech_s is not None:
                u = u[:int((speech_s - spoken) * self.fs)] if spoken + len(u) / self.fs > speech_s else u
            if t + len(u) / self.fs > t1 or len(u) < 0.3 * self.fs:
                break
            u = effort(u) if effort else u
            spans.append(self.put(tracks[who], _at_laeq(u, self.fs, level + self.rng.uniform(-2, 2)), t))
            spoken += len(u) / self.fs
            t = spans[-1][1] + self.rng.uniform(*pause)
            who = (who + 1) % len(voices)
            if speech_s is not None and spoken >= speech_s - 0.3:
                break
        for tr in tracks:
            self.render(tr, distance_m)
        return spans

    def calibration(self, home: _Household) -> None:
        """The installer's calibration: the household's calm conversation (room noise is added
        to the whole clip at the end)."""
        self.talk(home.calm, 0.5, CALIBRATE_S - 0.2, self.rng.uniform(*NORMAL_1M), self.rng.uniform(1.0, 3.0))

    def calm_tail(self, home: _Household, t0: float) -> None:
        self.talk(home.calm, t0 + self.rng.uniform(1.0, 3.0), self.length - 0.3,
                  self.rng.uniform(*NORMAL_1M), self.rng.uniform(1.0, 3.0), pause=(1.0, 3.0))

    def audio(self) -> np.ndarray:
        for d, dry in sorted(self._dry.items()):
            nz = np.flatnonzero(dry)                      # convolve only where the source sounds
            if len(nz):
                a, b = nz[0], min(len(dry), nz[-1] + int(self.rt60 * 1.2 * self.fs) + 1)
                self.mix[a:b] += self.reverberate(dry[a:b], d)
        self._dry.clear()
        self.mix = self.mix[:round(self.length * self.fs)]
        peak = np.max(np.abs(self.mix))
        if peak >= 1.0:
            raise ValueError(f"evaluation clip clips (peak {peak:.2f} at {np.argmax(np.abs(self.mix))/self.fs:.2f} s)")
        return self.mix.astype(np.float32)


def sustained_at(spans: Sequence[tuple[float, float]], window_s: float = EPISODE_WINDOW_S,
                 need_s: float = EPISODE_SHOUT_S, resolution_s: float = 0.001) -> float | None:
    """First time t at which the spans cover >= need_s of (t - window_s, t]."""
    if not spans:
        return None
    end = max(e for _, e in spans)
    t = np.arange(0.0, end + resolution_s, resolution_s)
    covered = np.zeros_like(t)
    for s, e in spans:
        covered += np.clip(np.minimum(t, e) - np.maximum(t - window_s, s), 0, None)
    hit = np.flatnonzero(covered >= need_s - 1e-9)
    return round(float(t[hit[0]]), 3) if len(hit) else None


def _shout_effort(scene: _Scene) -> Callable[[np.ndarray], np.ndarray]:
    """One talker's shouting parameters for the clip (a talker's raised F0 is fairly stable)."""
    rng = scene.rng
    semi, gain, tilt = rng.uniform(8, 12), rng.uniform(20, 30), rng.uniform(6, 10)
    return lambda u: shouting(u, scene.fs, rng, semi, gain, tilt)


# ----------------------------------------------------------------------------- categories

def _argument(scene: _Scene, home: _Household, distance_m: float) -> float:
    """Calm talk, then an argument: two voices alternating shouted lines with short pauses,
    6-15 s of shouting. Returns the time the argument ends."""
    rng = scene.rng
    start = CALIBRATE_S + rng.uniform(1.0, 4.0)
    scene.talk(home.calm, CALIBRATE_S + 0.2, start - 0.3, rng.uniform(*NORMAL_1M), distance_m)
    efforts = [_shout_effort(scene), _shout_effort(scene)]
    turn = iter(range(10 ** 6))
    spans = scene.talk(home.argue, start, start + 25.0, rng.uniform(*SHOUT_1M), distance_m,
                       pause=(0.2, 0.8), effort=lambda u: efforts[next(turn) % 2](u),
                       speech_s=rng.uniform(6.0, 15.0))
    scene.spans += spans
    return spans[-1][1]


def _loud_speech(scene: _Scene, home: _Household, i: int) -> float:
    """The same talkers at normal effort, as loud at the mic as a shout at 1 m: talking right
    next to the hub, or (odd clips) one side of a loud phone call."""
    rng = scene.rng
    voices = home.argue if i % 2 == 0 else home.argue[:1]
    d = scene.distance = rng.uniform(0.2, 0.4)
    spans = scene.talk(voices, CALIBRATE_S + rng.uniform(1.0, 4.0), CALIBRATE_S + 28.0,
                       rng.uniform(*SHOUT_1M) + 20 * np.log10(d), d, pause=(0.2, 0.8),
                       speech_s=rng.uniform(8.0, 15.0))
    return spans[-1][1]


def _tv(scene: _Scene, tv_voices: _Household) -> float:
    """A TV across the room: dialogue from other voices over a music bed, band-limited by the
    set's speakers, 70-78 dB(A); one or two dramatic shouted lines of <= 2.5 s, >= 10 s apart."""
    rng, fs = scene.rng, scene.fs
    t0, dur = CALIBRATE_S + rng.uniform(0.5, 2.0), rng.uniform(20.0, 25.0)
    on = scene.track()
    speech = scene.track()
    dramatic_at = [t0 + rng.uniform(2.0, 6.0)]
    if rng.random() < 0.6:
        dramatic_at.append(dramatic_at[0] + rng.uniform(11.0, 13.0))
    effort = _shout_effort(scene)
    t = t0
    while t < t0 + dur - 1.0:
        v = tv_voices.calm[int(rng.integers(2))]
        u = v[int(rng.integers(len(v)))]
        loud = 0.0
        if dramatic_at and t >= dramatic_at[0]:
            dramatic_at.pop(0)
            u, loud = effort(tv_voices.argue[0][int(rng.integers(len(tv_voices.argue[0])))][:int(2.5 * fs)]), 6.0
        u = u[:int((t0 + dur - t) * fs)]
        span = scene.put(speech, _at_laeq(u, fs, 70.0 + loud), t)
        if loud:
            scene.spans.append(span)
        t = span[1] + rng.uniform(0.1, 0.6)
    n0, n1 = int(t0 * fs), int((t0 + dur) * fs)
    bed = synth.music(n1 - n0, fs, rng, singer=False)
    on[n0:n1] = _at_laeq(bed, fs, 70.0 - rng.uniform(10, 15)) * np.minimum(1, np.arange(n1 - n0) / (0.3 * fs))
    tv = synth.loudspeaker(on + speech, fs)
    tv[n0:n1] = _at_laeq(tv[n0:n1], fs, rng.uniform(70.0, 78.0))
    tv[:n0] = tv[n1:] = 0.0
    scene.distance = rng.uniform(2.0, 3.5)
    scene.render(tv, scene.distance)
    return t0 + dur


def _music(scene: _Scene) -> float:
    rng, fs = scene.rng, scene.fs
    t0, dur = CALIBRATE_S + rng.uniform(0.5, 2.0), rng.uniform(20.0, 25.0)
    tr = scene.track()
    m = synth.music(int(dur * fs), fs, rng, singer=True)
    scene.put(tr, _at_laeq(synth.bandpass(m, fs, 50.0, None), fs, rng.uniform(75.0, 85.0)), t0)
    scene.distance = rng.uniform(1.5, 3.0)
    scene.render(tr, scene.distance)
    return t0 + dur


def _laughter(scene: _Scene, home: _Household) -> float:
    """Calm conversation with 4-6 laughing bursts of 1-3 s, a few seconds apart, 72-82 dB(A)."""
    rng, fs = scene.rng, scene.fs
    t = CALIBRATE_S + rng.uniform(0.5, 2.0)
    d = scene.distance = rng.uniform(1.0, 2.0)
    tr = scene.track()
    for _ in range(int(rng.integers(4, 7))):
        b = synth.laugh_burst(fs, rng)[:int(3.0 * fs)]
        span = scene.put(tr, _at_laeq(b, fs, rng.uniform(72.0, 82.0) - 20 * np.log10(d)), t)
        gap = rng.uniform(3.0, 6.0)
        scene.talk(home.calm, span[1] + 0.5, span[1] + gap - 0.3, rng.uniform(*NORMAL_1M), d)
        t = span[1] + gap
    scene.render(tr, d)
    return t


def _impulses(scene: _Scene, home: _Household, kind: str) -> float:
    """Door slams (3-5, peaks 95-105 dB SPL at the mic) or clapping (2-3 trains of 10-30 claps,
    peaks 95-105 dB SPL), with calm conversation going on."""
    rng, fs = scene.rng, scene.fs
    t, end = CALIBRATE_S + rng.uniform(0.5, 2.0), CALIBRATE_S + rng.uniform(20.0, 24.0)
    scene.talk(home.calm, CALIBRATE_S + 0.3, end, rng.uniform(*NORMAL_1M), rng.uniform(1.0, 3.0))
    count = int(rng.integers(3, 6)) if kind == "door-slam" else int(rng.integers(2, 4))
    d = scene.distance = rng.uniform(2.0, 4.0) if kind == "door-slam" else rng.uniform(1.0, 2.5)
    for _ in range(count):
        x = synth.door_slam(fs, rng) if kind == "door-slam" else synth.clap_train(fs, rng)
        wet = scene.reverberate(np.concatenate([x, np.zeros(int(scene.rt60 * fs))]), round(d, 2))
        span = scene.put(scene.mix, _at_peak(wet, rng.uniform(95.0, 105.0)), t)
        t = span[1] + rng.uniform(2.0, 5.0)
        if t > end:
            break
    return max(t, end)


def _vacuum(scene: _Scene) -> float:
    rng, fs = scene.rng, scene.fs
    t0, dur = CALIBRATE_S + rng.uniform(0.5, 2.0), rng.uniform(22.0, 28.0)
    tr = scene.track()
    scene.put(tr, _at_laeq(synth.vacuum(int(dur * fs), fs, rng), fs, rng.uniform(75.0, 80.0)), t0)
    scene.distance = rng.uniform(1.0, 2.0)
    scene.render(tr, scene.distance)
    return t0 + dur


def _calm(scene: _Scene, home: _Household) -> float:
    rng = scene.rng
    end = CALIBRATE_S + rng.uniform(20.0, 25.0)
    scene.distance = rng.uniform(1.0, 3.0)
    spans = scene.talk(home.calm, CALIBRATE_S + 0.3, end, rng.uniform(*NORMAL_1M), scene.distance,
                       pause=(0.2, 1.2))
    return spans[-1][1] if spans else end


# ----------------------------------------------------------------------------- build

_HOMES_FOR = {"shout-en": ("en",), "shout-nl": ("nl",), "shout-espeak": ("espeak-en", "espeak-nl")}
_ALL_HOMES = ("en", "nl", "espeak-en", "espeak-nl")
_LENGTH_S = 45.0


def _clip(category: str, i: int, fs: int, seed: int, homes: dict[str, _Household]) -> Clip:
    rng = np.random.default_rng([seed, (POSITIVE_CATEGORIES + NEGATIVE_CATEGORIES).index(category), i])
    scene = _Scene(fs, rng, _LENGTH_S)
    positive = category in POSITIVE_CATEGORIES
    names = _HOMES_FOR.get(category, _ALL_HOMES)
    home = homes[names[i % len(names)]]
    scene.calibration(home)
    if positive:
        scene.distance = _POSITIVE_DISTANCES[i % len(_POSITIVE_DISTANCES)]
        end = _argument(scene, home, scene.distance)
    elif category == "loud-speech":
        end = _loud_speech(scene, home, i)
    elif category == "tv":
        end = _tv(scene, homes[_ALL_HOMES[(_ALL_HOMES.index(home.name) + 1) % len(_ALL_HOMES)]])
    elif category == "music":
        end = _music(scene)
    elif category == "laughter":
        end = _laughter(scene, home)
    elif category in ("door-slam", "clapping"):
        end = _impulses(scene, home, category)
    elif category == "vacuum":
        end = _vacuum(scene)
    else:
        end = _calm(scene, home)
    length = float(np.clip(end + rng.uniform(5.0, 8.0), 30.0, _LENGTH_S))
    scene.length = length
    scene.calm_tail(home, end)
    scene.room_noise()
    spans = tuple(sorted((round(s, 3), round(e, 3)) for s, e in scene.spans if s < length))
    sus = sustained_at(spans)
    if positive and sus is None:
        raise AssertionError(f"{category}-{i}: the argument is not sustained")   # a bug in the set
    d = round(scene.distance, 1)
    return Clip(name=f"{category}-{d:g}m-{i:02d}", positive=positive, category=category, fs=fs,
                audio=scene.audio(), shout_spans=spans, sustained_at=sus, distance_m=d)


def build(fs: int = FS_DEFAULT, seed: int = 0, n_per_category: int = 4,
          cache_dir: Path | None = None) -> list[Clip]:
    """The evaluation set: n_per_category clips per category (positives first), deterministic
    for a seed."""
    homes = _households(fs, seed, cache_dir)
    return [_clip(c, i, fs, seed, homes)
            for c in POSITIVE_CATEGORIES + NEGATIVE_CATEGORIES for i in range(n_per_category)]


def write_wav(clip: Clip, path: Path | str) -> None:
    """16-bit PCM WAV of the clip (for listening, the demo and `timeout-hub detect`)."""
    sf.write(str(path), np.clip(clip.audio, -1.0, 1.0), clip.fs, subtype="PCM_16")
