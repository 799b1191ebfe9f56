"""The panel's Pi as a second BLE receiver (issue 14), through the real Mosquitto: the panel scans
with the real `BleakScanner` (the replay backend, bleak's own backend seam) and sends
`panel/tags_heard`; the real hub hands the summaries to its BLE presence service (also the real
scanner on a replay backend) and the door fusion. The panel's door is a reed contact on gpiozero's
MockFactory. A leaver the hub still hears faintly through the wall is seen gone once the panel has
lost the tag; the panel going offline makes its door and its radio stop counting at the hub; odd
summaries are dropped with a reason; the panel's tags file must be private."""
from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from ble.service import PresenceService
from core.clock import ManualClock
from firmware.hub.sensors import Bluetooth, attach_panel, start_presence
from firmware.hub.service import Hub
from firmware.panel.doors import PanelDoor, PanelDoors
from firmware.panel.tags_heard import PanelTagsError, TagsHeardService, load_tags
from mqtt import contract, schemas
from mqtt.client import BusClient
from sim.ble_replay import ReplayScanner, ReplaySource
from tests.conftest import wait_until
from tests.helpers.collect import Collect
from tests.helpers.rawmqtt import Raw
from tests.test_hub_service import PLAN, make_hub

TAG = "C4:7C:8D:6A:12:01"          # partner a's tag in examples/household.toml
NEIGHBOUR = "5A:11:22:33:44:55"    # a passer-by's phone, heard by both radios
DOOR_AT = 60                       # seconds after the start: a walks out
END = 600


def _hub_adverts(faint_from: float | None) -> Iterator[tuple]:
    """The hub's radio: a's tag every second at a room's level, through the wall (-95 dBm) once
    she is outside; the street's phone too."""
    for t in range(END):
        rssi = -95 if faint_from is not None and t >= faint_from else -68
        yield (float(t), TAG, rssi, {}, {})
        yield (t + 0.5, NEIGHBOUR, -88, {}, {})


def _panel_adverts(lost_from: float | None) -> Iterator[tuple]:
    """The panel's radio: a's tag until she goes to the door (the panel is the far side of the
    home), the street's phone always (so its scan never stalls)."""
    for t in range(END):
        if lost_from is None or t < lost_from:
            yield (t + 0.2, TAG, -74, {}, {})
        yield (t + 0.7, NEIGHBOUR, -90, {}, {})


def _advance(clock: ManualClock, seconds: float, step: float = 0.5, until=None) -> bool:
    for _ in range(int(seconds / step)):
        if until is not None and until():
            return True
        clock.advance(step)
        time.sleep(0.01)
    return until() if until is not None else True


@dataclass
class Rig:
    clock: ManualClock
    hub: Hub
    presence: PresenceService
    panel_bus: BusClient
    doors: PanelDoors
    heard: TagsHeardService
    pin: object
    states: Collect
    sent: list
    panel_src: ReplaySource


def _panel_bus(home, tmp_path: Path, clock: ManualClock) -> BusClient:
    return BusClient("panel", PLAN.household, home.creds("panel"), port=home.port,
                     state_dir=tmp_path / "panel", reconnect_min=0.1, reconnect_max=0.5, clock=clock.wall)


@pytest.fixture
def rig(home, tmp_path, request) -> Iterator[Rig]:
    leaves = getattr(request, "param", False)
    clock = ManualClock()
    hub = make_hub(home, tmp_path, clock)
    hub_src = ReplaySource(_hub_adverts(DOOR_AT if leaves else None), clock)
    presence = start_presence(hub, PLAN, Bluetooth(), clock, backend=ReplayScanner,
                              backend_kwargs={"source": hub_src})
    attach_panel(hub, presence)                  # what start_all does when BLE runs on the hub
    states = Collect(payloads=True)
    panel_bus = _panel_bus(home, tmp_path, clock)
    panel_bus.on("state", states)
    factory = MockFactory()
    doors = PanelDoors(panel_bus, [PanelDoor(id="panel-1", pin=6)], clock, pin_factory=factory)
    pin = factory.pin(6)
    pin.drive_low()                              # the door is shut
    panel_src = ReplaySource(_panel_adverts(DOOR_AT - 1 if leaves else None), clock)
    sent: list[schemas.TagsHeard] = []
    heard = TagsHeardService(panel_bus, {"a": [TAG]}, clock, backend=ReplayScanner,
                             backend_kwargs={"source": panel_src}, on_summary=sent.append)
    panel_bus.start()
    doors.start()
    heard.start()
    try:
        assert panel_bus.wait_connected(10) and hub.bus.wait_subscribed(10)
        # a is home, heard by both radios; the panel's door counts at the hub
        assert _advance(clock, 40, until=lambda: presence.presence()["a"] == "home"
                        and presence.engine.door_fused()
                        and "panel" in presence.engine.fusion.rx_seen), presence.presence()
        yield Rig(clock, hub, presence, panel_bus, doors, heard, pin, states, sent, panel_src)
    finally:
        heard.stop()
        doors.stop()
        panel_bus.stop()
        presence.stop()
        hub.stop()


def _door_events(rig: Rig) -> int:
    return len(rig.presence.engine.fusion.events)


@pytest.mark.parametrize("rig", [True], indirect=True)
def test_a_leaver_the_hub_still_hears_through_the_wall_is_gone_once_the_panel_lost_her(rig):
    clock, presence = rig.clock, rig.presence
    _advance(clock, rig.panel_src.origin + DOOR_AT - clock.monotonic())   # the sources' time
    rig.pin.drive_high()                         # a opens the panel's door ...
    assert _advance(clock, 10, step=0.05, until=lambda: _door_events(rig) >= 1)
    _advance(clock, 2.0)
    rig.pin.drive_low()                          # ... and shuts it behind her
    assert _advance(clock, 10, step=0.05, until=lambda: _door_events(rig) >= 2)
    t_door = clock.monotonic()
    # the hub hears her tag all along, faintly (a reflection): alone it would keep her home
    assert _advance(clock, 60, until=lambda: presence.presence()["a"] == "away"), presence.presence()
    assert clock.monotonic() - t_door <= 40, clock.monotonic() - t_door   # seconds, not minutes
    assert presence.engine.door_fused()
    # what crossed the bus: partner a only, never an address, also while she was out (empty)
    assert rig.sent and {h.partner for m in rig.sent for h in m.heard} == {"a"}
    assert all(TAG not in m.model_dump_json() and NEIGHBOUR not in m.model_dump_json() for m in rig.sent)
    assert rig.sent[-1].scanning and rig.sent[-1].heard == []


def test_the_panel_offline_makes_its_door_and_radio_stop_counting_until_it_is_back(rig, home, tmp_path):
    presence, hub = rig.presence, rig.hub
    offline = lambda: ("service.offline", "panel") in {(f.code, f.service) for f in hub.faults()}
    rig.heard.stop()
    rig.doors.stop()
    rig.panel_bus.kill()                         # the panel's Pi loses power: its last will
    assert wait_until(offline, 10)               # the hub's health shows it ...
    assert wait_until(lambda: not presence.engine.door_fused(), 10)   # ... its door is failed ...
    assert "panel" not in presence.engine.fusion.rx_seen              # ... its radio gone
    assert presence.presence()["a"] == "home"    # the hub's own radio decides: she is home
    panel = _panel_bus(home, tmp_path / "again", rig.clock)
    panel.start()                                # the panel is back (its door still shut)
    try:
        assert wait_until(lambda: presence.engine.door_fused(), 10)
        assert wait_until(lambda: not offline(), 10)
    finally:
        panel.stop()


def test_a_panel_whose_bluetooth_stops_says_so_and_runs_on(rig, caplog):
    said = "the panel's Bluetooth is not scanning; departures rest on the hub's own radio"
    rig.panel_src.remove_adapter()               # the panel's adapter is gone (USB, BlueZ)
    assert _advance(rig.clock, 150, step=1.0, until=lambda: said in caplog.text)   # at the hub
    assert "the panel's Bluetooth is down (BleakError: adapter 'hci0' not found)" in caplog.text  # panel
    assert rig.heard.alive() and not rig.sent[-1].scanning and rig.sent[-1].heard == []
    assert rig.presence.presence()["a"] == "home"
    assert "Traceback" not in caplog.text
    # the panel's light says so (a fault the household's guide explains), and clears
    assert "ble.panel_radio" in [f.code for f in rig.hub.faults()]
    rig.panel_src.restore_adapter()
    assert _advance(rig.clock, 150, step=1.0, until=lambda: rig.sent[-1].scanning and rig.sent[-1].heard)
    assert wait_until(lambda: "ble.panel_radio" not in [f.code for f in rig.hub.faults()], 10)


class _Sink:
    """Records what the hub hands on (the filtering here is the hub's, under test)."""

    def __init__(self):
        self.summaries: list[schemas.TagsHeard] = []

    def summary(self, t, receiver, msg):
        self.summaries.append(msg)

    def receiver_gone(self, receiver):
        pass

    def door_health(self, t, door_id, ok):
        pass


def test_malformed_stale_and_odd_summaries_are_dropped_with_a_reason(home, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    clock = ManualClock()
    hub = make_hub(home, tmp_path, clock)
    sink = _Sink()
    hub.attach_receivers(sink)
    raw = Raw(home.port, "panel", home.creds("panel").password, "probe-panel")
    panel = _panel_bus(home, tmp_path, clock)
    try:
        assert hub.bus.wait_subscribed(10)
        raw.wait_connack()     # as the panel (its password), not through its wrapper: a broken one
        raw.c.publish(contract.prefix(PLAN.household) + "panel/tags_heard",
                      b'{"v": 1, "id": "x", "heard": "everyone"}')
        assert wait_until(lambda: "dropped message on panel/tags_heard: invalid TagsHeard" in caplog.text, 10)
        raw.close()
        panel.start()
        assert panel.wait_connected(10)
        a = schemas.TagHeard(partner="a", ago_s=0.5, rssi=-70, adverts=2)
        panel.publish("panel/tags_heard", schemas.TagsHeard(
            ts=clock.wall() - timedelta(seconds=90), window_s=2.0, scanning=True, heard=[a]))
        panel.publish("panel/tags_heard", panel.make(schemas.TagsHeard, window_s=2.0, scanning=True,
                                                     heard=[a, a]))
        good = panel.make(schemas.TagsHeard, window_s=2.0, scanning=True, heard=[a])
        panel.publish("panel/tags_heard", good)
        assert wait_until(lambda: sink.summaries, 10)     # the good one, after the others
        assert [m.id for m in sink.summaries] == [good.id]
        text = caplog.text
        assert "panel/tags_heard dropped: it was made 90 s ago by the hub's clock" in text
        assert "panel/tags_heard dropped: it names a partner twice" in text
        assert "Traceback" not in text
    finally:
        raw.close()
        panel.stop()
        hub.stop()


def test_the_panels_tags_file_must_be_private_and_name_real_tags(tmp_path):
    f = tmp_path / "panel-tags.toml"
    f.write_text(f'[tags]\na = ["{TAG}"]\nb = ["ibeacon:E2C56DB5-DFFB-48D2-B060-D0F5A71096E0:1:2"]\n')
    os.chmod(f, 0o644)
    with pytest.raises(PanelTagsError) as e:
        load_tags(f)
    assert "is readable by other users (mode 0644): it holds the tags' keys; make it 0600" in str(e.value)
    os.chmod(f, 0o600)
    assert load_tags(f) == {"a": [TAG], "b": ["ibeacon:E2C56DB5-DFFB-48D2-B060-D0F5A71096E0:1:2"]}
    f.write_text('[tags]\na = ["my phone"]\n')
    with pytest.raises(PanelTagsError) as e:
        load_tags(f)
    assert "tags.a[1]" in str(e.value) and "is not a MAC address" in str(e.value)
