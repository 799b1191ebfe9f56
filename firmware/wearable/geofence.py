"""The wearable's one verdict: is this partner at least 100 m from home? Computed on the wearable
from gpsd's fixes; what leaves it is yes / no / unknown, never a coordinate (R4).

A fix counts with its own error (gpsd's 95 % horizontal estimate, the larger of epx and epy):
- *far*  when distance - error >= 100 m (certainly 100 m away, whatever the error),
- *near* when distance + error <= 70 m (certainly inside; 70 m leaves a margin so that a partner
  standing at 85 m does not flip between yes and no),
- *unsure* otherwise (a large error, or a distance between 70 and 100 m).
The verdict changes only when the last `CONFIRM` fixes agree: far -> yes, near -> no, unsure ->
unknown; a mixture keeps the verdict (a single multipath jump at home changes nothing). Without a
fix for `NO_FIX_S` seconds (indoors, a cold start, the receiver off) the verdict is unknown.
A fix whose distance from home moved faster than anyone travels (`MAX_SPEED_M_S`, beyond the two
fixes' errors) since the last believed one is a reflection, not a step: it counts for nothing
(found by bench/wearable_bench.py: 80-110 m jumps of a few seconds with a good error estimate
said "yes" at home); `REANCHOR` such fixes in a row are believed after all (a cold start's first
fix may have been the wrong one). Only the last believed distance is kept, never a position.
Nothing here keeps a fix after it has been classified (the newest one waits one second for the
next, see `observe`): no track exists, not even in memory.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

Verdict = Literal["yes", "no", "unknown"]
Zone = Literal["far", "near", "unsure"]

APART_M = 100.0          # the procedure's distance (PROCEDURE.md, phase 4)
NEAR_M = 70.0            # "certainly home": distance + error at most this
CONFIRM = 3              # consecutive fixes that must agree (3 s at gpsd's 1 Hz)
NO_FIX_S = 60.0          # this long without a fix: unknown
# A fix without an error estimate (no DOP from the receiver) is trusted this much, no more.
DEFAULT_ERROR_M = 50.0
MAX_SPEED_M_S = 40.0     # a car at 144 km/h: faster than this is a reflection
REANCHOR = 10            # implausible fixes in a row that are believed after all
STEP_S = 2.0             # at most this much time counts towards a plausible step
EARTH_RADIUS_M = 6_371_008.8


@dataclass(frozen=True)
class Home:
    """The home position, set by the installer; lives only in the wearable's own config."""

    lat: float
    lon: float

    @classmethod
    def parse(cls, text: str) -> Home:
        """"52.3702,4.8952" -> Home; ValueError with one sentence otherwise."""
        parts = text.replace(" ", "").split(",")
        try:
            lat, lon = (float(p) for p in parts)
        except ValueError:
            raise ValueError(f"{text!r} is not a home position: give LAT,LON in degrees, "
                             "e.g. 52.3702,4.8952") from None
        return cls.of(lat, lon)

    @classmethod
    def of(cls, lat: float, lon: float) -> Home:
        if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0) or (lat, lon) == (0.0, 0.0):
            raise ValueError("the home position is outside the earth's latitude/longitude range "
                             "(or 0,0): measure it again at the front door")
        return cls(lat, lon)


@dataclass(frozen=True)
class Fix:
    """One position from gpsd; classified at once and then forgotten."""

    lat: float
    lon: float
    error_m: float | None      # 95 % horizontal error; None: the receiver gave none


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance (haversine); at 100 m its error is far below a GNSS fix's."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def _error(fix: Fix) -> float:
    return fix.error_m if fix.error_m and fix.error_m > 0 else DEFAULT_ERROR_M


def zone(home: Home, fix: Fix) -> Zone:
    err = _error(fix)
    d = distance_m(home.lat, home.lon, fix.lat, fix.lon)
    if d - err >= APART_M:
        return "far"
    if d + err <= NEAR_M:
        return "near"
    return "unsure"


_VERDICT: dict[Zone, Verdict] = {"far": "yes", "near": "no", "unsure": "unknown"}


class Geofence:
    """Feed it what gpsd says, in order, with the wearable's own monotonic seconds; `verdict`
    is the current answer and `observe` returns it when it changed (else None)."""

    def __init__(self, home: Home, *, confirm: int = CONFIRM, no_fix_s: float = NO_FIX_S):
        self.home = home
        self.confirm = confirm
        self.no_fix_s = no_fix_s
        self.verdict: Verdict = "unknown"     # a cold start knows nothing
        self.based_on_fix = False
        self._recent: list[Zone] = []         # zones only, never positions
        self._last_fix_at: float | None = None
        self._started_at: float | None = None
        self._epoch: object = None
        self._pending: Fix | None = None      # the newest epoch's fix, until the next one
        # the last believed distance from home (a number, never a position), for the speed check
        self._last_d: tuple[float, float, float] | None = None   # (seconds, metres, error)
        self._implausible = 0

    def observe(self, now: float, fix: Fix | None, epoch: object = None) -> Verdict | None:
        """One report from gpsd: a fix, or None (no fix: mode 0/1). `epoch`: the receiver's time
        of the fix; gpsd reports one epoch once per sentence (RMC, GSA, GGA), and a repeat
        replaces the epoch's fix instead of counting as another. gpsd gives an epoch's error
        with the next epoch's report (gpsd 3.22, NMEA), so a fix is classified when the next
        epoch arrives, with the larger of the two errors: one second later, never too sure.
        Returns the new verdict on a change."""
        if self._started_at is None:
            self._started_at = now
        if fix is None:
            self._pending = None
            return self.tick(now)
        self._last_fix_at = now
        if not self._plausible(now, fix):
            return None
        if self._pending is not None and (epoch is None or epoch != self._epoch):
            held = self._pending
            err = max(_error(held), _error(fix))
            self._recent = [*self._recent, zone(self.home, Fix(held.lat, held.lon, err))][-self.confirm:]
        self._pending, self._epoch = fix, epoch
        if len(self._recent) == self.confirm and len(set(self._recent)) == 1:
            return self._set(_VERDICT[self._recent[0]], True)
        return None

    def _plausible(self, now: float, fix: Fix) -> bool:
        d, err = distance_m(self.home.lat, self.home.lon, fix.lat, fix.lon), _error(fix)
        if self._last_d is not None:
            then, last_d, last_err = self._last_d
            # the time counted is capped: while fixes are refused, the last believed one ages, and
            # a reflection that lasts a few seconds must not become plausible by waiting
            if (abs(d - last_d) > MAX_SPEED_M_S * min(STEP_S, max(0.0, now - then)) + err + last_err
                    and self._implausible + 1 < REANCHOR):
                self._implausible += 1
                return False
        self._implausible = 0
        self._last_d = (now, d, err)
        return True

    def tick(self, now: float) -> Verdict | None:
        """Time passes without a fix: after `no_fix_s` the verdict is unknown."""
        since = self._last_fix_at if self._last_fix_at is not None else self._started_at
        if since is not None and now - since >= self.no_fix_s:
            self._recent = []
            return self._set("unknown", False)
        return None

    def reset(self) -> Verdict | None:
        """The receiver is switched off: nothing is known any more."""
        self._recent, self._last_fix_at, self._started_at = [], None, None
        self._pending, self._epoch = None, None
        self._last_d, self._implausible = None, 0
        return self._set("unknown", False)

    def _set(self, verdict: Verdict, based_on_fix: bool) -> Verdict | None:
        if verdict == self.verdict:
            return None
        self.verdict, self.based_on_fix = verdict, based_on_fix
        return verdict
