"""RSSI smoothing per tag. Adverts arrive irregularly (loss, scanner duty cycle) and their RSSI has
heavy-tailed dips (a body or a door in the way), so the engine uses the median of a short time
window: it ignores single outliers without a motion model, and its lag is bounded by the window
(a scalar Kalman filter gave the same bench figures: the decisions are dominated by silences)."""
from __future__ import annotations

from collections import deque


class WindowMedian:
    """Median of the readings of the last `window` seconds (at most `maxlen` readings)."""

    def __init__(self, window: float = 4.0, maxlen: int = 24):
        self.window = window
        self._buf: deque[tuple[float, float]] = deque(maxlen=maxlen)

    def update(self, t: float, rssi: float) -> float:
        buf = self._buf
        buf.append((t, rssi))
        while buf[0][0] < t - self.window:
            buf.popleft()
        if len(buf) == 1:
            return rssi
        vals = sorted(r for _, r in buf)
        n = len(vals)
        return vals[n // 2] if n % 2 else (vals[n // 2 - 1] + vals[n // 2]) / 2
