"""Presence of the partners' tags as a service for the hub: the scanner thread fills a queue, the
`ble-presence` thread drains it into the engine and ticks it on the injected clock, and reports
each partner's presence and the BLE faults through callbacks (the hub publishes them)."""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta

from ble.presence import PresenceConfig, PresenceEngine, Transition
from ble.scanner import Scanner, or_patterns
from core.clock import Clock
from mqtt import schemas

log = logging.getLogger(__name__)

POLL_S = 0.01  # real seconds between drains: keeps the queue short at any clock speed


class PresenceService:
    def __init__(self, tags: Mapping[str, Sequence[str]], clock: Clock,
                 on_presence: Callable[[str, str], None],
                 on_faults: Callable[[list[schemas.Fault]], None],
                 backend: type | None = None, backend_kwargs: dict | None = None,
                 expected_home: Callable[[str], bool] = lambda p: False,
                 tick_seconds: float = 1.0, config: PresenceConfig | None = None):
        self.clock = clock
        self.engine = PresenceEngine(tags, now=clock.monotonic(), config=config, scanner_up=False)
        self._on_presence = on_presence
        self._on_faults = on_faults
        self._expected_home = expected_home
        self._tick = tick_seconds
        self._stop = threading.Event()
        # one stall time: the scanner restarts after it, the engine trusts silence again from then
        self.scanner = Scanner(clock, self._stop, or_patterns(self.engine.resolver), backend,
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
                    next_tick = max(next_tick + self._tick, now)
                for tr in out:
                    self._report(tr)
            except Exception:  # a bad advert or a callback's bug must not end presence
                log.exception("BLE presence step failed")

    def _drain(self) -> list[Transition]:
        q, out = self.scanner.queue, []
        while q:
            item = q.popleft()
            with self._lock:
                if len(item) == 5:  # (address, rssi, t, manufacturer_data, service_data)
                    address, rssi, t, mfr, svc = item
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

    # reporting ------------------------------------------------------------------------------
    def _report(self, tr: Transition) -> None:
        log.info("partner %s: %s", tr.partner, tr.presence)
        try:
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
