"""What the episode rule itself costs (issue 19's onset target).

The detector starts an episode when `need_s` of the last `window_s` seconds said "shouting"
(`dsp.detector.Sustained`). Even a perfect judge of each half-second step, one that says yes on
every voiced step of raised speech and never elsewhere, must wait for that much voiced raised
speech: with the pauses between utterances, that is the rule's *floor* on the onset. The floor is
measured here on the evaluation's own clips, beside what a shorter rule costs the real detector in
false episodes.

The pipeline runs once per clip (`record`): its scored steps and the baseline the calibration left
are kept, and other rules are replayed on the same evidence (`replay`). The recording detector is
the real one, so the episodes it finds are the pipeline's own.

    python -m sim.loso --floor     # the floor, and the detector with shorter rules
"""
from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from dsp.detector import STEP_S, Baseline, Second, ShoutDetector, Sustained

Episodes = list[tuple[float, float | None]]


@dataclass
class Recorded:
    """One clip through the pipeline: the baseline its calibration left (before any scored step
    taught it more), every scored step, the stream's end, and the episodes the detector found."""
    baseline: Baseline
    steps: list[tuple[float, Second]]
    end_s: float
    episodes: Episodes


class _Recorder(ShoutDetector):
    """The default detector, keeping what it was given."""

    def __init__(self) -> None:
        super().__init__()
        self.calibrated: Baseline | None = None
        self.seen: list[tuple[float, Second]] = []
        self.end_s = 0.0

    def step(self, t: float, s: Second):
        if self.calibrated is None:          # the first scored step: calibration is over
            self.calibrated = copy.deepcopy(self.baseline)
        self.seen.append((t, s))
        return super().step(t, s)

    def finish(self, t: float) -> None:
        self.end_s = t
        super().finish(t)


def record(audio: np.ndarray, fs: int, calibrate_s: int, calibration_offset_db: float) -> Recorded:
    from dsp.detect_cli import run
    det = _Recorder()
    run(audio, fs, calibrate_seconds=calibrate_s, calibration_offset_db=calibration_offset_db, detector=det)
    return Recorded(det.calibrated if det.calibrated is not None else copy.deepcopy(det.baseline),
                    det.seen, det.end_s, [(e.start_s, e.end_s) for e in det.episodes])


def replay(r: Recorded, make: Callable[[Baseline], ShoutDetector]) -> Episodes:
    """The episodes another detector (another rule, other weights) finds on the same steps."""
    det = make(copy.deepcopy(r.baseline))
    for t, s in r.steps:
        det.step(t, s)
    det.finish(r.end_s)
    return [(e.start_s, e.end_s) for e in det.episodes]


def floor_onset(r: Recorded, raised_from: float, need_s: float, window_s: float = 10) -> float:
    """Seconds from the first raised utterance to an episode when every voiced step after it says
    yes (inf when the clip never gives the rule enough)."""
    rule = Sustained(STEP_S, window_s=window_s, need_s=need_s)
    for t, s in r.steps:
        if rule.step(t > raised_from and s.voiced_enough) == "start":
            return t - raised_from
    return float("inf")


@dataclass
class Floor:
    need_s: float
    window_s: float
    onsets: list[float]

    def line(self) -> str:
        x = np.asarray(self.onsets)
        return (f"{self.need_s:g} s of {self.window_s:g} s: onset median {np.median(x):.1f}, p95 "
                f"{np.percentile(x, 95):.1f}, max {x.max():.1f} s ({int(np.isfinite(x).sum())} of {len(x)})")


def floors(raised: Iterable[tuple[Recorded, float]], needs: Sequence[float],
           window_s: float = 10) -> list[Floor]:
    """The rule's floor for each `need_s` over (recording, raised_from) pairs."""
    pairs = list(raised)
    return [Floor(n, window_s, [floor_onset(r, rf, n, window_s) for r, rf in pairs]) for n in needs]
