"""The hub's own sensors, microphone (dsp/), BLE tags (ble/) and exit doors (a BTHome sensor heard
by the BLE scanner, a reed contact on a hub GPIO: docs/ble.md, "Door sensors"), wired to the Hub.

Their hardware settings live in a small TOML file of the installer's (`examples/sensors.toml`),
apart from the household plan: the plan holds agreements, this holds which microphone and adapter.
Either sensor failing never stops the hub: its fault goes on the panel and it keeps retrying.
"""
from __future__ import annotations

import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from core.clock import Clock
from core.config import StrictConfig, load_config
from core.errors import ConfigError
from firmware.hub.plan import HouseholdPlan
from mqtt import schemas

log = logging.getLogger(__name__)
BASELINE_FILE = "sound_baseline.json"


class SensorsError(ConfigError):
    """The sensors file is not valid."""


_Strict = StrictConfig


class Microphone(_Strict):
    enabled: bool = True
    device: str | Annotated[int, Field(ge=0)] | None = Field(
        None, description="input device: part of its name (e.g. \"USB\") or its index; "
                          "none = the system default. `python -m dsp.capture --list` shows them")
    rate: int = Field(16000, description="sample rate: 16000, 44100 or 48000")
    calibration_offset_db: float | None = Field(
        None, ge=60, le=200, description="dB SPL minus dBFS, from `timeout-hub calibrate "
                                         "--reference-db 94`; without it levels are dBFS")


class Bluetooth(_Strict):
    enabled: bool = True
    adapter: str = Field("hci0", pattern=r"^hci\d{1,2}$")


_MAC = re.compile(r"^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$")
_KEY = re.compile(r"^[0-9A-Fa-f]{32}$")


class Door(_Strict):
    """An exit door's sensor owned by the hub (a panel-Pi contact is in the panel's file)."""
    id: str = Field(description="`hub-1` .. `hub-3`: the door's topic `door/<id>` (docs/mqtt.md)")
    kind: Literal["gpio", "bthome"] = Field(description="`gpio`: a reed contact on a hub GPIO; "
                                            "`bthome`: a BTHome v2 BLE sensor (Shelly BLU Door/Window)")
    pin: int | None = Field(None, description="gpio: the BCM GPIO number the contact is wired to "
                                              "(the other wire to ground)")
    mac: str | None = Field(None, description="bthome: the sensor's Bluetooth address AA:BB:CC:DD:EE:FF")
    bind_key: str | None = Field(None, description="bthome: the sensor's encryption key, 32 hex "
                                 "digits (set in the sensor's app; plain adverts are refused)")
    silent_after_h: float = Field(3.0, gt=0, le=48, description="bthome: a fault after this many "
                                  "hours without a checked advert")
    stuck_open_min: float = Field(60.0, ge=5, le=1440, description="gpio: a fault after the door "
                                  "reads open this long (left open, or a cut wire)")

    @model_validator(mode="after")
    def _kind_fields(self) -> Door:
        # all in one check, so every problem of a door is named at once
        problems = []
        if not re.fullmatch(r"hub-[1-3]", self.id):
            problems.append(f"id {self.id!r} is not a hub door id: use hub-1, hub-2 or hub-3")
        if self.kind == "gpio":
            if self.pin is None:
                problems.append("a gpio door needs pin = the BCM GPIO number of its contact")
            elif not 2 <= self.pin <= 27:
                problems.append(f"pin {self.pin} is not a GPIO of the Pi's header (2-27)")
            if self.mac is not None or self.bind_key is not None:
                problems.append("mac and bind_key belong to a bthome door, not a gpio one")
        else:
            if self.mac is None or not _MAC.match(self.mac):
                problems.append("a bthome door needs mac = its Bluetooth address like AA:BB:CC:DD:EE:FF")
            if self.bind_key is None or not _KEY.match(self.bind_key):
                problems.append("a bthome door needs bind_key = its encryption key, 32 hex digits "
                                "(0-9, a-f); an unencrypted sensor could be faked by a neighbour")
            if self.pin is not None:
                problems.append("pin belongs to a gpio door, not a bthome one")
        if problems:
            raise ValueError("\n".join(problems))
        return self


class Sensors(_Strict):
    microphone: Microphone = Microphone()
    ble: Bluetooth = Bluetooth()
    doors: list[Door] = Field(default_factory=list, max_length=3)

    @model_validator(mode="after")
    def _distinct_doors(self) -> Sensors:
        problems = []
        for what, values in (("id", [d.id for d in self.doors]),
                             ("pin", [d.pin for d in self.doors if d.pin is not None]),
                             ("mac", [d.mac.upper() for d in self.doors if d.mac])):
            problems += [f"two doors have {what} {v}" for v in sorted({v for v in values
                                                                        if values.count(v) > 1})]
        if any(d.kind == "bthome" for d in self.doors) and not self.ble.enabled:
            problems.append("a bthome door is heard by the hub's Bluetooth: set ble.enabled = true")
        if problems:
            raise ValueError("\n".join(problems))
        return self


def load_sensors(path: Path | None) -> Sensors:
    if path is None:
        return Sensors()
    s = load_config(path, Sensors, SensorsError)
    if s.microphone.rate not in (16000, 44100, 48000):
        raise SensorsError([("microphone.rate", f"{s.microphone.rate} is not 16000, 44100 or 48000")],
                           str(path))
    return s


def fault(clock: Clock, code: str, reason: str) -> schemas.Fault:
    return schemas.Fault(code=code, service="hub", since=clock.wall(), reason=reason)


def start_sound(hub, cfg: Microphone, clock: Clock, state_dir: Path, source=None):
    """Microphone -> SoundPipeline -> hub.sound_frame; mic faults -> the panel."""
    from dsp.pipeline import SoundPipeline
    from dsp.service import SoundService, load_baseline

    def on_fault(code: str | None, reason: str) -> None:
        hub.sensor_faults("mic", [] if code is None else [fault(clock, code, reason)])

    if source is None:
        from dsp.capture import AudioCapture
        source = AudioCapture(device=cfg.device, rate=cfg.rate, on_fault=on_fault)
    path = Path(state_dir) / BASELINE_FILE
    pipeline = SoundPipeline(source.rate, calibration_offset_db=cfg.calibration_offset_db,
                             baseline=load_baseline(path))
    return SoundService(source, pipeline, hub.sound_frame, baseline_path=path).start()


def door_publisher(hub, doors: list[Door]) -> Any:
    from firmware.doors.publish import DoorPublisher
    return DoorPublisher(hub.bus, {d.id: d.kind for d in doors})


def _wearable_around(hub, p: str) -> bool:
    watch = getattr(hub, "wearable_watch", None)     # set by firmware/hub/service.py
    return watch is not None and watch.around(p)


def start_presence(hub, plan: HouseholdPlan, cfg: Bluetooth, clock: Clock,
                   backend=None, backend_kwargs: dict | None = None, doors: list[Door] | None = None):
    """BLE tags -> home/away/unknown per partner -> hub.presence; scanner faults -> the panel;
    BTHome doors -> `door/<id>` on the bus and the fusion; their faults -> the panel."""
    from ble.bthome import BTHomeDoor
    from ble.door_watch import DoorConfig
    from ble.service import PresenceService

    tags = {p: list(pp.tags) for p, pp in plan.partners.items() if pp.tags}
    ble_doors = [d for d in doors or [] if d.kind == "bthome"]
    if not tags and not ble_doors:
        return None
    kw = dict(backend_kwargs or {})
    if backend is None:
        kw.setdefault("adapter", cfg.adapter)
    return PresenceService(tags, clock, on_presence=hub.presence,
                           on_faults=lambda fs: hub.sensor_faults("ble", fs),
                           # the wearable saying "not apart", or heartbeating over the home
                           # link, is evidence the partner is around (like another tag heard)
                           expected_home=lambda p: hub.proc.apart(p) is False or _wearable_around(hub, p),
                           backend=backend, backend_kwargs=kw,
                           doors=[BTHomeDoor(d.id, d.mac or "", bytes.fromhex(d.bind_key or ""))
                                  for d in ble_doors],
                           door_config={d.id: DoorConfig(silent_after=d.silent_after_h * 3600)
                                        for d in ble_doors},
                           on_door=door_publisher(hub, ble_doors) if ble_doors else None,
                           on_door_faults=lambda fs: hub.sensor_faults("door", fs)).start()


def start_reeds(hub, doors: list[Door], clock: Clock, presence=None, pin_factory=None) -> list:
    """Reed contacts on the hub's GPIOs -> `door/<id>` on the bus and the fusion (`presence`, the
    PresenceService, when BLE runs); a door reading open too long -> a fault on the panel."""
    from firmware.doors.reed import ReedContact

    wired = [d for d in doors if d.kind == "gpio"]
    publish = door_publisher(hub, wired)
    faults: dict[str, dict[str, str]] = {}

    def on_door(door_id: str, state: str, battery: int | None, event: bool) -> None:
        publish(door_id, state, battery, event)
        if event and presence is not None:
            presence.door(clock.monotonic(), door_id, state)

    def on_health(door_id: str, ok: bool, found: dict[str, str]) -> None:
        faults[door_id] = found
        hub.sensor_faults("door-wired", [fault(clock, c, r) for fs in faults.values()
                                         for c, r in fs.items()])
        if presence is not None:
            presence.door_health(clock.monotonic(), door_id, ok)

    return [ReedContact(d.id, d.pin if d.pin is not None else -1, clock, on_door, on_health,
                        pin_factory=pin_factory, stuck_open_after=d.stuck_open_min * 60).start()
            for d in wired]


def start_all(hub, plan: HouseholdPlan, sensors: Sensors, clock: Clock, state_dir: Path) -> list:
    """Start what the sensors file enables; returns the running services (each has stop())."""
    starters: list[tuple[str, str, Callable[[], object]]] = []
    if sensors.microphone.enabled:
        starters.append(("mic", "microphone", lambda: start_sound(hub, sensors.microphone, clock, state_dir)))
    if sensors.ble.enabled:
        starters.append(("ble", "Bluetooth", lambda: start_presence(hub, plan, sensors.ble, clock,
                                                                    doors=sensors.doors)))
    hub.expect_sensors(*(source for source, _, _ in starters))
    running: list[Any] = []
    for source, name, start in starters:
        try:
            svc = start()
        except Exception as e:   # the procedure must run without a sensor (the panel shows why)
            log.exception("%s could not start", name)
            hub.sensor_faults(source, [fault(clock, f"{source}.start_failed",
                                             f"{name} could not start: {type(e).__name__}")])
            continue
        if svc is not None:
            running.append(svc)
    if any(d.kind == "gpio" for d in sensors.doors):
        from ble.service import PresenceService
        presence = next((r for r in running if isinstance(r, PresenceService)), None)
        hub.expect_sensors("door-wired")
        try:
            running += start_reeds(hub, sensors.doors, clock, presence)
        except Exception as e:   # gpiozero without a pin factory, the pin in use: a fault
            log.exception("door contact could not start")
            hub.sensor_faults("door-wired", [fault(clock, "door.start_failed",
                                                   f"door contact could not start: {type(e).__name__}")])
    if any(d.kind == "bthome" for d in sensors.doors):
        hub.expect_sensors("door")
    if presence_for_panel := next((r for r in running if hasattr(r, "door_health")), None):
        attach_panel(hub, presence_for_panel)
    return running


def attach_panel(hub, presence) -> None:
    """What the panel's Pi sends, heard on the bus, to the BLE presence service: its door
    contacts' events, its `panel/tags_heard` summaries, and (by its availability) whether its
    radio and doors count."""
    hub.door_sink = presence.door
    hub.attach_receivers(presence)
