"""A learnt shouting score (issue 19): a tiny network on the per-step features the detector already
computes, each relative to the household's baseline, instead of the hand-set fuzzy AND
(`detector.score`).

Trained by `python -m sim.train_detector` (sim/, scipy allowed there) on the leave-one-source-out
tuning clips and the original set's development seeds; its weights are `dsp/shout_weights.json`,
read here with numpy only. Numbers in, a number out: no audio (R1).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dsp.detector import Baseline, Second, score

WEIGHTS_PATH = Path(__file__).with_name("shout_weights.json")
# what the network sees, in this order (dB or semitones over the household's baseline where
# relative): F0 over the lowest and over the highest normal voice, the tilt, the speech level, the
# modulation and articulation, the voiced share of the step, and the hand-set fuzzy AND's own score
# (so the network can keep what it gets right and learn where it is wrong)
FEATURES = ("f0_over_lowest", "f0_over_highest", "tilt", "level", "modulation", "articulation", "voiced",
            "fuzzy")


def features(s: Second, b: Baseline) -> np.ndarray:
    """The step's features (FEATURES); NaN-free (a missing articulation reads 0)."""
    voices = b.voices
    art = s.articulation_db if math.isfinite(s.articulation_db) else 0.0
    return np.array([s.f0_st - b.lowest_voice, s.f0_st - voices[-1], s.hi_ratio_db - b.hi_ratio_db,
                     s.speech_db - b.speech_db, s.modulation_db, min(art, 12.0),
                     s.voiced_frames / max(s.frames, 1), score(s, b)])


@dataclass(frozen=True)
class LearntScore:
    """sigmoid(w2 . tanh(W1 z + b1) + b2) on the standardised features z (no hidden layer: logistic
    regression); callable like `detector.score`."""

    mean: np.ndarray
    scale: np.ndarray
    w1: np.ndarray            # (hidden, features); empty for logistic regression
    b1: np.ndarray
    w2: np.ndarray            # (hidden,) or (features,)
    b2: float
    clip: float = 8.0         # standardised features are clipped: a far outlier is not more evidence

    def prob(self, x: np.ndarray) -> np.ndarray:
        """Probabilities for a (n, features) array."""
        z = np.clip((np.atleast_2d(x) - self.mean) / self.scale, -self.clip, self.clip)
        h = np.tanh(z @ self.w1.T + self.b1) if self.w1.size else z
        return 1.0 / (1.0 + np.exp(-(h @ self.w2 + self.b2)))

    def __call__(self, s: Second, b: Baseline, w: object = None) -> float:
        if not s.voiced_enough:
            return 0.0
        return round(float(self.prob(features(s, b))[0]), 3)

    def to_dict(self) -> dict:
        return {"features": list(FEATURES), "mean": self.mean.tolist(), "scale": self.scale.tolist(),
                "w1": self.w1.tolist(), "b1": self.b1.tolist(), "w2": self.w2.tolist(), "b2": self.b2,
                "clip": self.clip}

    @classmethod
    def from_dict(cls, d: dict) -> LearntScore:
        if list(d.get("features", [])) != list(FEATURES):
            raise ValueError(f"the stored weights are for features {d.get('features')}, not {list(FEATURES)}")
        n = len(FEATURES)
        w1 = np.asarray(d["w1"], dtype=np.float64).reshape(-1, n) if d["w1"] else np.zeros((0, n))
        m = LearntScore(np.asarray(d["mean"], dtype=np.float64), np.asarray(d["scale"], dtype=np.float64),
                        w1, np.asarray(d["b1"], dtype=np.float64), np.asarray(d["w2"], dtype=np.float64),
                        float(d["b2"]), float(d.get("clip", 8.0)))
        width = w1.shape[0] if w1.size else n
        if m.mean.shape != (n,) or m.scale.shape != (n,) or m.w2.shape != (width,) or \
                not all(np.all(np.isfinite(a)) for a in (m.mean, m.scale, m.w1, m.b1, m.w2)) or np.any(m.scale <= 0):
            raise ValueError("the stored weights do not fit the network")
        return m


def load(path: Path = WEIGHTS_PATH) -> LearntScore:
    return LearntScore.from_dict(json.loads(path.read_text()))
