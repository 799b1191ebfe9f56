"""Shouting score per second and shouting *episodes*, relative to the household's own baseline.

A step (the last second, judged every STEP_S) scores high only when voiced speech in it shows raised
vocal effort against what this household sounds like normally: a flatter spectral tilt (more energy
above 1 kHz) and a higher F0, at a level above the normal speech level, with the syllabic level
modulation of speech (which a vacuum cleaner or a held musical note lacks) and its articulation
(which a laugh's "ha-ha-ha" lacks). Raised pitch alone or a flatter tilt alone is not effort: effort
raises every talker's F0, so the tilt counts only with F0 above the household's lowest normal voice.
An episode needs that sustained (`Sustained`): at least `need_s` of shouting within `window_s`, and
it ends only when the window has (almost) none left, so one loud burst neither starts nor interrupts
it.

The baseline is seeded by the installer's calibration and keeps learning, slowly, from seconds
that are clearly not shouting. It holds a few numbers and a 40-bin histogram of normal F0, from
which it finds up to two voices, so each partner's pitch is judged against their own normal
voice; no audio is kept (R1).
"""
from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np

from dsp.features import Frames
from dsp.quantiles import percentile

MIN_VOICED = 0.16            # of a step's frames voiced (160 ms a second) before effort is judged
STEP_S = 0.5                 # judged every half second (over the last second): onset resolution
# The level modulation is measured over the last 4 s, not the step's 1 s: within one second of
# continuous raised speech the room's reverberation fills the gaps between syllables (spread
# 2-4 dB), so on 1 s the evidence came and went with where the pauses fell. 2 s was not enough
# either: a shouted utterance lasts 2-4 s, and a 2 s window inside its first one saw no phrase
# boundary (spread 3.5-5 dB), so the first utterance did not count and onsets came 3-5 s late;
# 4 s holds a breath pause (docs/sound.md). The articulation uses the same window.
MODULATION_S = 4.0
LEARN_RATE = 1.0 / 300.0     # ~5 minutes of normal sound to move the baseline most of the way
F0_QUANTILE = 0.65           # the one-voice reference is the upper part of normal F0
# Normal speech's F0 distribution: a histogram in 1-semitone bins (re 100 Hz) over the F0 range
# the features measure (70-600 Hz). A couple has two voices; where it shows two clear peaks, each
# partner's pitch is measured against their own normal voice (`Baseline.voices`).
HIST_LO, HIST_BINS = -7, 40          # bins [-7, -6), ... [32, 33) semitones
TWO_VOICES_MIN_SHARE = 0.2           # each voice holds at least this share of normal voiced speech
TWO_VOICES_MIN_GAP_ST = 5.0          # and their medians are at least this far apart
MIN_HIST_SECONDS = 5.0               # of voiced normal speech before the histogram is trusted
HIST_MAX_ABOVE_DB = 8.0              # learnt only from speech at most this far above normal
VOICE_MAX_ST = 20.0                  # ~320 Hz: a higher "voice" is not a partner's speaking voice
VOICE_REF_Q = 0.5                    # each voice's reference: its median
HIGH_VOICE_FLOOR_Q = 0.1             # the higher voice's normal range starts at its 10th percentile
LOWEST_VOICE_Q = 0.25                # one voice: the lowest normal voice is taken at this quantile
HIST_SEED_S = 30.0                   # below this, the histogram is the mean of all it heard
# a step of speech this close to the normal level and scoring ~0 is calm talk: between fits of
# laughter it counts against an episode (`Sustained`), CALM_WEIGHT yes-steps each
CALM_ABOVE_DB = 4.0
CALM_WEIGHT = 1.0
NORMAL_SCORE = 0.1                   # a step scoring below this is plainly not shouting
ARTICULATION_NEAR_DB = 10.0          # the articulation is measured on frames this close to the step's speech


def _voice_modes(hist: np.ndarray) -> tuple[float, ...]:
    """One or two voice modes (semitones) of an F0 histogram: a 1-D two-means split (Otsu) of the
    bins; two modes when both sides hold TWO_VOICES_MIN_SHARE and their weighted medians are
    TWO_VOICES_MIN_GAP_ST apart, else one (the 65th percentile, as the one-voice reference)."""
    w = np.asarray(hist, dtype=np.float64)
    total = w.sum()
    if total <= 0:
        return ()
    centres = HIST_LO + 0.5 + np.arange(len(w))
    cw = np.cumsum(w)
    cm = np.cumsum(w * centres)
    w0, w1 = cw[:-1], total - cw[:-1]
    ok = (w0 > 0) & (w1 > 0)
    m0 = np.where(ok, cm[:-1] / np.where(ok, w0, 1), 0.0)
    m1 = np.where(ok, (cm[-1] - cm[:-1]) / np.where(ok, w1, 1), 0.0)
    between = np.where(ok, w0 * w1 * (m0 - m1) ** 2, -1.0)
    k = int(np.argmax(between))                      # the split is after bin k

    def quantile(lo: int, hi: int, q: float) -> float:
        c = np.cumsum(w[lo:hi])
        i = int(np.searchsorted(c, q * c[-1]))
        below = c[i - 1] if i else 0.0
        return float(HIST_LO + lo + i + (q * c[-1] - below) / max(w[lo + i], 1e-12))

    if between[k] > 0 and min(w0[k], w1[k]) >= TWO_VOICES_MIN_SHARE * total:
        low, high = quantile(0, k + 1, 0.5), quantile(k + 1, len(w), 0.5)
        if high - low >= TWO_VOICES_MIN_GAP_ST and high <= VOICE_MAX_ST:
            return (quantile(0, k + 1, VOICE_REF_Q), quantile(k + 1, len(w), VOICE_REF_Q),
                    quantile(k + 1, len(w), HIGH_VOICE_FLOOR_Q))
    return (quantile(0, len(w), F0_QUANTILE),)


def _histogram_shape(hist) -> tuple[tuple[float, ...], float]:
    """What the score needs of an F0 histogram: its voice modes (`_voice_modes`) and its
    LOWEST_VOICE_Q quantile."""
    h = np.asarray(hist, dtype=np.float64)
    c = np.cumsum(h) / h.sum()
    return _voice_modes(h), float(HIST_LO + int(np.searchsorted(c, LOWEST_VOICE_Q)) + 0.5)


def _f0_histogram(f0_st: np.ndarray) -> np.ndarray:
    i = np.clip(np.floor(np.asarray(f0_st) - HIST_LO).astype(int), 0, HIST_BINS - 1)
    return np.bincount(i, minlength=HIST_BINS).astype(np.float64)


def _semitones(f0_hz: np.ndarray | float) -> np.ndarray | float:
    return 12.0 * np.log2(np.asarray(f0_hz) / 100.0)


@dataclass(frozen=True)
class Second:
    """What one second of sound tells the detector."""

    frames: int                # how many 20 ms frames it summarises
    level_db: float            # A-weighted level of the second (frame energy mean)
    voiced_frames: int
    speech_db: float           # energy mean of the voiced frames (nan without voicing)
    f0_st: float               # median voiced F0, semitones re 100 Hz (nan without voicing)
    hi_ratio_db: float         # mean high/low band ratio of voiced frames (nan without voicing)
    modulation_db: float       # spread of the frame levels over the last MODULATION_S: syllables
                               # and phrases come and go, a vacuum cleaner or held note does not
    articulation_db: float = math.inf  # spread of the band ratio of the voiced frames of the last
                               # MODULATION_S as loud as this step's speech: speech moves from vowel
                               # to vowel and through voiced consonants; a laugh's "ha-ha-ha" or a
                               # held note keeps one vowel
    f0_frames_st: np.ndarray | None = field(default=None, compare=False, repr=False)
                               # the voiced frames' F0 (semitones): the baseline's F0 histogram

    @property
    def voiced_enough(self) -> bool:
        return self.voiced_frames >= MIN_VOICED * self.frames


def _modulation(lv: np.ndarray) -> float:
    loud = lv[lv > percentile(lv, 10) + 3.0]       # above the room (its quietest frames)
    return float(np.std(loud)) if len(loud) > 4 else 0.0


def _bands(fr: Frames, voiced: np.ndarray, context: Frames) -> tuple[np.ndarray, np.ndarray]:
    """The voiced frames' low (0.1-1 kHz) and high (1-5 kHz) band energies less the room's (the
    quietest tenth of the last MODULATION_S in each band: mostly low, traffic, hum, ventilation)."""
    n_lo = 10.0 ** (percentile(context.low_db, 10) / 10.0)
    n_hi = 10.0 ** (percentile(context.high_db, 10) / 10.0)
    lo = np.maximum(10.0 ** (fr.low_db[voiced] / 10.0) - n_lo, 0.0)
    hi = np.maximum(10.0 ** (fr.high_db[voiced] / 10.0) - n_hi, 0.0)
    return lo, hi


def _tilt(lo: np.ndarray, hi: np.ndarray) -> float:
    """High/low band energy ratio of the voiced frames together (dB), the room taken out: the loud
    vowels, where vocal effort shows, weigh most, and a quiet far talker's tilt is not made steeper
    by the room's low noise than a close loud one's."""
    return float(10.0 * np.log10((hi.sum() + 1e-12) / (lo.sum() + 1e-12)))


def _articulation(lo: np.ndarray, hi: np.ndarray) -> float:
    """Spread (dB) of the voiced frames' own band ratio, the room taken out: speech moves from vowel
    to vowel and through voiced consonants; a laugh's "ha-ha-ha" or a held note keeps one vowel."""
    keep = (lo > 0) & (hi > 0)
    if keep.sum() < 3:
        return math.nan
    return float(np.std(10.0 * np.log10(hi[keep] / lo[keep])))


def summarise(fr: Frames, context: Frames | None = None) -> Second:
    """One step's numbers from its frames; the modulation over `context` (the frames of the last
    MODULATION_S, ending with these) when given."""
    lv = fr.level_db
    room = percentile(lv, 10)                      # the quietest frames: the room
    voiced = fr.voiced & (lv > room + 6.0)         # not the room's own hum
    n = int(voiced.sum())
    level = 10 * math.log10(float(np.mean(10 ** (lv / 10))) + 1e-12)
    if n:
        speech = 10 * math.log10(float(np.mean(10 ** (lv[voiced] / 10))) + 1e-12)
        st = _semitones(fr.f0_hz[voiced])
        f0 = float(np.median(st))
        lo_e, hi_e = _bands(fr, voiced, fr if context is None else context)
        hi = _tilt(lo_e, hi_e)
        if context is None:
            art = _articulation(lo_e, hi_e)
        else:   # over the last MODULATION_S: its voiced frames as loud as this step's speech
            cl = context.level_db
            near = context.voiced & (cl > max(percentile(cl, 10) + 6.0, speech - ARTICULATION_NEAR_DB))
            art = _articulation(*_bands(context, near, context))
    else:
        speech = f0 = hi = art = math.nan
        st = None
    return Second(frames=len(lv), level_db=level, voiced_frames=n,
                  speech_db=speech, f0_st=f0, hi_ratio_db=hi, articulation_db=art,
                  modulation_db=_modulation(lv if context is None else context.level_db),
                  f0_frames_st=st)


@dataclass
class Baseline:
    """The household's normal sound. Numbers only; saved by the service between restarts."""

    speech_db: float = -45.0   # voiced level of normal conversation (dBFS A-weighted)
    f0_st: float = 10.0        # one-voice F0 reference, semitones re 100 Hz (~178 Hz)
    hi_ratio_db: float = -12.0
    seconds: float = 0.0       # how many seconds of new sound it rests on
    calibrated: bool = False   # seeded by an installer's calibration
    # normal voiced speech's F0 distribution (HIST_BINS shares summing to 1, 1 st bins from
    # HIST_LO): where it has two clear peaks, the two partners' voices. None in a baseline saved
    # before it existed: then one voice, f0_st, until speech has been heard.
    f0_hist: list[float] | None = None
    hist_seconds: float = 0.0  # voiced seconds the histogram rests on

    def to_dict(self) -> dict:
        d = asdict(self)
        if self.f0_hist is not None:
            d["f0_hist"] = [round(float(v), 5) for v in self.f0_hist]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Baseline:
        b = cls(**{k: float(d[k]) for k in ("speech_db", "f0_st", "hi_ratio_db")},
                seconds=float(d.get("seconds", 0)), calibrated=bool(d.get("calibrated", False)))
        if not all(math.isfinite(v) for v in (b.speech_db, b.f0_st, b.hi_ratio_db)):
            raise ValueError("baseline holds a number that is not finite")
        hist = d.get("f0_hist")
        if hist is not None:
            h = np.asarray(hist, dtype=np.float64)
            if h.shape != (HIST_BINS,) or not np.all(np.isfinite(h)) or np.any(h < 0):
                raise ValueError(f"baseline's F0 histogram is not {HIST_BINS} shares")
            b.f0_hist = [float(v) for v in h]
            b.hist_seconds = float(d.get("hist_seconds", 0.0))
        return b

    _shape_cache = None  # (histogram, its shape): not annotated, so not a field and never saved

    def _histogram_ready(self) -> bool:
        return self.f0_hist is not None and self.hist_seconds >= MIN_HIST_SECONDS

    def _shape(self) -> tuple[tuple[float, ...], float]:
        """`_histogram_shape` of the current histogram; every step asks several times between two
        learnt seconds, so it is kept until the histogram changes."""
        key = tuple(self.f0_hist)
        if self._shape_cache is None or self._shape_cache[0] != key:
            self._shape_cache = (key, _histogram_shape(key))
        return self._shape_cache[1]

    @property
    def voices(self) -> tuple[float, ...]:
        """The normal F0 of each voice heard (ascending, one or two), semitones re 100 Hz; one
        voice: the running quantile, as before there was a histogram."""
        if self._histogram_ready():
            modes, _ = self._shape()
            if len(modes) == 3:
                return modes[:2]
        return (self.f0_st,)

    @property
    def high_voice_floor(self) -> float:
        """Where the higher voice's normal F0 range starts (inf with one voice): a lower voice's
        rise up to there may just be the higher partner talking."""
        if self._histogram_ready():
            modes, _ = self._shape()
            if len(modes) == 3:
                return modes[2]
        return math.inf

    @property
    def lowest_voice(self) -> float:
        """The normal F0 of the lowest voice heard (semitones): whoever shouts, their pitch rises
        above their own normal voice, so at least above this. Two voices: the lower one's median;
        one: the lower quartile of normal F0 (a second talker may hide in it); no histogram yet:
        the one-voice reference."""
        if not self._histogram_ready():
            return self.f0_st
        modes, lower_quartile = self._shape()
        return modes[0] if len(modes) == 3 else lower_quartile

    @classmethod
    def from_seconds(cls, seconds: list[Second]) -> Baseline:
        """The installer's calibration: medians over its voiced seconds, and the F0 histogram of
        all their voiced frames (both partners should talk)."""
        v = [s for s in seconds if s.voiced_enough]
        if not v:
            raise ValueError("the calibration heard no speech: talk normally during it")
        f0s = np.array([s.f0_st for s in v])
        frames = [s.f0_frames_st for s in v if s.f0_frames_st is not None]
        b = cls(speech_db=float(np.median([s.speech_db for s in v])),
                f0_st=float(np.quantile(f0s, F0_QUANTILE)),
                hi_ratio_db=float(np.median([s.hi_ratio_db for s in v])),
                seconds=len(v), calibrated=True)
        if frames:
            h = _f0_histogram(np.concatenate(frames))
            b.f0_hist = list(h / h.sum())
            b.hist_seconds = float(len(v))
        return b

    def learn(self, s: Second, new_seconds: float) -> None:
        """Move slowly towards a step that was normal speech; `new_seconds` of it were not seen
        before (steps overlap: a second is judged twice, and must not count twice)."""
        # a calibrated baseline moves slowly; the built-in default gives way fast to real evidence
        a = LEARN_RATE if self.calibrated else max(LEARN_RATE, 1.0 / (self.seconds + 1))
        a *= new_seconds
        self.speech_db += a * (s.speech_db - self.speech_db)
        self.hi_ratio_db += a * (s.hi_ratio_db - self.hi_ratio_db)
        # a running quantile (Robbins-Monro): up by q, down by 1-q, in semitones
        step = 3.0 * a
        self.f0_st += step * (F0_QUANTILE if s.f0_st > self.f0_st else F0_QUANTILE - 1.0)
        # the voices' pitch only from speech at about the normal level: a laugh or a song that
        # scored low must not become a "voice" (it would lift the singing/laughter veto)
        if s.f0_frames_st is not None and len(s.f0_frames_st) and s.speech_db - self.speech_db < HIST_MAX_ABOVE_DB:
            h = _f0_histogram(s.f0_frames_st)
            # at the baseline's pace; but a histogram resting on less than HIST_SEED_S (a baseline
            # saved before histograms, or a short calibration) is the plain mean of what was heard
            seeded = self.calibrated and self.hist_seconds >= MIN_HIST_SECONDS
            plain_mean = new_seconds / (self.hist_seconds + new_seconds)
            ah = a if seeded or self.hist_seconds >= HIST_SEED_S else max(a, plain_mean)
            old = np.zeros(HIST_BINS) if self.f0_hist is None else np.asarray(self.f0_hist)
            self.f0_hist = list((1.0 - ah) * old + ah * h / h.sum())
            self.hist_seconds += new_seconds
        self.seconds += new_seconds


def _ramp(x: float, lo: float, hi: float) -> float:
    return 0.0 if not math.isfinite(x) else min(1.0, max(0.0, (x - lo) / (hi - lo)))


@dataclass(frozen=True)
class Weights:
    """Where each piece of evidence goes from 0 to 1 (dB or semitones above the household
    baseline); a second is shouting when every piece is past its midpoint. Shouting raises F0
    by ~8-12 semitones and flattens the spectral tilt; a rise far beyond that is singing,
    laughing or a whistle, and a much *steeper* tilt than normal is a loudspeaker (TV) or a far
    talker, not effort. Chosen on evaluation set seed 0 and checked on seed 1 (docs/evaluation.md);
    the modulation ramp was chosen looking at seeds 0 and 1 (over 2 s; kept over 4 s). The
    articulation ramp was chosen on the development seeds 0-3 (docs/evaluation.md, protocol). The
    level ramp and the calm counter-evidence (`Sustained`) were chosen on the leave-one-source-out
    tuning folds of three LOSO seeds and the development seeds 0-3 (docs/sound.md), never on the
    held-out sources or seeds 4-7."""

    # over the normal speech level: a raised voice 4-6 m away arrives only +4-9 dB over normal talk
    # at the calibration's 1-2.5 m (issue 19; 8-12 dB missed every far talker); loud normal speech
    # close to the hub passes it too, and is held back by its normal pitch and tilt
    level: tuple[float, float] = (4.0, 7.0)
    f0: tuple[float, float] = (4.0, 6.0)
    f0_too_high: tuple[float, float] = (15.0, 17.0)
    hi_ratio: tuple[float, float] = (3.0, 5.0)
    tilt_steeper: tuple[float, float] = (-7.0, -5.0)
    modulation: tuple[float, float] = (5.0, 6.0)   # over the last MODULATION_S, not the step
    # a laugh ("ha-ha-ha") or a held note keeps one vowel: its band ratio varies by ~2.5-3.5 dB;
    # speech, raised or not, by 4-10 dB (over the last MODULATION_S, the room taken out)
    articulation: tuple[float, float] = (3.0, 4.0)
    # two voices: the lower voice's F0 rise counts only below the higher voice's normal range
    # (within it, it may be the higher partner talking normally); from .. to semitones re its floor
    other_voice: tuple[float, float] = (-2.0, 0.0)


def score(s: Second, b: Baseline, w: Weights = Weights()) -> float:
    """0..1; the weakest necessary piece of evidence limits it (a fuzzy AND)."""
    if not s.voiced_enough:
        return 0.0
    hi = s.hi_ratio_db - b.hi_ratio_db
    voices = b.voices
    # too high even for the highest voice shouting: singing, laughter, a whistle
    plausible = 1.0 - _ramp(s.f0_st - voices[-1], *w.f0_too_high)
    # each voice's rise against its own normal F0; the lower voice's only where its partner's
    # normal voice does not explain the pitch as well
    rise = 0.0
    for k, ref in enumerate(voices):
        r = min(_ramp(s.f0_st - ref, *w.f0), 1.0 - _ramp(s.f0_st - ref, *w.f0_too_high))
        if k + 1 < len(voices):
            r = min(r, 1.0 - _ramp(s.f0_st - b.high_voice_floor, *w.other_voice))
        rise = max(rise, r)
    by_pitch = min(rise, _ramp(hi, *w.tilt_steeper))
    # the tilt carries a voice whose raised pitch is ambiguous (the lower voice shouting into the
    # higher one's range), but effort raises everyone's F0: not below the lowest voice + 4..6 st
    by_tilt = min(_ramp(hi, *w.hi_ratio), _ramp(s.f0_st - b.lowest_voice, *w.f0))
    effort = min(max(by_pitch, by_tilt), plausible)
    return round(min(effort, _ramp(s.speech_db - b.speech_db, *w.level),
                     _ramp(s.modulation_db, *w.modulation),
                     _ramp(s.articulation_db, *w.articulation)), 3)


@dataclass
class Episode:
    start_s: float
    end_s: float | None = None
    peak: float = 0.0

    def as_dict(self) -> dict:
        return {"start_s": round(self.start_s, 2),
                "end_s": None if self.end_s is None else round(self.end_s, 2),
                "peak": round(self.peak, 3)}


def is_calm(voiced: bool, score: float, above_normal_db: float) -> bool:
    """Calm talk (`Sustained`'s counter-evidence): voiced, plainly not shouting, at most
    CALM_ABOVE_DB over the normal speech level. Works on arrays too (sim/train_detector.py)."""
    return voiced & (score < NORMAL_SCORE) & (above_normal_db < CALM_ABOVE_DB)


class Sustained:
    """The episode rule, for any per-step yes/no: on when `need_s` of the last `window_s` said yes,
    off again only when at most `release_s` of them do (hysteresis).

    Normal speech heard between the yes-steps counts against starting (`calm`, `calm_weight` steps
    each): an argument is raised voices turn after turn, while laughter comes in fits with calm
    talk between them. Only calm steps after the window's first yes count, so the calm talk
    before an argument does not delay it (issue 19: laughter at +10 dB was an episode)."""

    def __init__(self, step_s: float, window_s: float = 10, need_s: float = 4, release_s: float = 1,
                 calm_weight: float = 0.0):
        self.need, self.release_at = round(need_s / step_s), round(release_s / step_s)
        self._recent: deque[bool] = deque(maxlen=round(window_s / step_s))
        self._calm: deque[bool] = deque(maxlen=round(window_s / step_s))
        self.calm_weight = calm_weight
        self.on = False

    @property
    def quiet(self) -> bool:
        """Nothing in the window: safe to learn from."""
        return not any(self._recent)

    def step(self, yes: bool, calm: bool = False) -> str | None:
        """"start", "end" or None; `calm`: this step was plainly normal speech."""
        self._recent.append(yes)
        self._calm.append(calm)
        n = sum(self._recent)
        if not self.on and n >= self.need:
            first = self._recent.index(True)
            against = sum(c for i, c in enumerate(self._calm) if i > first)
            if n - self.calm_weight * against >= self.need:
                self.on = True
                return "start"
        if self.on and n <= self.release_at:
            self.on = False
            return "end"
        return None


@dataclass
class Verdict:
    """The detector's answer for one step."""

    t: float                    # end of the step, seconds since the stream began
    shout: float
    episode: Episode | None     # the running episode, if any
    started: bool = False       # this step started it
    ended: Episode | None = None


class ShoutDetector:
    def __init__(self, baseline: Baseline | None = None, *, threshold: float = 0.5,
                 window_s: float = 10, need_s: float = 4, release_s: float = 1,
                 step_s: float = STEP_S, weights: Weights = Weights(),
                 scorer: Callable[[Second, Baseline, Weights], float] = score,
                 calm_weight: float = CALM_WEIGHT):
        self.baseline = baseline or Baseline()
        self.threshold, self.step_s, self.weights = threshold, step_s, weights
        self.scorer = scorer     # the fuzzy AND, or a learnt score (dsp/learnt.py)
        self.rule = Sustained(step_s, window_s, need_s, release_s, calm_weight)
        self.episode: Episode | None = None
        self.episodes: list[Episode] = []

    def step(self, t: float, s: Second) -> Verdict:
        """Judge one step (the last second of sound, ending at t)."""
        sc = self.scorer(s, self.baseline, self.weights)
        calm = is_calm(s.voiced_enough, sc, s.speech_db - self.baseline.speech_db)
        change = self.rule.step(sc >= self.threshold, calm)
        v = Verdict(t=t, shout=sc, episode=None)
        if change == "start":
            self.episode = Episode(start_s=t)
            self.episodes.append(self.episode)
            v.started = True
        if self.episode is not None:
            self.episode.peak = max(self.episode.peak, sc)
        if change == "end":
            self.episode.end_s = t
            v.ended, self.episode = self.episode, None
        v.episode = self.episode
        # learn only from plainly normal speech, never during or near shouting
        if sc < NORMAL_SCORE and self.rule.quiet and s.voiced_enough:
            self.baseline.learn(s, new_seconds=self.step_s)
        return v

    def finish(self, t: float) -> None:
        if self.episode is not None:
            self.episode.end_s = t
            self.episode = None
