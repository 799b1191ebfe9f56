"""The streaming sound pipeline: samples in, one `Frame` of numbers per second out.

    samples -> LevelMeter (A-weighting, Fast/Slow, LAeq per second, at the capture rate)
    samples -> 16 kHz (for 44.1/48 kHz capture) -> frame features -> ShoutDetector -> Thermometer

numpy only: no scipy at run time (its signal package alone is ~70 MB resident; a test checks).

The same object runs behind the microphone in the hub and behind `timeout-hub detect FILE`, so what
an installer measures in a room is what the hub will do. Blocks may have any length; all state
(filter states, the partial second, the baseline) carries over. Nothing here keeps samples beyond
the current second (R1): only the numbers in `Frame` leave.
"""
from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass
from functools import reduce

import numpy as np

from dsp import features as F
from dsp.detector import MODULATION_S, Baseline, Episode, ShoutDetector, summarise
from dsp.levels import LevelMeter
from dsp.resample import Resampler
from dsp.thermometer import Thermometer

log = logging.getLogger(__name__)
SUPPORTED_RATES = (16000, 44100, 48000)


@dataclass(frozen=True)
class Frame:
    t: float                   # seconds of audio processed (the end of this second)
    laeq_db: float
    unit: str                  # "dBA" (calibrated) or "dBFS"
    shout: float               # 0..1
    thermometer: int           # 0..10
    in_episode: bool
    started: Episode | None = None
    ended: Episode | None = None
    calibrating: bool = False

    def as_dict(self) -> dict:
        return {"t": round(self.t, 2), "laeq_db": round(self.laeq_db, 1), "shout": round(self.shout, 3)}


class SoundPipeline:
    def __init__(self, fs: int = F.FS, *, calibration_offset_db: float | None = None,
                 baseline: Baseline | None = None, calibrate_seconds: int = 0,
                 detector: ShoutDetector | None = None):
        if fs not in SUPPORTED_RATES:
            raise ValueError(f"sample rate {fs} Hz is not supported; use one of "
                             + ", ".join(str(r) for r in SUPPORTED_RATES))
        self.fs = fs
        self.meter = LevelMeter(fs, calibration_offset_db)
        self.detector = detector or ShoutDetector(baseline)
        self.thermometer = Thermometer()
        self.calibrate_seconds = int(calibrate_seconds)
        self._calibration: list = []
        self._resample = Resampler(fs) if fs != F.FS else None
        self._raw = np.zeros(0)
        self._laeq: deque[float] = deque()
        self._seconds = 0
        self._halves: deque[F.Frames] = deque(maxlen=round(2 * MODULATION_S))

    @property
    def unit(self) -> str:
        return self.meter.unit

    @property
    def baseline(self) -> Baseline:
        return self.detector.baseline

    @property
    def episodes(self) -> list[Episode]:
        return self.detector.episodes

    def process(self, block: np.ndarray) -> list[Frame]:
        x = np.asarray(block, dtype=np.float64).ravel()
        self._laeq.extend(self.meter.process(x).seconds)
        raw = x if self._resample is None else self._resample(x)
        self._raw = np.concatenate((self._raw, raw))
        out = []
        need = F.FS + F.WIN - F.HOP
        while len(self._raw) >= need and self._laeq:
            out.append(self._second(self._raw[:need], self._laeq.popleft()))
            self._raw = self._raw[F.FS:]
        return out

    def _second(self, raw: np.ndarray, laeq: float) -> Frame:
        self._seconds += 1
        t = float(self._seconds)
        fr = F.frames(raw)
        if self._seconds <= self.calibrate_seconds:
            self._calibration.append(summarise(fr))
            if self._seconds == self.calibrate_seconds:
                self._finish_calibration()
            return Frame(t, laeq, self.unit, 0.0, self.thermometer.value, False, calibrating=True)
        # judged every half second over the last whole second: onset resolution without the
        # noise of half-second statistics, and no extra feature work (the frames are reused)
        half = len(fr.level_db) // 2
        steps = []
        for ts, part in ((t - 0.5, fr.part(0, half)), (t, fr.part(half, len(fr.level_db)))):
            self._halves.append(part)
            if len(self._halves) >= 2:
                window = self._halves[-2].then(self._halves[-1])
                context = reduce(F.Frames.then, self._halves)
                steps.append((ts, summarise(window, context)))
        s = steps[-1][1]
        verdicts = [self.detector.step(ts, ss) for ts, ss in steps]
        shout = max(v.shout for v in verdicts)
        above = (s.speech_db if s.voiced_frames else s.level_db) - self.baseline.speech_db
        episode = verdicts[-1].episode
        therm = self.thermometer.update(shout, above, episode is not None)
        started = next((v.episode for v in verdicts if v.started), None)
        ended = next((v.ended for v in verdicts if v.ended), None)
        return Frame(t, laeq, self.unit, shout, therm, episode is not None, started=started,
                     ended=ended)

    def _finish_calibration(self) -> None:
        try:
            self.detector.baseline = Baseline.from_seconds(self._calibration)
        except ValueError as e:
            log.warning("calibration: %s; keeping the previous baseline", e)
        self._calibration = []

    def finish(self) -> list[Frame]:
        """End of a file: its last whole second is scored (it waited only for the analysis
        window's overlap past it, which a file ending on that second never brings: the missing
        20 ms are taken as silence); a calibration cut short by the end still counts; an open
        episode closes. Returns the frames of that last second, if any."""
        out = []
        if self._laeq and len(self._raw) >= F.FS:
            raw = np.concatenate((self._raw[:F.FS], np.zeros(F.WIN - F.HOP)))
            out.append(self._second(raw, self._laeq.popleft()))
            self._raw = self._raw[F.FS:]
        if self._calibration:
            self._finish_calibration()
        self.detector.finish(float(self._seconds))
        return out
