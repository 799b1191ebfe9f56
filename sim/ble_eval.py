"""Engine transitions scored against a trace's ground truth: how late departures and arrivals
were seen, and how often a partner at home was called away (the bench's and tests' figures)."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

EARLY_S = 60.0  # an arrival seen up to this long before the door (walking up the path) counts


@dataclass
class Score:
    departures: list[float] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)
    missed_departures: int = 0
    missed_arrivals: int = 0
    false_aways: int = 0
    false_homes: int = 0
    false_away_s: float = 0.0  # time shown away while home: what the partners notice
    days: float = 0.0

    def false_aways_per_day(self) -> float:
        return self.false_aways / self.days if self.days else 0.0

    def false_away_minutes_per_day(self) -> float:
        return self.false_away_s / 60.0 / self.days if self.days else 0.0


def score(transitions: Sequence, truth: Sequence[tuple[float, str, str]], duration: float,
          partners: Sequence[str], brief: Sequence[tuple[float, float, str]] = ()) -> Score:
    """Transitions are objects with t/partner/presence. Truth: (t, partner, home|away) door
    crossings; partners start home. `brief`: (t0, t1, partner) trips out of the door of a minute
    (the bin): an away shown then (until EARLY_S after) is neither false nor a departure."""
    s = Score(days=duration / 86400.0)
    for p in partners:
        events = [(t, st) for t, pp, st in truth if pp == p]
        trans = [(tr.t, tr.presence) for tr in transitions if tr.partner == p]
        # truth intervals: (start, end, state)
        bounds = [(0.0, "home"), *events]
        for k, (t0, st) in enumerate(bounds):
            t1 = bounds[k + 1][0] if k + 1 < len(bounds) else duration
            if st == "away":
                seen = [t for t, pr in trans if t0 <= t < t1 and pr == "away"]
                if seen:
                    s.departures.append(seen[0] - t0)
                else:
                    s.missed_departures += 1
                s.false_homes += sum(1 for t, pr in trans if t0 + EARLY_S <= t < t1 - EARLY_S
                                     and pr == "home")
            else:
                if k > 0:
                    before = [pr for t, pr in trans if t < t0 - EARLY_S]
                    seen = [t for t, pr in trans if t0 - EARLY_S <= t < t1 and pr == "home"]
                    if seen:
                        s.arrivals.append(seen[0] - t0)
                    elif before and before[-1] == "home":
                        s.arrivals.append(-EARLY_S)
                    else:
                        s.missed_arrivals += 1
                # an away in a home interval that is not the tail of the previous departure
                start = t0 + (EARLY_S if k > 0 else 0.0)
                trips = [(b0, b1 + EARLY_S) for b0, b1, pp in brief if pp == p and start <= b0 < t1]
                s.false_aways += sum(1 for t, pr in trans if start <= t < t1 and pr == "away"
                                     and not any(b0 <= t < b1 for b0, b1 in trips))
                s.false_away_s += _time_in(trans, "away", start, t1) - sum(
                    _time_in(trans, "away", b0, min(b1, t1)) for b0, b1 in trips)
    return s


def _time_in(trans: Sequence[tuple[float, str]], state: str, t0: float, t1: float) -> float:
    """Seconds of [t0, t1) spent in `state`, given the partner's time-ordered transitions."""
    total, cur, since = 0.0, None, t0
    for t, pr in trans:
        if t >= t1:
            break
        if t > t0 and cur == state:
            total += t - since
        cur, since = pr, max(t, t0)
    return total + (t1 - since if cur == state else 0.0)
