"""Door states and events onto the bus: `door/<id>` retained (the last state, with its battery)
and `door/<id>/event` when it opened or closed. Used by the service that owns the sensor."""
from __future__ import annotations

import threading
from datetime import datetime

from mqtt import schemas
from mqtt.client import BusClient


class DoorPublisher:
    def __init__(self, bus: BusClient, kinds: dict[str, schemas.DoorKind]):
        self.bus = bus
        self.kinds = kinds
        self._since: dict[str, tuple[str, datetime]] = {}
        self._lock = threading.Lock()

    def __call__(self, door_id: str, state: str, battery: int | None, event: bool) -> None:
        kind = self.kinds[door_id]
        with self._lock:
            ts = schemas.now_utc() if self.bus.clock is None else self.bus.clock()
            last = self._since.get(door_id)
            since = last[1] if last is not None and last[0] == state else ts
            self._since[door_id] = (state, since)
            if event and state in ("open", "closed"):
                self.bus.publish(f"door/{door_id}/event", self.bus.make(
                    schemas.DoorEvent, state=state, kind=kind, ts=ts))
            self.bus.publish(f"door/{door_id}", self.bus.make(
                schemas.DoorState, state=state, since=since, kind=kind, battery=battery, ts=ts))
