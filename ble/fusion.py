"""Door fusion (issue 14): departure and return from an exit-door contact together with the tags'
adverts, heard by the hub and any extra receiver. docs/ble.md "Door fusion" has the reasoning.

- left: a door event, the partner's tag heard around it (not silent already since well before it,
  and not heard at indoor levels well after it), then silent at every receiver for a short window
  (longer while a door stands open, and never shorter than 1.5 x the tag's longest gap of the
  minutes before the door event: a tag that was already patchy needs more silence, unless it
  was heard steadily at indoor level for the half minute before the door: picked up and carried);
- back: a door event after the partner was seen leaving, and then the tag heard (any receiver);
  without a door event only a minute of indoor-level adverts brings a partner back (a door that
  is not sensed, or a wrong departure), reported without the door flag;
- with a door working, silence alone never makes a partner away: a partner not heard for
  `unknown_after` becomes unknown;
- with a second receiver working (round 3): left also when a receiver that heard the tag just
  before the door has lost it (silent for the short window, or its own patchiness) while every
  receiver still hearing it hears it fading, only faint (a reflection, through the wall, the
  doorstep). A tag heard at indoor level by any receiver is inside.
A door whose sensor is reported dead, or that has stood open longer than `open_stale` (it tells
nothing any more), does not count; with no door counting, the BLE-only engine decides.
Memory (R4): per door its last state and since when; door events of the last `keep` seconds (their
time and whether the door had stood open, never who); per partner when they were last heard and
the gaps of the last minutes, per receiver the same and the levels around the latest door event;
per receiver when it last reported anything.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Literal

State = Literal["home", "away", "unknown"]
DoorState = Literal["open", "closed"]


@dataclass(frozen=True)
class FusionConfig:
    left_silence: float = 15.0   # silent this long at every receiver after the door: left
    open_silence: float = 120.0  # ... while a door stands open (the bin, 60 s, goes out this way),
    open_long: float = 20.0      # ... or after it closed from open this long (a visitor let in)
    door_lead: float = 30.0      # the tag heard at most this long before the door event
    door_post: float = 30.0      # ... and not at indoor levels later than this after it
    candidate_for: float = 600.0  # a door event counts for a departure this long (doorstep talk)
    gap_window: float = 300.0    # the tag's gaps before the door event ...
    gap_factor: float = 1.5      # ... times this is the least silence that counts
    back_window: float = 60.0    # heard within this after a door event: back
    indoor_dbm: float = -90.0    # a level the doorstep (wall, 9 m) rarely gives
    indoor_hold: float = 60.0    # back without a door event: indoor adverts for this long ...
    indoor_gap: float = 15.0     # ... with no gap longer than this
    unknown_after: float = 3600.0
    open_stale: float = 300.0    # a door open longer than this tells nothing until it closes
    keep: float = 900.0          # door events older than this are forgotten
    steady_for: float = 30.0     # heard this long before a door event ...
    steady_gap: float = 6.0      # ... with no gap longer than this ...
    steady_dbm: float = -90.0    # ... at this median level: its older gaps no longer count
    rx_trust: float = 15.0       # a receiver that reported nothing for this long is not hearing
    fade_db: float = 4.0         # lost at one receiver: the others' levels since the door this far
                                 # below their median of the `door_lead` s before it


@dataclass
class _Rx:
    """One partner's tag as one receiver hears it."""
    last: float | None = None
    gaps: deque[tuple[float, float]] = field(default_factory=deque)  # (end, gap) >= 3 s, while home
    lead: deque[tuple[float, float]] = field(default_factory=deque)  # (t, rssi) of the last door_lead s
    at_door: float | None = None          # median level of the door_lead s before the latest event
    after: deque[float] = field(default_factory=lambda: deque(maxlen=32))  # levels since it


@dataclass
class _Door:
    state: DoorState | None = None
    ok: bool = True
    since: float = 0.0


@dataclass
class _Heard:
    last: float | None = None
    strong: float | None = None           # last advert at indoor level
    gaps: deque[tuple[float, float]] = field(default_factory=deque)  # (end, gap) >= 3 s
    indoor_since: float | None = None
    recent: deque[tuple[float, float]] = field(default_factory=deque)  # (t, rssi), last seconds
    rx: dict[str, _Rx] = field(default_factory=dict)


class DoorFusion:
    """Per partner fused state; the engine feeds it every advert of a household tag (any
    receiver), every door event and health report, and ticks it while it is active."""

    def __init__(self, partners: Iterable[str], cfg: FusionConfig | None = None,
                 doors: Iterable[str] = ()):
        self.cfg = cfg or FusionConfig()
        self.doors: dict[str, _Door] = {d: _Door() for d in doors}
        self.events: deque[tuple[float, bool]] = deque()  # (t, closed after a long open)
        self.steady_at: dict[float, frozenset[str]] = {}  # per door event: who was heard steadily
        self.state: dict[str, State] = {}
        self.away_at: dict[str, float] = {}
        self.home_at: dict[str, float] = {}   # when each partner last came home (fused)
        self._heard: dict[str, _Heard] = {p: _Heard() for p in partners}
        self.rx_seen: dict[str, float] = {}     # per receiver: when it last reported anything
        self.rx_up: dict[str, float] = {}       # ... and since when without a break of rx_trust

    # doors ----------------------------------------------------------------------------------
    def active(self, t: float) -> bool:
        return any(self._counts(d, t) for d in self.doors.values())

    def _counts(self, d: _Door, t: float) -> bool:
        return d.ok and not (d.state == "open" and t - d.since > self.cfg.open_stale)

    def door(self, t: float, door_id: str, state: DoorState) -> bool:
        """Records the door's state; True if it was an event (a change of a working door)."""
        d = self.doors.setdefault(door_id, _Door())
        if d.state == state:
            return False
        long_open = d.state == "open" and t - d.since > self.cfg.open_long
        d.state, d.since = state, t
        if not d.ok:
            return False
        self.events.append((t, long_open))
        self.steady_at[t] = frozenset(p for p, h in self._heard.items() if self._steady(h, t))
        for h in self._heard.values():  # each receiver's level just before the door
            for r in h.rx.values():
                xs = sorted(v for u, v in r.lead if u >= t - self.cfg.door_lead)
                r.at_door = xs[len(xs) // 2] if xs else None
                r.after.clear()
        self._forget(t)
        return True

    def _steady(self, h: _Heard, t: float) -> bool:
        """Heard steadily, at indoor level, for the last `steady_for` s: whatever made the tag
        patchy before (a drawer, a body between it and the hub) has ended, since a tag lying
        still behind either stays patchy; a partner who picked it up and walks to the door is
        heard like this."""
        cfg = self.cfg
        xs = [(u, r) for u, r in h.recent if t - cfg.steady_for <= u <= t]
        if not xs or xs[0][0] > t - cfg.steady_for + cfg.steady_gap:
            return False
        if any(b[0] - a[0] > cfg.steady_gap for a, b in pairwise(xs)):
            return False
        levels = sorted(r for _, r in xs)
        return levels[len(levels) // 2] >= cfg.steady_dbm

    def health(self, door_id: str, ok: bool) -> None:
        self.doors.setdefault(door_id, _Door()).ok = ok

    def _forget(self, t: float) -> None:
        while self.events and self.events[0][0] < t - self.cfg.keep:
            self.steady_at.pop(self.events.popleft()[0], None)

    def _door_open(self, t: float) -> bool:
        return any(d.state == "open" and self._counts(d, t) for d in self.doors.values())

    # receivers ------------------------------------------------------------------------------
    def receiver(self, t: float, name: str) -> None:
        """`name` reported something at `t` (any advert, or an empty summary): it is hearing."""
        last = self.rx_seen.get(name)
        if last is None or t - last > self.cfg.rx_trust:
            self.rx_up[name] = t
        self.rx_seen[name] = max(t, last or t)

    def _hearing(self, name: str, t: float) -> bool:
        return t - self.rx_seen.get(name, float("-inf")) <= self.cfg.rx_trust

    # tags -----------------------------------------------------------------------------------
    def heard(self, t: float, partner: str, rssi: float, receiver: str = "hub") -> tuple[State, bool] | None:
        """An advert of the partner's tag heard by `receiver`: the new (state, door-confirmed) if
        it changed it."""
        cfg, h = self.cfg, self._heard[partner]
        r = h.rx.setdefault(receiver, _Rx())
        if r.last is not None and t - r.last >= 3.0 and self.state.get(partner, "unknown") == "home":
            r.gaps.append((t, t - r.last))
            while r.gaps[0][0] < t - cfg.gap_window - cfg.candidate_for:
                r.gaps.popleft()
        r.last = t
        r.lead.append((t, rssi))
        while r.lead[0][0] < t - cfg.door_lead:
            r.lead.popleft()
        if self.events and self.events[-1][0] <= t:
            r.after.append(rssi)
        if (h.last is not None and t - h.last >= 3.0
                and self.state.get(partner, "unknown") == "home"):
            # only silences while home tell how patchy the tag is: the time away of a leaver
            # back early is none, or their next departure would wait 1.5 x that long
            h.gaps.append((t, t - h.last))
            while h.gaps[0][0] < t - cfg.gap_window - cfg.candidate_for:
                h.gaps.popleft()
        h.last = t
        h.recent.append((t, rssi))
        while h.recent[0][0] < t - cfg.steady_for - cfg.steady_gap:
            h.recent.popleft()
        if rssi >= cfg.indoor_dbm:
            if h.indoor_since is None or h.strong is None or t - h.strong > cfg.indoor_gap:
                h.indoor_since = t
            h.strong = t
        st = self.state.get(partner, "unknown")
        if st == "unknown":
            return self._to(t, partner, "home"), False
        if st == "away":
            since = self.away_at.get(partner, float("-inf"))
            if any(since < te <= t and t - te <= cfg.back_window for te, _ in self.events):
                return self._to(t, partner, "home"), True
            if (rssi >= cfg.indoor_dbm and h.indoor_since is not None and h.indoor_since > since
                    and t - h.indoor_since >= cfg.indoor_hold):
                return self._to(t, partner, "home"), False
        return None

    def tick(self, t: float, partner: str, quiet_from: float, trusted: bool) -> tuple[State, bool] | None:
        """Silence: left (door-confirmed) or, after a very long one, unknown. `quiet_from`: silence
        counts from no earlier than this (the scanner's last (re)start); `trusted`: the radio is
        known to hear (else silence proves nothing)."""
        if self.state.get(partner) != "home" or not trusted:
            return None
        cfg, h = self.cfg, self._heard[partner]
        last = h.last if h.last is not None else quiet_from
        self._forget(t)
        for te, long_open in reversed(self.events):
            if te > t or t - te > cfg.candidate_for:
                continue
            if te <= self.home_at.get(partner, float("-inf")) + cfg.door_post:
                break  # the door they came in through (and closed behind them) is no departure
            if last < te - cfg.door_lead:
                break  # already silent at the latest door event: that one was not theirs
            if h.strong is not None and h.strong > te + cfg.door_post:
                break  # heard indoors well after it: stayed in
            # a door that stood open says little about who went through it: wait longer
            base = cfg.open_silence if long_open or self._door_open(t) else cfg.left_silence
            # a tag that has been patchy (before the door, or weak since) needs more silence
            # (gaps from before the door no longer count when it was heard steadily up to it)
            since = te if partner in self.steady_at.get(te, ()) else te - cfg.gap_window
            patchy = max((g for end, g in h.gaps if end >= since), default=0.0)
            need = max(base, cfg.gap_factor * patchy)
            if t - max(last, te, quiet_from) >= need:
                return self._to(t, partner, "away"), True
            if self._lost_somewhere(h, t, te, base):
                return self._to(t, partner, "away"), True
            break  # the latest event that fits decides
        if t - max(last, quiet_from) >= cfg.unknown_after:
            return self._to(t, partner, "unknown"), False
        return None

    def _lost_somewhere(self, h: _Heard, t: float, te: float, base: float) -> bool:
        """With two receivers or more hearing: one that heard the tag just before the door `te`
        has lost it (silent for `base`, or 1.5 x its own longest gap before the door), and every
        receiver that still hears it hears it only faintly and fading: a reflection, the doorstep
        through the wall. A stayer is near one receiver or the other, and heard there at indoor
        level (which `tick` already counts as inside), or not fading."""
        cfg = self.cfg
        hearing = [n for n in self.rx_seen if self._hearing(n, t)]
        if len(hearing) < 2:
            return False
        lost = False
        for n in hearing:
            r = h.rx.get(n)
            if r is None:
                continue
            heard_since = r.last is not None and r.last > te
            if heard_since:
                levels = sorted(r.after)
                if (r.at_door is None or not levels or levels[-1] >= cfg.indoor_dbm
                        or levels[len(levels) // 2] > r.at_door - cfg.fade_db):
                    return False  # heard since the door as before it, or newly: not fading
            if r.at_door is None:
                continue  # did not hear it at the door: its silence says nothing
            quiet = max(r.last or te, te, self.rx_up.get(n, t))
            patchy = max((g for end, g in r.gaps if end >= te - cfg.gap_window), default=0.0)
            if t - quiet >= max(base, cfg.gap_factor * patchy):
                lost = True
        return lost

    def _to(self, t: float, partner: str, state: State) -> State:
        if state == "home" and self.state.get(partner) != "home":
            self.home_at[partner] = t
        self.state[partner] = state
        if state == "away":
            self.away_at[partner] = t
        return state
