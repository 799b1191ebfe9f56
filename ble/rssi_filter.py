"""RSSI smoothing per tag. Adverts arrive irregularly (loss, scanner duty cycle) and their RSSI has
heavy-tailed dips (a body or a door in the way), so the engine uses the median of a short time
window: it ignores single outliers without a motion model, and its lag is bounded by the window.
A scalar Kalman filter is kept for the bench's comparison (docs/ble.md has the figures)."""
from __future__ import annotations

from collections import deque
from typing import Protocol


class RssiFilter(Protocol):
    def update(self, t: float, rssi: float) -> float: ...


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


class Kalman:
    """Random-walk scalar Kalman filter; process noise grows with the time since the last reading."""

    def __init__(self, q_per_s: float = 4.0, r: float = 36.0):
        self.q, self.r = q_per_s, r
        self.x: float | None = None
        self.p = 0.0
        self.t = 0.0

    def update(self, t: float, rssi: float) -> float:
        if self.x is None:
            self.x, self.p, self.t = rssi, self.r, t
            return rssi
        self.p += self.q * max(0.0, t - self.t)
        self.t = t
        k = self.p / (self.p + self.r)
        self.x += k * (rssi - self.x)
        self.p *= 1 - k
        return self.x


FILTERS = {"median": WindowMedian, "kalman": Kalman}
