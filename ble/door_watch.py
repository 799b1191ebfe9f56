"""The state and health of one BTHome door sensor, from the adverts `ble.bthome` accepted or
refused and from the time since the last accepted one. Pure: the presence service feeds it on its
thread and publishes what it returns.

Health (False: presence must not rely on this door, the tags alone decide):
- silent: no accepted advert for `silent_after` seconds (battery gone, sensor removed or moved out
  of range, or only forged adverts heard) -> fault `door.silent.<id>`, state `unknown`;
- battery at or below `dead_pct` -> fault `door.battery_dead.<id>`; at or below `low_pct` ->
  `door.battery_low.<id>` (still healthy: it still reports, replace it soon);
- adverts from the sensor's address that do not decrypt while no good one came for
  `silent_after` -> `door.bind_key.<id>` (the installer typed the wrong key). A neighbour sending
  forged adverts while the real sensor works raises nothing: only refusals in the log.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ble.bthome import Reading, Refusal

DoorStateName = Literal["open", "closed", "unknown"]


@dataclass(frozen=True)
class DoorConfig:
    silent_after: float = 3 * 3600.0   # the sensor's own heartbeat is far shorter: hours is a fault
    low_pct: int = 20
    dead_pct: int = 5


@dataclass
class Change:
    """What one step changed: a new state to publish (event: it opened or closed), new health."""
    state: DoorStateName | None = None
    event: bool = False
    battery_changed: bool = False
    healthy: bool | None = None
    faults: dict[str, str] = field(default_factory=dict)   # the door's current faults, when changed
    faults_changed: bool = False


class DoorWatch:
    def __init__(self, door_id: str, now: float, cfg: DoorConfig | None = None):
        self.door_id = door_id
        self.cfg = cfg or DoorConfig()
        self.state: DoorStateName = "unknown"
        self.battery: int | None = None
        self.last_heard = now        # counts from start: a sensor never heard is silent after it
        self.heard = False
        self.healthy = True
        self._faults: dict[str, str] = {}
        self._bad_key = False

    @property
    def code_id(self) -> str:
        return self.door_id.replace("-", "_")   # fault codes allow no '-'

    def faults(self) -> dict[str, str]:
        return dict(self._faults)

    def accepted(self, t: float, r: Reading) -> Change:
        ch = Change()
        self.last_heard, self.heard, self._bad_key = t, True, False
        if r.battery is not None and r.battery != self.battery:
            self.battery, ch.battery_changed = r.battery, True
        new: DoorStateName | None = None if r.open is None else ("open" if r.open else "closed")
        if new is not None and new != self.state:
            # after a start or a silence the first state is news, not a door movement
            ch.event = self.state != "unknown"
            self.state = ch.state = new
        self._update(t, ch)
        return ch

    def refused(self, t: float, r: Refusal) -> Change:
        ch = Change()
        if r.kind == "bad_key" and (not self.heard or t - self.last_heard >= self.cfg.silent_after):
            self._bad_key = True
        self._update(t, ch)
        return ch

    def tick(self, t: float) -> Change:
        ch = Change()
        self._update(t, ch)
        return ch

    def _update(self, t: float, ch: Change) -> None:
        c, want = self.code_id, {}
        silent = t - self.last_heard >= self.cfg.silent_after
        if silent:
            want[f"door.silent.{c}"] = (f"door {self.door_id} has sent nothing the hub could check "
                                        f"for {self.cfg.silent_after / 3600:.0f} h")
        if self._bad_key:
            want[f"door.bind_key.{c}"] = (f"adverts of door {self.door_id} do not decrypt with its "
                                          "bind key in sensors.toml")
        dead = self.battery is not None and self.battery <= self.cfg.dead_pct
        if dead:
            want[f"door.battery_dead.{c}"] = f"door {self.door_id} battery at {self.battery} %"
        elif self.battery is not None and self.battery <= self.cfg.low_pct:
            want[f"door.battery_low.{c}"] = f"door {self.door_id} battery at {self.battery} %"
        if want.keys() != self._faults.keys():
            self._faults, ch.faults_changed = want, True
        ch.faults = dict(self._faults)
        healthy = not silent and not dead and not self._bad_key
        if healthy != self.healthy:
            self.healthy = ch.healthy = healthy
        if silent and self.state != "unknown":
            self.state = ch.state = "unknown"   # no longer known; not a door movement
            ch.event = False
