"""The panel Pi's exit-door contacts (issue 14): a reed contact on a panel GPIO, for a home where
the panel hangs by the front door and the hub does not. docs/ble.md, "Door sensors".

Each contact is read by `firmware/doors/reed.py` (pull-up, debounced) and published by the panel's
own bus client as `door/panel-N` (retained) and `door/panel-N/event`; the broker's ACL lets only
the panel publish a `panel-N` door. The hub hands the events to its presence fusion
(`Hub._door_event`). A door that reads open too long (left open, or a cut wire) is a fault on
`panel/health` (`door.stuck.panel_N`), which the hub puts on the panel's fault light.
"""
from __future__ import annotations

import logging
import re
import threading
from datetime import datetime
from typing import Any

from pydantic import Field, model_validator

from core.clock import Clock
from core.config import StrictConfig
from firmware.doors.publish import DoorPublisher
from firmware.doors.reed import ReedContact
from mqtt import schemas
from mqtt.client import BusClient

log = logging.getLogger(__name__)


class PanelDoor(StrictConfig):
    """A reed contact wired to the panel Pi (hardware/door.md: the contact between the GPIO and
    ground, the Pi's pull-up on)."""

    id: str = Field(description="`panel-1` or `panel-2`: the door's topic `door/<id>`")
    pin: int = Field(description="the BCM GPIO number the contact is wired to")
    stuck_open_min: float = Field(60.0, ge=5, le=1440, description="a fault after the door reads "
                                  "open this long (left open, or a cut wire)")

    @model_validator(mode="after")
    def _check(self) -> PanelDoor:
        problems = []
        if not re.fullmatch(r"panel-[12]", self.id):
            problems.append(f"id {self.id!r} is not a panel door id: use panel-1 or panel-2")
        if not 2 <= self.pin <= 27:
            problems.append(f"pin {self.pin} is not a GPIO of the Pi's header (2-27)")
        if problems:
            raise ValueError("\n".join(problems))
        return self


class PanelDoors:
    """Runs the panel's door contacts: their states and events on the bus, their faults on
    `panel/health`."""

    def __init__(self, bus: BusClient, doors: list[PanelDoor], clock: Clock, *,
                 pin_factory: Any = None):
        self.bus, self.clock = bus, clock
        self._publish = DoorPublisher(bus, {d.id: "gpio" for d in doors})
        self._faults: dict[str, dict[str, tuple[str, datetime]]] = {}  # door: code: (reason, since)
        self._lock = threading.Lock()
        self.reeds = [ReedContact(d.id, d.pin, clock, self._publish, self._health,
                                  pin_factory=pin_factory, stuck_open_after=d.stuck_open_min * 60)
                      for d in doors]

    def _health(self, door_id: str, ok: bool, found: dict[str, str]) -> None:
        with self._lock:
            old = self._faults.get(door_id, {})
            now = self.clock.wall()
            self._faults[door_id] = {c: (r, old[c][1] if c in old else now) for c, r in found.items()}
            self._publish_health()

    def _publish_health(self) -> None:
        faults = [schemas.Fault(code=c, service="panel", since=since, reason=r)
                  for fs in self._faults.values() for c, (r, since) in fs.items()]
        self.bus.publish("panel/health", self.bus.make(schemas.Health, faults=faults))

    def start(self) -> PanelDoors:
        with self._lock:   # a fault retained from before a restart (or a door since removed) goes
            self._publish_health()
        for r in self.reeds:
            r.start()
        return self

    def alive(self) -> bool:
        return all(r.alive() for r in self.reeds)

    def stop(self) -> None:
        for r in self.reeds:
            r.stop()
