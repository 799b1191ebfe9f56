"""The household's `share/status`: the only thing the fleet bridge sends out until the consent
filter exists (docs/fleet.md). It reads the services' availability and health and publishes
whether the equipment works: availability per shared device, how many wearables are connected
(never whose), and fault codes (never the reason text, never which partner's device)."""
from __future__ import annotations

import threading

from mqtt import schemas
from mqtt.client import BusClient, Message

SHARED_DEVICES = ("hub", "panel", "caller")
WEARABLES = tuple(f"wearable-{p}" for p in schemas.PARTNERS)


class ShareStatusPublisher:
    """Runs as the `bridge` role; publishes a new retained status only when it changes."""

    def __init__(self, bus: BusClient):
        self.bus = bus
        self._lock = threading.Lock()
        self._available: dict[str, str] = {}
        self._faults: dict[str, frozenset[str]] = {}
        self._last: tuple[object, ...] | None = None

    def start(self) -> ShareStatusPublisher:
        self.bus.on("{service}/available", self._on_available)
        self.bus.on("{service}/health", self._on_health)
        self.bus.start()
        return self

    def stop(self) -> None:
        self.bus.stop()

    def _on_available(self, msg: Message) -> None:
        with self._lock:
            self._available[msg.topic.split("/")[0]] = str(msg.payload)
        self._publish_if_changed()

    def _on_health(self, msg: Message) -> None:
        if not isinstance(msg.payload, schemas.Health):   # the contract says Health; never crash
            return
        with self._lock:
            self._faults[msg.topic.split("/")[0]] = frozenset(f.code for f in msg.payload.faults)
        self._publish_if_changed()

    def summary(self) -> dict[str, object]:
        with self._lock:
            return {
                **{d: self._available.get(d, "unknown") for d in SHARED_DEVICES},
                "wearables_online": sum(self._available.get(w) == "online" for w in WEARABLES),
                "faults": sorted(set().union(*self._faults.values()))[:32],
            }

    def _publish_if_changed(self) -> None:
        s = self.summary()
        key = tuple(sorted((k, str(v)) for k, v in s.items()))
        with self._lock:
            if key == self._last:
                return
            self._last = key
        self.bus.publish("share/status", self.bus.make(schemas.ShareStatus, **s))
