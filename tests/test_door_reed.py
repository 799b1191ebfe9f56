"""A reed contact on a hub GPIO (gpiozero's MockFactory, the Pi's pull-up) through the real hub and
the real Mosquitto: debounced open/closed on `door/<id>` (retained) and `door/<id>/event`; a door
that reads open too long (left open, or a cut wire) is a fault on the panel; a panel-Pi door's
events reach the presence fusion; the sensors file refuses a bad door with one sentence each."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from core.clock import ManualClock
from firmware.hub.sensors import Door, SensorsError, load_sensors, start_reeds
from mqtt import schemas
from mqtt.client import Message
from tests.conftest import wait_until
from tests.helpers.collect import Collect
from tests.helpers.rawmqtt import Raw
from tests.test_hub_service import PLAN, client, make_hub  # `home` is a fixture in conftest


def _door_messages(seen: Collect, topic: str) -> list:
    with seen.lock:
        return [m.payload for m in seen if m.topic == topic]


def _advance(clock: ManualClock, seconds: float, step: float = 0.05) -> None:
    for _ in range(round(seconds / step)):
        clock.advance(step)
        time.sleep(0.002)


def _until(clock: ManualClock, cond, timeout: float = 5.0) -> bool:
    """Let the clock run on (the debounce counts on it) until `cond` holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        clock.advance(0.05)
        time.sleep(0.01)
    return cond()


@pytest.fixture
def hub_with_door(home, tmp_path):
    clock = ManualClock()
    hub = make_hub(home, tmp_path, clock)
    # what the hub hands to its bus (which sends it to the broker as usual); the hub never reads
    # its own door topics back (its bus drops its own ids), so the broker's copy is read below
    seen = Collect()
    real_publish = hub.bus.publish

    def publish(topic, payload, **kw):
        if topic.startswith("door/"):
            seen(Message(topic, payload, None, False))
        return real_publish(topic, payload, **kw)
    hub.bus.publish = publish
    factory = MockFactory()
    reeds = start_reeds(hub, [Door(id="hub-1", kind="gpio", pin=17, stuck_open_min=5.0)], clock,
                        pin_factory=factory)
    pin = factory.pin(17)
    pin.drive_low()   # the magnet holds the contact: the door is shut (before the clock moves)
    try:
        yield clock, hub, pin, seen
    finally:
        for r in reeds:
            r.stop()
        hub.stop()


def test_a_reed_contact_is_debounced_and_published_as_retained_state_and_events(home, hub_with_door):
    clock, hub, pin, seen = hub_with_door
    assert _until(clock, lambda: [p.state for p in _door_messages(seen, "door/hub-1")] == ["closed"])
    assert _door_messages(seen, "door/hub-1/event") == []          # the state at start is no movement

    pin.drive_high()                    # a rattle shorter than the debounce time: nothing
    time.sleep(0.05)
    pin.drive_low()
    _advance(clock, 0.2)
    pin.drive_high()                    # the door opens and stays open
    assert _until(clock, lambda: [p.state for p in _door_messages(seen, "door/hub-1/event")] == ["open"])
    pin.drive_low()
    assert _until(clock, lambda: [p.state for p in _door_messages(seen, "door/hub-1/event")]
                  == ["open", "closed"])
    states = _door_messages(seen, "door/hub-1")
    assert [p.state for p in states] == ["closed", "open", "closed"]
    assert all(isinstance(p, schemas.DoorState) and p.kind == "gpio" and p.battery is None for p in states)

    # what a hub restarting now reads: the retained last state
    hub.stop()
    raw = Raw(home.port, "hub", home.creds("hub").password, "hub")
    assert str(raw.wait_connack()) == "Success"
    raw.subscribe_and_ack(f"timeout/{PLAN.household}/door/#")
    assert wait_until(lambda: f"timeout/{PLAN.household}/door/hub-1" in raw.topics(), 5)
    with raw._lock:
        retained = [json.loads(p) for t, p in raw.received if t.endswith("door/hub-1")]
    raw.close()
    assert retained[-1]["state"] == "closed"


def test_a_door_reading_open_too_long_is_a_fault_on_the_panel_until_it_closes(home, hub_with_door, tmp_path):
    clock, _, pin, seen = hub_with_door
    panel = client(home, tmp_path, "panel")
    states = Collect(payloads=True)
    panel.on("state", states)
    panel.start()
    try:
        def door_faults():
            with states.lock:
                return [f.code for f in states[-1].faults] if states else None
        assert _until(clock, lambda: [p.state for p in _door_messages(seen, "door/hub-1")] == ["closed"])
        pin.drive_high()          # open; or the wire was cut: the pull-up reads the same
        assert _until(clock, lambda: len(_door_messages(seen, "door/hub-1/event")) == 1)
        assert wait_until(lambda: door_faults() == [], 5)
        _advance(clock, 5 * 60, step=1.0)
        assert wait_until(lambda: door_faults() == ["door.stuck.hub_1"], 5), door_faults()
        pin.drive_low()
        assert _until(clock, lambda: door_faults() == []), door_faults()
    finally:
        panel.stop()


def test_a_panel_door_event_reaches_the_presence_fusion(home, hub_with_door, tmp_path):
    _, hub, _, _ = hub_with_door
    got: list[tuple[str, str]] = []
    hub.door_sink = lambda t, door_id, state: got.append((door_id, state))
    panel = client(home, tmp_path, "panel")
    panel.start()
    try:
        assert panel.wait_connected(10)
        panel.publish("door/panel-1/event", panel.make(schemas.DoorEvent, state="open", kind="gpio"))
        assert wait_until(lambda: got == [("panel-1", "open")], 5), got
    finally:
        panel.stop()


def test_the_sensors_file_names_each_door_problem_in_one_sentence(tmp_path: Path):
    f = tmp_path / "sensors.toml"
    f.write_text('''
[[doors]]
id = "front"
kind = "gpio"
pin = 40

[[doors]]
id = "hub-2"
kind = "bthome"
mac = "3C:2E:F5:00:AB"
bind_key = "1234"
pin = 17

[[doors]]
id = "hub-3"
kind = "gpio"
''')
    with pytest.raises(SensorsError) as e:
        load_sensors(f)
    problems = e.value.problems
    assert ("doors[1]", "id 'front' is not a hub door id: use hub-1, hub-2 or hub-3") in problems
    text = "\n".join(f"{w}: {s}" for w, s in problems)
    assert "pin 40 is not a GPIO" in text
    assert "doors[2]: a bthome door needs mac" in text
    assert "doors[2]: a bthome door needs bind_key" in text
    assert "doors[2]: pin belongs to a gpio door" in text
    assert "doors[3]: a gpio door needs pin" in text
    f.write_text('[[doors]]\nid = "hub-1"\nkind = "bthome"\nmac = "3C:2E:F5:00:AB:CD"\n'
                 'bind_key = "231d39c1d7cc1ab1aee224cd096db932"\n')
    assert load_sensors(f).doors[0].kind == "bthome"
