"""The panel Pi's exit-door contact (issue 14): a reed contact on a panel GPIO (gpiozero's
MockFactory, the Pi's pull-up), read by the panel service and published with the panel's own
credentials through the real Mosquitto; the real hub hands its events to the presence fusion, so a
leaver going out through the panel's door is seen gone seconds after it. A door that reads open
too long is a fault on the panel's light; the panel's file names a bad door in one sentence."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from ble.presence import PresenceEngine, Transition
from core.clock import ManualClock
from core.config import load_config
from firmware.panel.doors import PanelDoor, PanelDoors
from firmware.panel.service import PanelConfig, PanelConfigError
from tests.conftest import wait_until
from tests.helpers.collect import Collect
from tests.test_hub_service import client, make_hub  # `home` is a fixture in conftest

TAG = "AA:BB:CC:DD:EE:01"
NEIGHBOUR = "5A:11:22:33:44:55"   # a passer-by's phone (a random private address)


def _until(clock: ManualClock, cond, timeout: float = 5.0) -> bool:
    """Let the clock run on slowly (the debounce counts on it) until `cond` holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        clock.advance(0.05)
        time.sleep(0.01)
    return cond()


@pytest.fixture
def panel_door(home, tmp_path):
    clock = ManualClock()
    hub = make_hub(home, tmp_path, clock)
    panel_bus = client(home, tmp_path, "panel")
    states = Collect(payloads=True)       # the hub's state, as the panel reads it
    panel_bus.on("state", states)
    factory = MockFactory()
    doors = PanelDoors(panel_bus, [PanelDoor(id="panel-1", pin=6, stuck_open_min=5.0)], clock,
                       pin_factory=factory)
    pin = factory.pin(6)
    pin.drive_low()   # the magnet holds the contact: the door is shut
    panel_bus.start()
    doors.start()
    try:
        assert panel_bus.wait_connected(10)
        assert _until(clock, lambda: doors.reeds[0].state == "closed")   # read shut at start
        yield clock, hub, pin, states
    finally:
        doors.stop()
        panel_bus.stop()
        hub.stop()


def test_a_leaver_through_the_panels_door_is_seen_gone_seconds_after_it(home, panel_door):
    clock, hub, pin, _ = panel_door
    engine = PresenceEngine({"a": TAG}, doors=["panel-1"])
    lock = threading.Lock()
    seen: list[Transition] = []
    doors: list[tuple[str, str]] = []

    def to_fusion(t: float, door_id: str, state: str) -> None:   # what the hub's BLE service does
        with lock:
            doors.append((door_id, state))
            seen.extend(engine.door(t, door_id, state))   # type: ignore[arg-type]
    hub.door_sink = to_fusion

    def heard(seconds: int, rssi: float | None) -> None:
        for _ in range(seconds):
            clock.advance(1.0)
            with lock:
                t = clock.monotonic()
                if rssi is not None:
                    seen.extend(engine.advert(t, TAG, rssi))
                seen.extend(engine.advert(t, NEIGHBOUR, -85))   # the radio hears the street
                seen.extend(engine.tick(t))

    heard(30, -65)                                 # at home, heard every second
    assert [(x.partner, x.presence) for x in seen] == [("a", "home")]
    pin.drive_high()                               # a walks out through the panel's door ...
    assert _until(clock, lambda: doors == [("panel-1", "open")]), doors
    heard(2, -80)                                  # ... heard on the doorstep ...
    pin.drive_low()                                # ... and shuts it
    assert _until(clock, lambda: doors == [("panel-1", "open"), ("panel-1", "closed")]), doors
    t_door = clock.monotonic()
    heard(40, None)                                # then silent
    away = [x for x in seen if x.presence == "away"]
    assert away and away[0].door, seen             # a door-confirmed departure ...
    assert away[0].t - t_door <= 30, away[0].t - t_door   # ... within seconds, not 5 minutes


def test_a_panel_door_reading_open_too_long_is_a_fault_on_the_panel_until_it_closes(panel_door):
    clock, _, pin, states = panel_door
    def door_faults():
        with states.lock:
            return [f.code for f in states[-1].faults] if states else None
    pin.drive_high()                           # left open; or the wire was cut
    assert _until(clock, lambda: door_faults() == [])
    for _ in range(6 * 60):
        clock.advance(1.0)
        time.sleep(0.002)
    assert wait_until(lambda: door_faults() == ["door.stuck.panel_1"], 5), door_faults()
    with states.lock:
        fault = states[-1].faults[0]
    assert fault.service == "panel" and "door panel-1" in fault.reason
    pin.drive_low()
    assert _until(clock, lambda: door_faults() == []), door_faults()


def test_the_panels_file_names_each_door_problem_in_one_sentence(tmp_path: Path):
    f = tmp_path / "panel.toml"
    f.write_text('household = "hh-0042"\ncredentials = "/x/panel.json"\n'
                 '[[doors]]\nid = "front"\npin = 40\n')
    with pytest.raises(PanelConfigError) as e:
        load_config(f, PanelConfig, PanelConfigError)
    text = "\n".join(f"{w}: {s}" for w, s in e.value.problems)
    assert "id 'front' is not a panel door id: use panel-1 or panel-2" in text
    assert "pin 40 is not a GPIO of the Pi's header (2-27)" in text
    f.write_text('household = "hh-0042"\ncredentials = "/x/panel.json"\n'
                 '[[doors]]\nid = "panel-2"\npin = 17\n[[doors]]\nid = "panel-2"\npin = 6\n')
    with pytest.raises(PanelConfigError) as e:
        load_config(f, PanelConfig, PanelConfigError)
    text = "\n".join(f"{w}: {s}" for w, s in e.value.problems)
    assert "door panel-2: pin 17 is already one of the panel's buttons or lights" in text
    assert "two doors have id panel-2" in text
    f.write_text('household = "hh-0042"\ncredentials = "/x/panel.json"\n'
                 '[[doors]]\nid = "panel-1"\npin = 6\n')
    assert load_config(f, PanelConfig, PanelConfigError).doors[0].id == "panel-1"

