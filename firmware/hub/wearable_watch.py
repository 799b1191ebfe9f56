"""Supervision of the partners' wearables, beside the hub's procedure (it never feeds it).

Each wearable sends `partner/<p>/heartbeat` every 10 minutes. When none has come from a
wearable the plan names for `SILENT_AFTER_S` (one hour: six missed beats, well inside the daily
check EN 50134-2 asks of a supervised device), the hub shows the neutral fault
`wearable.silent.<p>` (state.faults, the panel's fault light, the event log); the next heartbeat
clears it. Counted on the hub's monotonic clock from the hub's start or the last beat, so a
restarted hub gives every wearable a full hour before it says anything.

The link each heartbeat names (home broker, or via the organisation when the wearable is away
from home Wi-Fi) is kept as `link(p)`: "home" / "organisation" / "silent". Only "silent" needs
someone to act, so only that reaches the panel (the fault light); the link itself stays here and
in the hub's log, never in `state`, which the other partner's devices read (it would tell them
whether this partner is home). A wearable heard over the home link is evidence that its partner
is around: the tag supervision uses `around(p)` like a tag heard (firmware/hub/sensors.py).
"""
from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from mqtt import schemas
from mqtt.client import Message

if TYPE_CHECKING:
    from firmware.hub.service import Hub

log = logging.getLogger(__name__)
SILENT_AFTER_S = 3600.0
CHECK_EVERY_S = 30.0      # real seconds between checks


class WearableWatch:
    def __init__(self, hub: Hub, *, silent_after_s: float = SILENT_AFTER_S,
                 check_every_s: float = CHECK_EVERY_S):
        self.hub = hub
        self.partners = [p for p, pp in hub.plan.partners.items() if pp.wearable]
        self.silent_after_s = silent_after_s
        self.check_every_s = check_every_s
        now = hub.clock.monotonic()
        self._last = dict.fromkeys(self.partners, now)
        self.beats = dict.fromkeys(self.partners, 0)    # heartbeats heard since the start
        self._link: dict[str, str | None] = dict.fromkeys(self.partners)
        self._silent: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> WearableWatch:
        if not self.partners:
            return self
        self.hub.bus.on("partner/{partner}/heartbeat", self._beat)
        self._thread = threading.Thread(target=self._run, name="wearable-watch", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(5)

    def _beat(self, m: Message) -> None:
        if m.partner not in self._last:     # a wearable the plan does not name: nothing to watch
            return
        link = getattr(m.payload, "link", None)
        with self._lock:
            self._last[m.partner] = self.hub.clock.monotonic()
            self.beats[m.partner] += 1
            if link != self._link[m.partner]:
                log.info("wearable of partner %s: link %s", m.partner,
                         "via the organisation" if link == "organisation" else link)
            self._link[m.partner] = link
        self.check()

    def link(self, p: str) -> str | None:
        """"home", "organisation" or "silent"; None: not heard yet (or no wearable)."""
        with self._lock:
            if p in self._silent:
                return "silent"
            return self._link.get(p)

    def around(self, p: str) -> bool:
        """Partner p's wearable heartbeats over the home broker (not silent): p is around."""
        now = self.hub.clock.monotonic()
        with self._lock:
            return (self.beats.get(p, 0) > 0 and self._link.get(p) == "home"
                    and now - self._last[p] < self.silent_after_s)

    def _run(self) -> None:
        while not self._stop.wait(self.check_every_s):
            try:
                self.check()
            except Exception:       # supervision must never stop the hub
                log.exception("wearable supervision failed")

    def check(self) -> None:
        now = self.hub.clock.monotonic()
        with self._lock:
            silent = {p for p, t in self._last.items() if now - t >= self.silent_after_s}
            if silent == self._silent:
                return
            for p in sorted(silent - self._silent):
                log.warning("wearable of partner %s silent for %.0f s", p, now - self._last[p])
            for p in sorted(self._silent - silent):
                log.info("wearable of partner %s heard again", p)
            self._silent = silent
            faults = [schemas.Fault(code=f"wearable.silent.{p}", service="hub",
                                    since=self.hub.clock.wall(),
                                    reason=f"the wearable of partner {p} has not been heard for "
                                           f"{int(self.silent_after_s // 60)} minutes")
                      for p in sorted(silent)]
        self.hub.sensor_faults("wearable", faults)
