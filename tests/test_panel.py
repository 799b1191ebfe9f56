"""The panel with gpiozero's own MockFactory against the real broker: its lights for every phase,
long and short presses, bounce and noise, a press while the hub is away, and what it may publish."""
from __future__ import annotations

import time
import uuid

import pytest
from gpiozero.pins.mock import MockFactory

from firmware.panel.service import FAULT_PATTERNS, Panel, PanelPins, draw
from mqtt import schemas
from tests.conftest import HOUSEHOLD, wait_until
from tests.helpers.collect import Collect
from tests.helpers.rawmqtt import Raw

PINS = PanelPins()
HOLD = 2.0


@pytest.fixture
def rig(broker, bus):
    """A hub-side client that publishes state/availability and collects the panel's inputs."""
    hub = bus("hub")
    presses, answers = Collect(payloads=True), Collect(payloads=True)
    hub.on("panel/press", presses)
    hub.on("panel/answer", answers)
    assert hub.wait_subscribed(5)
    factory = MockFactory()
    panel_bus = bus("panel", start=False)
    panel = Panel(panel_bus, PINS, long_press_s=HOLD, bounce_s=0.03, pin_factory=factory)
    panel_bus.start()
    assert panel_bus.wait_subscribed(5)

    class Rig:
        pass
    r = Rig()
    r.hub, r.panel, r.factory, r.presses, r.answers = hub, panel, factory, presses, answers
    r.pin = factory.pin
    r.hub_creds, r.port = broker.creds("hub"), broker.port
    yield r
    panel.close()


def publish_state(hub, **fields):
    fields.setdefault("phase", "monitoring")
    fields.setdefault("since", schemas.now_utc())
    fields.setdefault("sensing", "on")
    hub.publish("state", schemas.State(**fields))


def online(r):
    r.hub._client.publish(f"timeout/{HOUSEHOLD}/hub/available", "online", qos=1, retain=True)


def lit(r, pin) -> bool:
    return r.pin(pin).state is True or r.pin(pin).state == 1


def bar_count(r) -> int:
    return sum(lit(r, p) for p in PINS.bar)


def blinking(r, pin, seconds=6.0) -> bool:
    """The light goes on and off by itself: three changes within `seconds`, as the mock pin
    recorded them (not as this thread happened to sample them, which a loaded machine delays)."""
    p = r.pin(pin)
    p.clear_states()
    return wait_until(lambda: len(p.states) >= 4, seconds)


def phases(p, n_on: int, n_off: int, timeout: float = 15.0) -> tuple[list, list]:
    """How long a blinking mock pin stayed on and off: at least n_on whole on-phases and n_off
    whole off-phases, timed by the pin as the blink thread switched it (MockPin.states holds each
    change with the time the state before it lasted; the first change after clear_states() ends
    a phase that began before it, so it is left out)."""
    p.clear_states()

    def whole():
        st = list(p.states)
        durations = [(st[i - 1].state, st[i].timestamp) for i in range(2, len(st))]
        return ([d for on, d in durations if on], [d for on, d in durations if not on])
    assert wait_until(lambda: len(whole()[0]) >= n_on and len(whole()[1]) >= n_off, timeout)
    return whole()


def median(xs: list) -> float:
    return sorted(xs)[len(xs) // 2]


@pytest.mark.parametrize("phase, active", [("monitoring", False), ("suggestion", False),
                                           ("leaving", True), ("timeout", True),
                                           ("checkin", True), ("extended", True),
                                           ("evaluation", False)])
def test_lights_for_every_phase(rig, phase, active):
    online(rig)
    q = schemas.OpenQuestion(id=uuid.uuid4(), kind="checkin", key="checkin.how_do_you_feel",
                             options=3) if phase in ("checkin", "evaluation") else None
    drawn = []                                  # the phase of each finished render
    rig.panel.on_render = lambda p: drawn.append(p.state.phase if p.state else None)
    publish_state(rig.hub, phase=phase, thermometer=6, suggestion=phase == "suggestion",
                  question=q)
    assert wait_until(lambda: phase in drawn, 5)
    assert lit(rig, PINS.sensing_led)
    assert lit(rig, PINS.active_led) == active
    assert bar_count(rig) == round(6 * len(PINS.bar) / 10)
    assert lit(rig, PINS.question_led) == (q is not None)
    assert not lit(rig, PINS.fault_led)
    if phase == "suggestion":
        assert blinking(rig, PINS.suggestion_led)
    else:
        assert not lit(rig, PINS.suggestion_led)


def test_a_press_before_the_hub_was_ever_seen_is_shown_and_kept(rig):
    """No state has ever arrived (a panel started before the hub): pressing the button must
    still light it and keep the press, not fail while drawing the bar (make bench found it)."""
    assert rig.panel.state is None and rig.panel.offline
    errors = []
    rig.panel.on_render = lambda p: errors.append(None)   # a render that completes
    rig.pin(PINS.timeout_button).drive_low()
    assert wait_until(lambda: errors, 3)                   # the press rendered without raising
    assert lit(rig, PINS.timeout_led)                       # the button's own light: held
    assert bar_count(rig) == 0
    rig.pin(PINS.timeout_button).drive_high()


def test_hub_offline_is_shown_and_a_long_press_is_kept_until_the_hub_has_it(rig, tmp_path):
    online(rig)
    publish_state(rig.hub, phase="monitoring", thermometer=3)
    assert wait_until(lambda: not rig.panel.offline, 5)
    drawn = []                                           # offline or not, per finished render
    rig.panel.on_render = lambda p: drawn.append(p.offline)
    rig.hub.kill()                                       # the hub vanishes: last will "offline"
    assert wait_until(lambda: True in drawn, 5)
    assert not lit(rig, PINS.sensing_led) and bar_count(rig) == 0
    assert blinking(rig, PINS.fault_led)
    assert rig.panel.fault_pattern() == "hub_offline"
    rig.pin(PINS.timeout_button).drive_low()             # held until the long press is made
    assert wait_until(lambda: rig.panel.waiting, HOLD + 10)
    rig.pin(PINS.timeout_button).drive_high()
    assert blinking(rig, PINS.timeout_led), "the button light must show it is waiting"
    # the hub returns (same session) and finds the press waiting for it
    from mqtt.client import BusClient
    got = Collect(payloads=True)
    hub = BusClient("hub", HOUSEHOLD, rig.hub_creds, port=rig.port, state_dir=tmp_path / "hub")
    hub.on("panel/press", got)
    hub.start()
    assert hub.wait_subscribed(5)
    assert wait_until(lambda: len(got) == 1, 5)
    assert got[0].press == "long" and got[0].queued is True
    publish_state(hub, phase="leaving", thermometer=3)
    assert wait_until(lambda: not rig.panel.waiting, 5)
    hub.stop()


def test_long_press_lights_while_held_and_reaches_the_hub(rig):
    online(rig)
    publish_state(rig.hub, phase="monitoring")
    assert wait_until(lambda: not rig.panel.offline, 5)
    arrived = []                                        # when each press reached the hub
    rig.hub.on("panel/press", lambda m: arrived.append(time.monotonic()))
    assert rig.hub.wait_subscribed(5)
    down = time.monotonic()
    rig.pin(PINS.timeout_button).drive_low()
    assert wait_until(lambda: lit(rig, PINS.timeout_led), 5), "no light while held"
    assert wait_until(lambda: len(arrived) == 1, HOLD + 10)
    # a time-out must not start before the long press is complete: its press reached the hub no
    # sooner than HOLD after the button went down (a loaded machine can only make it later)
    assert arrived[0] - down >= HOLD - 0.01, f"the long press came after {arrived[0] - down:.2f} s"
    assert lit(rig, PINS.timeout_led), "the light must stay on while the button is held"
    rig.pin(PINS.timeout_button).drive_high()
    p = rig.presses[0]
    assert p.press == "long" and p.held_s >= HOLD and p.queued is False


def test_short_presses_are_counted_not_started(rig):
    online(rig)
    publish_state(rig.hub, phase="monitoring")
    assert wait_until(lambda: not rig.panel.offline, 5)
    for _ in range(3):
        rig.pin(PINS.timeout_button).drive_low()
        time.sleep(0.3)
        rig.pin(PINS.timeout_button).drive_high()
        time.sleep(0.1)
    assert wait_until(lambda: len(rig.presses) == 3, 3)
    assert [p.press for p in rig.presses] == ["short"] * 3 and rig.panel.short_presses == 3


def test_spikes_and_a_bouncing_contact_start_no_time_out_and_a_bouncy_hold_starts_one(rig):
    """What the panel guarantees whatever its debounce lets through. gpiozero's MockPin applies
    no bounce_time, so here every 2 ms spike reaches the panel as a press and a release: only a
    press held for HOLD is a long press (the only press that starts a time-out), so spikes and a
    bouncing contact send short presses at most (the hub ignores them), and a hold after a
    bouncing contact sends exactly one long press."""
    online(rig)
    publish_state(rig.hub, phase="monitoring")
    assert wait_until(lambda: not rig.panel.offline, 5)
    pin = rig.pin(PINS.timeout_button)
    for _ in range(20):             # interference: 2 ms spikes
        pin.drive_low()
        time.sleep(0.002)
        pin.drive_high()
        time.sleep(0.05)
    for _ in range(5):              # a bouncing contact, then held
        pin.drive_low()
        time.sleep(0.003)
        pin.drive_high()
        time.sleep(0.003)
    pin.drive_low()
    assert wait_until(lambda: "long" in [p.press for p in rig.presses], HOLD + 10)
    pin.drive_high()
    pin.drive_low()                 # a deliberate short press, last
    time.sleep(0.3)
    pin.drive_high()
    # every short press the panel counted has reached the hub: so has everything sent before
    sent = rig.panel.short_presses
    assert wait_until(lambda: [p.press for p in rig.presses].count("short") == sent, 5)
    kinds = [p.press for p in rig.presses]
    assert kinds.count("long") == 1, kinds
    assert kinds[-2:] == ["long", "short"], "the one long press must be the hold's"


def test_mood_buttons_work_only_while_a_question_is_open(rig):
    online(rig)
    publish_state(rig.hub, phase="timeout")
    assert wait_until(lambda: not rig.panel.offline, 5)
    rig.pin(PINS.mood_buttons[0]).drive_low()
    time.sleep(0.1)
    rig.pin(PINS.mood_buttons[0]).drive_high()
    assert rig.panel.ignored_mood_presses == 1
    q = schemas.OpenQuestion(id=uuid.uuid4(), kind="checkin", key="checkin.how_do_you_feel", options=3)
    publish_state(rig.hub, phase="checkin", question=q)
    assert wait_until(lambda: rig.panel.state.question is not None, 5)
    rig.pin(PINS.mood_buttons[2]).drive_low()
    time.sleep(0.1)
    rig.pin(PINS.mood_buttons[2]).drive_high()
    assert wait_until(lambda: len(rig.answers) == 1, 3)
    # the only answer is this one: had the first press sent one, it would have come first
    assert rig.answers[0].question_id == q.id and rig.answers[0].choice == 3


@pytest.mark.parametrize("code, cls", [("mic.unplugged", "mic"), ("ble.adapter_down", "ble"),
                                       ("modem.no_sim", "modem"), ("disk.full", "other")])
def test_each_fault_class_has_its_own_pattern(rig, code, cls):
    online(rig)
    fault = schemas.Fault(code=code, service="hub", since=schemas.now_utc(), reason="test")
    drawn = []                                  # the fault class of each finished render
    rig.panel.on_render = lambda p: drawn.append(p.fault_pattern())
    publish_state(rig.hub, phase="monitoring", faults=[fault])
    assert wait_until(lambda: cls in drawn, 5)  # the lights are set for it (no older blink runs)
    pattern = FAULT_PATTERNS[cls]
    if pattern is None:
        assert lit(rig, PINS.fault_led) and "fault ●" in draw(rig.panel)   # steady, no blink
    else:
        # each phase as the pin timed it: never shorter than the pattern's (load only lengthens
        # them), and the shape a person tells apart at a glance, with margins of over a second
        # (0.8 s for the fast blink): mic a short flash, ble a long on, modem a fast blink
        on_s, off_s = pattern
        n = 3 if cls == "modem" else 1
        ons, offs = phases(rig.pin(PINS.fault_led), n, n)
        assert min(ons) >= on_s - 0.01 and min(offs) >= off_s - 0.01, (ons, offs)
        on, off = median(ons), median(offs)
        assert {"mic": on < off, "ble": on > off, "modem": on < 1.0 and off < 1.0}[cls], (ons, offs)
    assert len(set(FAULT_PATTERNS.values())) == len(FAULT_PATTERNS)


def test_a_fault_that_needs_nothing_from_the_household_leaves_the_fault_light_off(rig):
    """Issue 13: the caller's clock.unsynchronised lit the fault LED all evening in the demo."""
    online(rig)
    clock = schemas.Fault(code="clock.unsynchronised", service="caller", since=schemas.now_utc(),
                          reason="no NTP and no GNSS fix")
    drawn = []                                  # (fault codes, pattern) of each finished render
    rig.panel.on_render = lambda p: drawn.append(([f.code for f in p.state.faults], p.fault_pattern()))
    publish_state(rig.hub, phase="monitoring", faults=[clock])
    assert wait_until(lambda: any(codes == ["clock.unsynchronised"] for codes, _ in drawn), 5)
    assert drawn[-1][1] is None and not lit(rig, PINS.fault_led)
    # the caller gone is a fault that stops calls: the modem's pattern
    gone = schemas.Fault(code="service.offline", service="caller", since=schemas.now_utc(),
                         reason="caller is not connected")
    publish_state(rig.hub, phase="monitoring", faults=[clock, gone])
    assert wait_until(lambda: drawn[-1][1] == "modem", 5)


def test_after_a_restart_the_panel_shows_the_truth_at_once(broker, bus):
    hub = bus("hub")
    hub._client.publish(f"timeout/{HOUSEHOLD}/hub/available", "online", qos=1, retain=True)
    publish_state(hub, phase="timeout", thermometer=8)
    assert wait_until(lambda: hub.outbox_size() == 0, 5)     # the broker holds it, retained
    factory = MockFactory()
    pb = bus("panel", start=False)
    drawn = []                                               # offline or not, per render
    panel = Panel(pb, PINS, pin_factory=factory, on_render=lambda p: drawn.append(p.offline))
    pb.start()
    assert wait_until(lambda: False in drawn, 5)
    assert factory.pin(PINS.active_led).state and sum(
        bool(factory.pin(p).state) for p in PINS.bar) == round(8 * len(PINS.bar) / 10)
    assert "time-out ●" in draw(panel)
    panel.close()


def test_the_panel_can_publish_only_its_own_inputs(broker):
    raw = Raw(broker.port, "panel", broker.creds("panel").password, "panel-probe")
    raw.wait_connack()
    for topic in ("state", "events", "partner/a/input", "call/request", "hub/available"):
        assert str(raw.publish_and_ack(f"timeout/{HOUSEHOLD}/{topic}", b"x")) == "Not authorized"
    raw.close()
