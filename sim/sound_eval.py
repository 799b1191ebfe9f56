"""Detection quality on the evaluation set (sim/evalset.py): the detector beside a plain loudness
threshold (what the Time Out! App does), scored the same way.

A positive clip is found when an episode starts after the calibration and no earlier than its
shouting began; its onset latency is the episode start minus the moment the sustained condition
(>= 4 s of shouting within 10 s) was first met. Every episode on a negative clip is a false alarm.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from dsp.detect_cli import run
from dsp.detector import Sustained
from dsp.levels import LevelMeter
from sim.evalset import CAL_OFFSET_DB, CALIBRATE_S, Clip

LOUDNESS_THRESHOLD_DBA = 70.0   # a plain "too loud" threshold (LAeq over 1 s), as in the Time Out! App


@dataclass
class Result:
    name: str
    positive: bool
    category: str
    episodes: list[tuple[float, float | None]]      # (start_s, end_s)
    sustained_at: float | None
    first_shout_s: float | None

    @property
    def found(self) -> bool:
        return any(s >= (self.first_shout_s or 0.0) for s, _ in self.episodes)

    @property
    def onset_latency(self) -> float | None:
        if not self.positive or self.sustained_at is None:
            return None
        after = [s for s, _ in self.episodes if s >= (self.first_shout_s or 0.0)]
        return min(after) - self.sustained_at if after else None


def detector_episodes(clip: Clip) -> list[tuple[float, float | None]]:
    _, p = run(clip.audio, clip.fs, calibrate_seconds=int(CALIBRATE_S),
               calibration_offset_db=CAL_OFFSET_DB)
    return [(e.start_s, e.end_s) for e in p.episodes]


def loudness_episodes(clip: Clip, threshold_dba: float = LOUDNESS_THRESHOLD_DBA,
                      calibrate_s: float = CALIBRATE_S) -> list[tuple[float, float | None]]:
    """The baseline: a second is "shouting" when its LAeq exceeds a fixed threshold; the same
    sustained rule (4 s within 10 s, with release) as the detector, on 1 s steps."""
    meter = LevelMeter(clip.fs, CAL_OFFSET_DB)
    rule = Sustained(step_s=1.0)
    out: list[list] = []
    for i, laeq in enumerate(meter.process(clip.audio).seconds[int(calibrate_s):]):
        t = calibrate_s + i + 1
        change = rule.step(laeq >= threshold_dba)
        if change == "start":
            out.append([t, None])
        elif change == "end":
            out[-1][1] = t
    return [tuple(e) for e in out]


def evaluate(clips: Iterable[Clip], episodes: Callable[[Clip], list]) -> list[Result]:
    res = []
    for c in clips:
        first = min((a for a, _ in c.shout_spans), default=None)
        res.append(Result(c.name, c.positive, c.category, episodes(c), c.sustained_at, first))
    return res


@dataclass
class Summary:
    positives: int
    found: int
    negatives: int
    false_episodes: int
    false_by_category: dict[str, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    missed: list[str] = field(default_factory=list)

    @property
    def recall(self) -> float:
        return self.found / self.positives if self.positives else float("nan")

    @property
    def precision(self) -> float:
        tp = self.found
        return tp / (tp + self.false_episodes) if tp + self.false_episodes else float("nan")


def summarise(results: list[Result]) -> Summary:
    pos = [r for r in results if r.positive]
    neg = [r for r in results if not r.positive]
    s = Summary(len(pos), sum(r.found for r in pos), len(neg), sum(len(r.episodes) for r in neg))
    for r in neg:
        if r.episodes:
            s.false_by_category[r.category] = s.false_by_category.get(r.category, 0) + len(r.episodes)
    s.latencies = [r.onset_latency for r in pos if r.onset_latency is not None]
    s.missed = [r.name for r in pos if not r.found]
    return s
