"""A reed contact on a GPIO of the hub or the panel Pi (hardware/door.md).

Wiring: the reed switch between the GPIO and ground, the Pi's internal pull-up on. The magnet on
the door holds the contact closed while the door is shut, so: door closed -> pin low; door open ->
the pull-up makes it high. gpiozero's `DigitalInputDevice(pull_up=True)` (MockFactory in tests,
lgpio on a Pi) reads it; this module polls it on the injected clock and debounces it: a new
reading counts once it has held for `debounce` seconds (a reed bounces for about a millisecond, a
slammed door rattles for tens).

What one contact with a pull-up can and cannot tell:
- a cut wire or an unplugged contact reads exactly like an open door. A door that reads open for
  `stuck_open_after` (default 1 h) is therefore a fault (`door.stuck.<id>`: "close it, or the wire
  may be broken") and the door is not trusted until it closes again;
- a wire shorted to ground, or a magnet stuck to the contact, reads like a closed door forever:
  this cannot be told from a door nobody uses, so it is not reported (the fusion then sees no door
  events and the tags decide, as without a door sensor).
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, Literal

from core.clock import Clock

log = logging.getLogger(__name__)
DoorState = Literal["open", "closed"]


class ReedContact:
    def __init__(self, door_id: str, pin: int | str, clock: Clock,
                 on_door: Callable[[str, str, int | None, bool], None],
                 on_health: Callable[[str, bool, dict[str, str]], None], *,
                 pin_factory: Any = None, debounce: float = 0.05, stuck_open_after: float = 3600.0,
                 poll: float = 0.005):
        from gpiozero import DigitalInputDevice
        self.door_id = door_id
        self.clock = clock
        self._on_door, self._on_health = on_door, on_health
        self.device = DigitalInputDevice(pin, pull_up=True, pin_factory=pin_factory)
        self.debounce, self.stuck_open_after, self._poll = debounce, stuck_open_after, poll
        self.state: DoorState | None = None
        self._raw: DoorState | None = None
        self._raw_since = 0.0
        self._since = 0.0
        self.healthy = True
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def read(self) -> DoorState:
        return "closed" if self.device.is_active else "open"   # active = pulled low = magnet there

    def step(self, now: float) -> None:
        raw = self.read()
        if raw != self._raw:
            self._raw, self._raw_since = raw, now
        if raw != self.state and now - self._raw_since >= self.debounce:
            first = self.state is None
            self.state, self._since = raw, now
            log.info("door %s: %s", self.door_id, raw)
            self._on_door(self.door_id, raw, None, not first)   # the state at start is no movement
        stuck = self.state == "open" and now - self._since >= self.stuck_open_after
        if stuck == self.healthy:
            self.healthy = not stuck
            faults = {f"door.stuck.{self.door_id.replace('-', '_')}":
                      f"door {self.door_id} has read open for {self.stuck_open_after / 60:.0f} min: "
                      "left open, or its wire is cut"} if stuck else {}
            log.warning("door %s %s", self.door_id, "reads open too long: not trusted" if stuck
                        else "closed again: trusted")
            self._on_health(self.door_id, self.healthy, faults)

    def start(self) -> ReedContact:
        self._thread = threading.Thread(target=self._run, name=f"door-{self.door_id}", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self._poll):
            try:
                self.step(self.clock.monotonic())
            except Exception:   # a callback's bug must not end the door
                log.exception("door %s: step failed", self.door_id)

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)
        self.device.close()
