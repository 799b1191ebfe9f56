"""The tension thermometer 0..10 on the panel: recent shouting and loudness, smoothed.

Three parts, the highest wins: the smoothed shouting score (rises within ~10 s, cools in about a
minute), the memory of recent episodes (an episode holds it at 8 or more, then it cools over ten
minutes: the procedure says tension does not vanish when the voices drop), and a small part for
plain loudness above the household's normal speech, which alone never goes above 3.
It rises at most two steps a second and falls one, so the panel moves calmly.
"""
from __future__ import annotations

import math

SCORE_TAU_S = 20.0
EPISODE_TAU_S = 600.0
EPISODE_LEVEL = 8.0


class Thermometer:
    def __init__(self) -> None:
        self._score = 0.0
        self._memory = 0.0
        self.value = 0

    def update(self, shout: float, level_above_speech_db: float, in_episode: bool,
               dt: float = 1.0) -> int:
        self._score += (1 - math.exp(-dt / SCORE_TAU_S)) * (10.0 * shout - self._score)
        if in_episode:
            self._memory = max(self._memory, EPISODE_LEVEL + 2.0 * shout)
        else:
            self._memory *= math.exp(-dt / EPISODE_TAU_S)
        loud = 0.0
        if math.isfinite(level_above_speech_db):
            loud = min(3.0, max(0.0, (level_above_speech_db - 6.0) / 4.0))
        target = round(min(10.0, max(self._score, self._memory, loud)))
        self.value += max(-1, min(2, target - self.value))
        return self.value
