"""The hub's own sensors, microphone (dsp/) and BLE tags (ble/), wired to the Hub.

Their hardware settings live in a small TOML file of the installer's (`examples/sensors.toml`),
apart from the household plan: the plan holds agreements, this holds which microphone and adapter.
Either sensor failing never stops the hub: its fault goes on the panel and it keeps retrying.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

from pydantic import Field

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


class Sensors(_Strict):
    microphone: Microphone = Microphone()
    ble: Bluetooth = Bluetooth()


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


def start_presence(hub, plan: HouseholdPlan, cfg: Bluetooth, clock: Clock,
                   backend=None, backend_kwargs: dict | None = None):
    """BLE tags -> home/away/unknown per partner -> hub.presence; scanner faults -> the panel."""
    from ble.service import PresenceService

    tags = {p: list(pp.tags) for p, pp in plan.partners.items() if pp.tags}
    if not tags:
        return None
    kw = dict(backend_kwargs or {})
    if backend is None:
        kw.setdefault("adapter", cfg.adapter)
    return PresenceService(tags, clock, on_presence=hub.presence,
                           on_faults=lambda fs: hub.sensor_faults("ble", fs),
                           # the wearable saying "not apart" is evidence the partner is around
                           expected_home=lambda p: hub.proc.apart(p) is False,
                           backend=backend, backend_kwargs=kw).start()


def start_all(hub, plan: HouseholdPlan, sensors: Sensors, clock: Clock, state_dir: Path) -> list:
    """Start what the sensors file enables; returns the running services (each has stop())."""
    starters: list[tuple[str, str, Callable[[], object]]] = []
    if sensors.microphone.enabled:
        starters.append(("mic", "microphone", lambda: start_sound(hub, sensors.microphone, clock, state_dir)))
    if sensors.ble.enabled:
        starters.append(("ble", "Bluetooth", lambda: start_presence(hub, plan, sensors.ble, clock)))
    hub.expect_sensors(*(source for source, _, _ in starters))
    running = []
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
    return running
