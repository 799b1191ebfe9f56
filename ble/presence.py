"""Home/away per partner from the adverts of their tags: a pure engine, driven with explicit times
(adverts and ticks), so a week runs in seconds and the live service and `presence-replay` share it.

Per tag (docs/ble.md has the numbers and why):
- arrive fast: `arrive_adverts` adverts at least `arrive_dbm` (filtered) within `arrive_window` s;
- leave, fast path: the last advert ended a sustained, gradual fall to below the tag's learned
  home levels (a walk out of the door): `walk_leave` s of silence suffice;
- leave, slow path: otherwise silence for the learned leave time (`miss_intervals` intervals or
  1.25 x the longest silence while home, plus `margin`, clamped; `leave_initial` until `learn_after`
  seconds at home have been heard): a drawer or a body makes a step down from the room's level, not a fall;
- silence counts as absence only while the scanner is known to work (it heard *some* advert in the
  last `quiet_trust` seconds, or was just (re)started); otherwise the tag becomes `unknown`, never
  `away`. A scanner that is down makes every partner `unknown`.
A partner is home if any of their tags is home, away if all are away, otherwise unknown.

With an exit-door contact working (issue 14), `ble.fusion.DoorFusion` decides instead: departures
and returns need a door event, silence alone never makes a partner away. The per-tag engine above
keeps running on the hub's own adverts and takes over when no door counts any more.
"""
from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from ble.fusion import DoorFusion, DoorState, FusionConfig
from ble.identity import Resolver, TagId, parse_tag_id
from ble.rssi_filter import WindowMedian

State = Literal["home", "away", "unknown"]
DUPLICATE_GAP = 0.02  # the same advert on another channel or a scan response: not a new interval
SILENCE_HALF_LIFE = 2 * 86400.0
HOME_HALF_LIFE = 2 * 86400.0
WALK_DISTRUST = 2 * 86400.0  # the fast path is off this long after its signature misled
SILENCE_FACTOR = 1.25


@dataclass(frozen=True)
class PresenceConfig:
    arrive_dbm: float = -100.0
    arrive_adverts: int = 1
    arrive_window: float = 5.0
    floor_dbm: float = -100.0
    miss_intervals: int = 12
    margin: float = 8.0
    leave_min: float = 12.0
    leave_max: float = 300.0      # slow path: silence from a usual level (drawer, lying on it)
    walk_leave: float = 35.0      # fast path: silence after a walk-away
    walk_fall_db: float = 15.0    # walk-away: filtered RSSI this far below its level of
    walk_ref: tuple[float, float] = (30.0, 8.0)  # ... [t-30 s, t-8 s] (median) ...
    walk_step_db: float = 8.0     # ... reached without a single drop larger than this ...
    home_low_pct: float = 1.0     # ... and below this percentile of the tag's levels while home
    home_low_default: float = -88.0
    brief_away: float = 330.0
    leave_initial: float = 300.0  # slow path until learn_after s heard at home: no guessing
    learn_after: float = 6 * 3600.0
    default_interval: float = 1.0
    quiet_trust: float = 15.0
    stall_after: float = 90.0
    missing_after: float = 24 * 3600.0


@dataclass(frozen=True)
class Transition:
    """A partner's presence changed at `t`. `door`: confirmed by an exit-door event (a departure
    or return the procedure may count at once, without its own confirmation time)."""
    t: float
    partner: str
    presence: State
    door: bool = False


class HomeLevels:
    """The tag's filtered RSSI while its partner is home: a 1 dB histogram whose weights decay with
    a half-life of HOME_HALF_LIFE (a tag moved to a new pocket or a rearranged room is learned in
    days). Samples at most every SAMPLE_S so a fast-advertising tag does not dominate."""

    LO, HI = -120, -20
    SAMPLE_S = 2.0
    MIN_SAMPLES = 300  # ~10 minutes at home before the learned level replaces the default
    HEARD_GAP_S = 30.0

    def __init__(self):
        self.w = [0.0] * (self.HI - self.LO + 1)
        self.total = 0.0
        self.n = 0
        self.heard_s = 0.0  # time at home with the tag heard (gaps count up to HEARD_GAP_S)
        self._t0: float | None = None
        self._last = float("-inf")

    def add(self, t: float, rssi: float) -> None:
        if t - self._last < self.SAMPLE_S:
            return
        self.heard_s += min(t - self._last, self.HEARD_GAP_S)
        self._last = t
        if self._t0 is None:
            self._t0 = t
        g = 2.0 ** ((t - self._t0) / HOME_HALF_LIFE)  # newer samples weigh more: same as decay
        if g > 1e6:
            self.w = [x / g for x in self.w]
            self.total /= g
            self._t0, g = t, 1.0
        k = min(max(round(rssi) - self.LO, 0), len(self.w) - 1)
        self.w[k] += g
        self.total += g
        self.n += 1

    def percentile(self, p: float) -> float | None:
        if self.n < self.MIN_SAMPLES:
            return None
        goal, acc = self.total * p / 100.0, 0.0
        for k, x in enumerate(self.w):
            acc += x
            if acc >= goal:
                return float(self.LO + k)
        return float(self.HI)


class TagTracker:
    """One tag: filtered RSSI, learned interval and leave times, and its own home/away state."""

    GAPS = 64  # recent advert gaps, for the interval

    def __init__(self, cfg: PresenceConfig, now: float):
        self.cfg = cfg
        self.filter = WindowMedian()
        self.state: State = "unknown"
        self.last_advert: float | None = None
        self.last_evidence: float | None = None
        self.last_elsewhere: float | None = None  # heard by an extra receiver
        self.created = now
        self._strong: deque[float] = deque(maxlen=max(1, cfg.arrive_adverts))
        self._gaps: deque[float] = deque(maxlen=self.GAPS)
        self._interval = cfg.default_interval
        self._silence_max = 0.0
        self._silence_at = now
        self._away_at = now
        self.levels = HomeLevels()
        self._home_low = cfg.home_low_default
        self._home_low_at = float("-inf")
        self._recent: deque[tuple[float, float]] = deque()  # (t, filtered) of the last walk_ref[0] s
        self.walking = False  # the last evidence was a walk-away: the fast leave time applies
        self._walk_wrong_at = float("-inf")

    def advert(self, t: float, rssi: float) -> bool:
        """Returns True when this advert made the tag arrive."""
        cfg = self.cfg
        if self.last_advert is not None:
            gap = t - self.last_advert
            if gap > DUPLICATE_GAP:
                self._gaps.append(gap)
                if len(self._gaps) % 16 == 0:
                    self._learn_interval()
        self.last_advert = t
        f = self.filter.update(t, rssi)
        recent = self._recent
        recent.append((t, f))
        while recent[0][0] < t - cfg.walk_ref[0]:
            recent.popleft()
        if self.state == "home":
            self.levels.add(t, f)
        if f >= cfg.floor_dbm:
            if self.last_evidence is not None and (
                    self.state == "home" or (self.state == "away" and t - self._away_at < cfg.brief_away)):
                silence = t - self.last_evidence
                if not self.walking:
                    self._learn_silence(silence)
                elif silence >= cfg.walk_leave / 2:
                    # the walk-away signature, and yet still home: not to be trusted in this home
                    self._walk_wrong_at = t
            self.last_evidence = t
            self.walking = self._walking_away(t, f)
        if f >= cfg.arrive_dbm:
            self._strong.append(t)
            if (self.state != "home" and len(self._strong) == self._strong.maxlen
                    and t - self._strong[0] <= cfg.arrive_window):
                self.state = "home"
                return True
        return False

    def heard_elsewhere(self, t: float) -> bool:
        """Heard by an extra receiver in the home: the tag is inside. It arrives, and its silence
        counts from here; its levels, interval and learned silences stay the hub's own (so the
        leave time stays right when the other receiver is down). True when it made it arrive."""
        self.last_elsewhere = max(t, self.last_elsewhere or t)
        if self.state != "home":
            self.state = "home"
            return True
        return False

    def home_low(self, t: float) -> float:
        """The level this tag is rarely below while home (refreshed once a minute)."""
        if t - self._home_low_at >= 60.0:
            self._home_low_at = t
            p = self.levels.percentile(self.cfg.home_low_pct)
            self._home_low = self.cfg.home_low_default if p is None else p
        return self._home_low

    def _walking_away(self, t: float, f: float) -> bool:
        """A sustained fall to below the home's usual levels: the filtered RSSI is walk_fall_db
        under its median of walk_ref seconds ago, got there in steps of at most walk_step_db between
        adverts over the last walk_ref[0] s (walking away is gradual; a drawer or a body is one
        step from the room's level), and is below the home_low_pct percentile of home levels."""
        cfg = self.cfg
        low = self.home_low(t)
        before = sorted(v for u, v in self._recent if u <= t - cfg.walk_ref[1])
        ref = before[len(before) // 2] if before else None
        if ref is None or f > low or ref - f < cfg.walk_fall_db:
            return False
        fall = [v for _, v in self._recent]
        return all(a - b <= cfg.walk_step_db for a, b in itertools.pairwise(fall))

    def _learn_interval(self) -> None:
        # Lost adverts only lengthen gaps, so a low percentile is the advertising interval itself.
        gaps = sorted(self._gaps)
        self._interval = gaps[len(gaps) // 10]

    def _learn_silence(self, silence: float) -> None:
        """The longest silence while home, forgotten with a half-life of SILENCE_HALF_LIFE: one
        deep fade lengthens the leave time at once, a better spot for the tag shortens it slowly.
        A silence that ended a brief away (taking the bin out, or a false away) counts too."""
        t = self.last_evidence + silence
        decayed = self._silence_max * 0.5 ** ((t - self._silence_at) / SILENCE_HALF_LIFE)
        if silence > decayed:
            self._silence_max, self._silence_at = silence, t

    @property
    def interval(self) -> float:
        return self._interval

    def leave_after(self) -> float:
        cfg = self.cfg
        base = max(cfg.miss_intervals * self._interval, SILENCE_FACTOR * self._silence_max)
        young = self.levels.heard_s < cfg.learn_after
        low = cfg.leave_initial if young else cfg.leave_min  # too little seen to go shorter
        leave = min(cfg.leave_max, max(low, base + cfg.margin))
        if self.walking and (self.last_evidence or 0.0) - self._walk_wrong_at > WALK_DISTRUST:
            return min(leave, max(cfg.walk_leave, cfg.miss_intervals * self._interval))
        return leave

    def expire(self, t: float, scanner_since: float, last_any: float) -> State | None:
        """The new state if silence changed it."""
        if self.state == "away":
            return None
        # A radio quiet for stall_after gets its scan restarted (scanner.py): silence counts again
        # from that restart, which confirms the quiet is real.
        restarted = max(scanner_since, last_any + self.cfg.stall_after
                        if t - last_any >= self.cfg.stall_after else scanner_since)
        quiet_from = max(self.last_evidence or restarted, self.last_elsewhere or restarted, restarted)
        if t - quiet_from < self.leave_after():
            return None
        trusted = t - last_any <= self.cfg.quiet_trust or restarted > last_any
        new: State = "away" if trusted else "unknown"
        if new != self.state:
            self.state = new
            self._away_at = t
            self._strong.clear()
            return new
        return None


class PresenceEngine:
    """Adverts and ticks in, partner transitions out. Unknown devices are dropped on arrival."""

    def __init__(self, tags: Mapping[str, Sequence[str]], now: float = 0.0,
                 config: PresenceConfig | None = None, scanner_up: bool = True,
                 doors: Iterable[str] = (), fusion: FusionConfig | None = None):
        """`doors`: exit doors whose contact is installed and working from the start (no event)."""
        self.cfg = config or PresenceConfig()
        self._tag_ids: dict[str, list[TagId]] = {
            p: [parse_tag_id(s) for s in ([ids] if isinstance(ids, str) else ids)]
            for p, ids in tags.items()}
        self.resolver = Resolver([t for ids in self._tag_ids.values() for t in ids])
        self._trackers: dict[str, TagTracker] = {}
        self._owner: dict[str, str] = {}
        for p, ids in self._tag_ids.items():
            for tid in ids:
                self._trackers[tid.key] = TagTracker(self.cfg, now)
                self._owner[tid.key] = p
        self.scanner_up = scanner_up
        self.scanner_since = now
        self.last_any = now
        self.adverts_seen = 0
        self._partner: dict[str, State] = dict.fromkeys(self._tag_ids, "unknown")
        self._since: dict[str, float] = dict.fromkeys(self._tag_ids, now)
        self.fusion = DoorFusion(self._tag_ids, fusion, doors)
        self._fused = False  # the door fusion decides (a door counts); else the per-tag engine
        self._held: dict[str, State] = {}  # fused states when the scanner went down
        self._down_at = now
        self._sync_fusion(now)

    # inputs ---------------------------------------------------------------------------------
    def advert(self, t: float, address: str, rssi: float,
               manufacturer_data: Mapping[int, bytes] | None = None,
               service_data: Mapping[str, bytes] | None = None,
               receiver: str = "hub") -> list[Transition]:
        """An advert heard at `t` by `receiver` ("hub": the hub's own radio; other names: extra
        receivers: a second Pi in the home). An extra receiver's adverts count for the door fusion,
        and for the per-tag engine as presence only (the tag is inside: it arrives, and its
        silence counts from then), never for its levels: their RSSI is on another scale."""
        self.adverts_seen += 1
        if receiver == "hub" and t > self.last_any:
            self.last_any = t  # the hub's own radio is hearing (extra receivers: fusion.receiver)
        if not self.scanner_up:
            return []
        self.fusion.receiver(t, receiver)
        key = self.resolver.match(address, manufacturer_data, service_data)
        if key is None:
            return []
        p = self._owner[key]
        if receiver == "hub":
            arrived = self._trackers[key].advert(t, rssi)
        else:
            arrived = self._trackers[key].heard_elsewhere(t)
        fused = self.fusion.heard(t, p, rssi, receiver)
        if self._fused:
            return [] if fused is None else self._set(t, p, fused[0], fused[1])
        return self._update(t, p) if arrived else []

    def tags_heard(self, t: float, receiver: str, scanning: bool,
                   heard: Iterable[tuple[str, float, float]]) -> list[Transition]:
        """An extra receiver's summary at `t` (the panel's `panel/tags_heard`): per partner
        (partner, time of the last advert, level). `scanning` False: its radio is down, and its
        silence says nothing until it reports again."""
        if not scanning or not self.scanner_up:
            return []
        self.fusion.receiver(t, receiver)
        out: list[Transition] = []
        for p, at, rssi in sorted(heard, key=lambda x: x[1]):
            if p not in self._tag_ids:
                continue
            at = min(at, t)
            arrived = False
            for tid in self._tag_ids[p]:
                arrived = self._trackers[tid.key].heard_elsewhere(at) or arrived
            fused = self.fusion.heard(at, p, rssi, receiver)
            if self._fused:
                out += [] if fused is None else self._set(at, p, fused[0], fused[1])
            elif arrived:
                out += self._update(at, p)
        return out

    def tick(self, t: float) -> list[Transition]:
        if not self.scanner_up:
            return []
        changed = {self._owner[k] for k, tr in self._trackers.items()
                   if tr.expire(t, self.scanner_since, self.last_any) is not None}
        out = self._sync_fusion(t)
        if not self._fused:
            for p in sorted(changed):
                out += self._update(t, p)
            return out
        stalled = t - self.last_any >= self.cfg.stall_after
        restarted = max(self.scanner_since, self.last_any + self.cfg.stall_after if stalled else 0.0)
        trusted = t - self.last_any <= self.cfg.quiet_trust or restarted > self.last_any
        for p in sorted(self._partner):
            fused = self.fusion.tick(t, p, restarted, trusted)
            if fused is not None:
                out += self._set(t, p, fused[0], fused[1])
        return out

    def door(self, t: float, door_id: str, state: DoorState) -> list[Transition]:
        """The exit door `door_id` is now `state` ("open"|"closed"), as its sensor reported at `t`.
        Call it for each change; a repeated state is no event. The first call installs the door
        (and counts as an event); to install a door without an event, give `doors=[...]` or call
        `door_health(t, door_id, True)`. A door reported dead (door_health ok=False) is followed
        but its events do not count until it is reported ok again."""
        if state not in ("open", "closed"):
            raise ValueError(f"door state must be 'open' or 'closed', not {state!r}")
        self.fusion.door(t, door_id, state)
        return self._sync_fusion(t)

    def door_health(self, t: float, door_id: str, ok: bool) -> list[Transition]:
        """The door's sensor works (ok=True: installs it) or is dead, silent or low on battery
        (ok=False): that door no longer counts, and with no door counting the per-tag engine
        decides again, starting from the fused states (a partner seen leaving stays away until
        heard again: no false return). Raising the fault is the caller's business."""
        self.fusion.health(door_id, ok)
        return self._sync_fusion(t)

    def door_fused(self) -> bool:
        """True while a door counts and the door fusion decides."""
        return self._fused

    def _sync_fusion(self, t: float) -> list[Transition]:
        """Hand the decision over when a door starts or stops counting."""
        active = self.fusion.active(t)
        if active == self._fused:
            return []
        self._fused = active
        if active:  # the fusion starts from what the per-tag engine says now
            self.fusion.state = dict(self._partner)
            self.fusion.away_at = {p: t for p, s in self._partner.items() if s == "away"}
            return []
        out: list[Transition] = []
        for p, ids in self._tag_ids.items():
            for tid in ids:
                tr = self._trackers[tid.key]
                if self._partner[p] == "away" and tr.state != "away":
                    tr.state, tr._away_at = "away", t
                    tr._strong.clear()
                elif self._partner[p] == "home" and tr.state == "away":
                    tr.state = "home"  # its own silence rule decides from here
            out += self._update(t, p)
        return out

    def set_scanner(self, t: float, up: bool) -> list[Transition]:
        """Down: everyone unknown (we cannot hear). Up: silence counts again from now."""
        if up and self.scanner_up:
            self.scanner_since = t  # restarted after a stall: silence counts from now
            return []
        if up == self.scanner_up:
            return []
        self.scanner_up = up
        self.scanner_since = t
        out: list[Transition] = []
        if not up:
            for tr in self._trackers.values():
                tr.state = "unknown"
                tr._strong.clear()
            self._held = dict(self.fusion.state) if self._fused else {}
            for p in self._partner:
                out += self._set(t, p, "unknown")
            self.fusion.state = dict(self._partner)
        elif self._fused and self._held and not any(te >= self._down_at for te, _ in self.fusion.events):
            # no door moved while we could not hear: who had left is still out, who was home
            # still in (their silence counts again from now)
            for p, st in self._held.items():
                if st != "unknown" and self.fusion.state.get(p) == "unknown":
                    self.fusion.state[p] = st
                    out += self._set(t, p, st)
        self._down_at = t
        return out

    # outputs --------------------------------------------------------------------------------
    def partner_of(self, address: str, manufacturer_data: Mapping[int, bytes] | None = None,
                   service_data: Mapping[str, bytes] | None = None) -> str | None:
        """Whose tag sent this advert, or None (the bench's baselines share our identity rules)."""
        key = self.resolver.match(address, manufacturer_data, service_data)
        return None if key is None else self._owner[key]

    def presence(self) -> dict[str, State]:
        return dict(self._partner)

    def since(self, partner: str) -> float:
        return self._since[partner]

    def missing_tags(self, t: float, expected_home: Callable[[str], bool]) -> list[tuple[str, int]]:
        """(partner, 1-based tag number) of tags silent longer than `missing_after` while their
        partner is around: a flat battery or a lost tag, not an absence. The partner is around when
        another of their tags was heard meanwhile, or `expected_home(p)` says so from other
        evidence (the wearable not apart). All of a partner's tags silent with no such evidence is
        a known absence (a weekend away), not a fault."""
        out = []
        for p, ids in self._tag_ids.items():
            silent = []
            for i, tid in enumerate(ids, 1):
                tr = self._trackers[tid.key]
                heard = tr.last_advert if tr.last_advert is not None else tr.created
                if t - heard > self.cfg.missing_after:
                    silent.append(i)
            if silent and (len(silent) < len(ids) or expected_home(p)):
                out += [(p, i) for i in silent]
        return out

    def tag_details(self) -> dict[str, list[dict]]:
        """Per partner, per tag: state, learned interval and leave time (no addresses)."""
        return {p: [{"tag": i, "state": self._trackers[tid.key].state, "kind": tid.kind,
                     "interval_s": round(self._trackers[tid.key].interval, 3),
                     "leave_after_s": round(self._trackers[tid.key].leave_after(), 1)}
                    for i, tid in enumerate(ids, 1)]
                for p, ids in self._tag_ids.items()}

    # internals ------------------------------------------------------------------------------
    def _update(self, t: float, partner: str) -> list[Transition]:
        states = [self._trackers[tid.key].state for tid in self._tag_ids[partner]]
        new: State = ("home" if "home" in states else
                      "away" if states and all(s == "away" for s in states) else "unknown")
        return self._set(t, partner, new)

    def _set(self, t: float, partner: str, new: State, door: bool = False) -> list[Transition]:
        if self._partner[partner] == new:
            return []
        self._partner[partner] = new
        self._since[partner] = t
        return [Transition(t, partner, new, door)]


def run_adverts(engine: PresenceEngine, adverts: Iterable[tuple], end: float | None = None,
                tick: float = 1.0) -> list[Transition]:
    """Feed (t, address, rssi[, manufacturer_data, service_data]) in time order, ticking every
    `tick` seconds of trace time, as the live service does on its clock."""
    return run_events(engine, (("advert", *adv) for adv in adverts), end=end, tick=tick)


def run_events(engine: PresenceEngine, events: Iterable[tuple], end: float | None = None,
               tick: float = 1.0) -> list[Transition]:
    """("advert", t, address, rssi[, mfr, svc, receiver]), ("door", t, id, state) and
    ("door_health", t, id, ok) in time order into the engine, ticking every `tick` s of trace
    time as the live service does (`sim.ble_traces.Trace.events()` and presence-replay's form)."""
    out: list[Transition] = []
    next_tick: float | None = None
    for ev in events:
        t = ev[1]
        if next_tick is None:
            next_tick = t + tick
        while next_tick <= t:
            out += engine.tick(next_tick)
            next_tick += tick
        if ev[0] == "advert":
            out += engine.advert(*ev[1:])
        elif ev[0] == "door":
            out += engine.door(*ev[1:])
        else:
            out += engine.door_health(*ev[1:])
    while end is not None and next_tick is not None and next_tick <= end:
        out += engine.tick(next_tick)
        next_tick += tick
    return out
