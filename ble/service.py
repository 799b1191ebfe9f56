"""Presence of the partners' tags as a service for the hub: the scanner thread fills a queue, the
`ble-presence` thread drains it into the engine and ticks it on the injected clock, and reports
each partner's presence and the BLE faults through callbacks (the hub publishes them).

Exit doors (docs/ble.md, "Door sensors"): BTHome sensors are heard by the same scanner and decoded
here (`ble.bthome`, `ble.door_watch`); wired contacts are reported by their owner through
`door()`/`door_health()`. Both reach the engine's `door()`/`door_health()` when the engine has them
(the fusion of issue 14 item 2); without them presence is the tags' alone, as before."""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta

from ble.bthome import BTHomeDoor, Refusal
from ble.door_watch import Change, DoorConfig, DoorWatch
from ble.presence import PresenceConfig, PresenceEngine, Transition
from ble.receivers import apply_summary, forget_receiver
from ble.scanner import Scanner, or_patterns
from core.clock import Clock
from mqtt import schemas

log = logging.getLogger(__name__)

POLL_S = 0.01  # real seconds between drains: keeps the queue short at any clock speed
# (door id, state, battery or None, event: it opened/closed now, not only a restated state)
DoorCallback = Callable[[str, str, "int | None", bool], None]


class PresenceService:
    def __init__(self, tags: Mapping[str, Sequence[str]], clock: Clock,
                 on_presence: Callable[[str, str], None],
                 on_faults: Callable[[list[schemas.Fault]], None],
                 backend: type | None = None, backend_kwargs: dict | None = None,
                 expected_home: Callable[[str], bool] = lambda p: False,
                 tick_seconds: float = 1.0, config: PresenceConfig | None = None,
                 doors: Sequence[BTHomeDoor] = (), on_door: DoorCallback | None = None,
                 door_config: DoorConfig | Mapping[str, DoorConfig] | None = None,
                 on_door_faults: Callable[[list[schemas.Fault]], None] | None = None):
        self.clock = clock
        self.engine = PresenceEngine(tags, now=clock.monotonic(), config=config, scanner_up=False)
        self._doors = {d.address: d for d in doors}
        cfgs = door_config if isinstance(door_config, Mapping) else {d.door_id: door_config for d in doors}
        self._watch = {d.door_id: DoorWatch(d.door_id, clock.monotonic(), cfgs.get(d.door_id))
                       for d in doors}
        self._on_door = on_door
        self._on_door_faults = on_door_faults
        self._door_faults: dict[str, schemas.Fault] = {}
        self._on_presence = on_presence
        self._on_faults = on_faults
        self._expected_home = expected_home
        self._tick = tick_seconds
        self._stop = threading.Event()
        # one stall time: the scanner restarts after it, the engine trusts silence again from then
        self.scanner = Scanner(clock, self._stop, or_patterns(self.engine.resolver, bthome=bool(doors)), backend,
                               backend_kwargs, stall_after=self.engine.cfg.stall_after)
        self._faults: dict[str, schemas.Fault] = {}
        self._lock = threading.RLock()
        self._thread: threading.Thread | None = None

    # interface for the hub ------------------------------------------------------------------
    def start(self) -> PresenceService:
        for p in self.engine.presence():
            self._report(Transition(self.clock.monotonic(), p, "unknown"))
        self._thread = threading.Thread(target=self._run, name="ble-presence", daemon=True)
        self._thread.start()
        self.scanner.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.scanner.join()
        if self._thread is not None:
            self._thread.join(5)

    def alive(self) -> bool:
        return (self._thread is not None and self._thread.is_alive() and self.scanner.alive()
                and not self._stop.is_set())

    def presence(self) -> dict[str, str]:
        with self._lock:
            return dict(self.engine.presence())

    def presence_since(self) -> dict[str, datetime]:
        """When each partner's presence last changed, on the wall clock (for the retained topic)."""
        with self._lock:
            now_m, now_w = self.clock.monotonic(), self.clock.wall()
            return {p: now_w - timedelta(seconds=now_m - self.engine.since(p))
                    for p in self.engine.presence()}

    def faults(self) -> list[schemas.Fault]:
        with self._lock:
            return list(self._faults.values())

    def door_faults(self) -> list[schemas.Fault]:
        with self._lock:
            return list(self._door_faults.values())

    def door(self, t: float, door_id: str, state: str) -> None:
        """A door opened or closed (a wired contact, or a BTHome sensor below): to the fusion."""
        fuse = getattr(self.engine, "door", None)
        if fuse is None:
            return
        with self._lock:
            out = fuse(t, door_id, state)
        for tr in out:
            self._report(tr)

    def door_health(self, t: float, door_id: str, ok: bool) -> None:
        """A door sensor stopped (or started again) being trustworthy: the fusion falls back."""
        fuse = getattr(self.engine, "door_health", None)
        if fuse is None:
            return
        with self._lock:
            out = fuse(t, door_id, ok)
        for tr in out:
            self._report(tr)

    def summary(self, t: float, receiver: str, msg: schemas.TagsHeard) -> None:
        """An extra receiver's `panel/tags_heard` summary, received at `t`: to the engine."""
        with self._lock:
            out = apply_summary(self.engine, t, receiver, msg)
        for tr in out:
            self._report(tr)

    def receiver_gone(self, receiver: str) -> None:
        """An extra receiver went offline: it stops counting now (ble.receivers)."""
        with self._lock:
            forget_receiver(self.engine, receiver)

    # the ble-presence thread ----------------------------------------------------------------
    def _run(self) -> None:
        next_tick = self.clock.monotonic() + self._tick
        while not self._stop.wait(POLL_S):
            try:
                out = self._drain()
                now = self.clock.monotonic()
                if now >= next_tick:
                    with self._lock:
                        out += self.engine.tick(now)
                    self._check_missing(now)
                    for w in self._watch.values():
                        self._door_change(now, w, w.tick(now))
                    next_tick = max(next_tick + self._tick, now)
                for tr in out:
                    self._report(tr)
            except Exception:  # a bad advert or a callback's bug must not end presence
                log.exception("BLE presence step failed")

    def _drain(self) -> list[Transition]:
        q, out, doors = self.scanner.queue, [], []
        while q:
            item = q.popleft()
            with self._lock:
                if len(item) == 5:  # (address, rssi, t, manufacturer_data, service_data)
                    address, rssi, t, mfr, svc = item
                    door = self._doors.get(address.upper()) if self._doors else None
                    if door is not None:
                        doors.append((t, door, rssi, svc))
                    out += self.engine.advert(t, address, rssi, mfr, svc)
                    self._clear("ble.scanner_stalled")
                elif item[0] == "scanner":
                    _, up, reason, t = item
                    out += self.engine.set_scanner(t, up)
                    if up:
                        self._clear("ble.scanner_down")
                    else:
                        self._raise("ble.scanner_down",
                                    f"Bluetooth scanner is down and being restarted ({reason})")
                elif item[0] == "stall":
                    self._raise("ble.scanner_stalled", f"no Bluetooth advert for "
                                f"{self.engine.cfg.stall_after:.0f} s; the scan was restarted")
        for d in doors:   # outside the lock: their callbacks publish through the hub
            self._door_advert(*d)
        return out

    def _check_missing(self, now: float) -> None:
        missing = set()
        for p, i in self.engine.missing_tags(now, self._expected_home):
            code = f"ble.tag_missing.{p}.{i}"
            missing.add(code)
            self._raise(code, f"tag {i} of partner {p} has not been heard for 24 hours while "
                              "expected home: check its battery or whether it was lost")
        for code in [c for c in self._faults if c.startswith("ble.tag_missing.") and c not in missing]:
            self._clear(code)

    # BTHome doors ---------------------------------------------------------------------------
    def _door_advert(self, t: float, door: BTHomeDoor, rssi: int, svc: dict) -> None:
        try:
            r = door.decode(t, rssi, svc)
        except Exception:   # never let one sensor's advert stop presence
            log.exception("door %s: advert not decoded", door.door_id)
            return
        if r is None:
            return
        w = self._watch[door.door_id]
        if isinstance(r, Refusal):
            (log.debug if r.kind == "repeat" else log.warning)("%s", r.reason)
            self._door_change(t, w, w.refused(t, r))
        else:
            self._door_change(t, w, w.accepted(t, r))

    def _door_change(self, t: float, w: DoorWatch, ch: Change) -> None:
        if ch.state is not None or ch.battery_changed:
            log.info("door %s: %s%s", w.door_id, w.state, " (opened/closed)" if ch.event else "")
            if self._on_door is not None:
                try:
                    self._on_door(w.door_id, w.state, w.battery, ch.event)
                except Exception:
                    log.exception("on_door failed")
            if ch.event:
                self.door(t, w.door_id, w.state)
        if ch.healthy is not None:
            log.warning("door %s is %s", w.door_id, "trusted again" if ch.healthy else
                        "not trusted: " + "; ".join(ch.faults.values()))
            self.door_health(t, w.door_id, ch.healthy)
        if ch.faults_changed:
            with self._lock:
                mine = {c for c in self._door_faults if c.endswith(f".{w.code_id}")}
                for c in mine - ch.faults.keys():
                    del self._door_faults[c]
                for c, reason in ch.faults.items():
                    if c not in self._door_faults:
                        self._door_faults[c] = schemas.Fault(code=c, service="hub", since=self.clock.wall(),
                                                             reason=reason[:160])
                faults = list(self._door_faults.values())
            if self._on_door_faults is not None:
                try:
                    self._on_door_faults(faults)
                except Exception:
                    log.exception("on_door_faults failed")

    # reporting ------------------------------------------------------------------------------
    def _report(self, tr: Transition) -> None:
        log.info("partner %s: %s", tr.partner, tr.presence)
        try:
            if getattr(tr, "door", False):   # confirmed by a door event (the fusion's Transition)
                self._on_presence(tr.partner, tr.presence, door=True)  # type: ignore[call-arg]
            else:
                self._on_presence(tr.partner, tr.presence)
        except Exception:
            log.exception("on_presence failed")

    def _raise(self, code: str, reason: str) -> None:
        if code in self._faults:
            return
        self._faults[code] = schemas.Fault(code=code, service="hub", since=self.clock.wall(),
                                           reason=reason[:160])
        self._faults_changed()

    def _clear(self, code: str) -> None:
        if self._faults.pop(code, None) is not None:
            self._faults_changed()

    def _faults_changed(self) -> None:
        try:
            self._on_faults(list(self._faults.values()))
        except Exception:
            log.exception("on_faults failed")
