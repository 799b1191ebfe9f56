"""The wearable service with its real parts: gpiozero's MockFactory for the button, motor and LED,
the real gpsd fed by gpsfake, the real Mosquitto with the wearable's own password and ACL, and
the real hub. A time-out announced on the wearable runs end to end; no coordinate ever leaves
the wearable (R4); the hub says so when a wearable goes silent."""
from __future__ import annotations

import datetime as dt
import itertools
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from core.clock import ManualClock
from firmware.hub import procedure as P
from firmware.hub.plan import load_plan
from firmware.hub.service import Hub
from firmware.hub.wearable_watch import WearableWatch
from firmware.wearable.service import Wearable, WearableConfig
from mqtt import schemas
from mqtt.broker_process import PrivateBroker, free_port
from mqtt.client import BusClient
from tests.conftest import wait_until
from tests.helpers.collect import Collect
from tests.helpers.rawmqtt import Raw
from tests.test_wearable_geofence import HOME, nmea

ROOT = Path(__file__).resolve().parents[1]
PLAN = load_plan(ROOT / "examples" / "household.toml", today=dt.date(2026, 11, 21))
PINS = {"button": 17, "motor": 18, "led": 27}
# pieces of the home position as they could appear in JSON, a log line or NMEA
COORDINATE_TEXT = ("52.3", "52,3", "5222.", "4.90", "00454.")


@pytest.fixture
def home(tmp_path):
    b = PrivateBroker(tmp_path / "broker", PLAN.household).start()
    yield b
    b.kill()


@pytest.fixture
def gpsfake(tmp_path):
    """The real gpsd, fed (in a loop) by gpsfake with a track made here."""
    procs: list[subprocess.Popen] = []

    def start(epochs) -> int:
        if not shutil.which("gpsfake"):
            pytest.fail("gpsfake is not installed (gpsd-clients): run `make test`")
        f = tmp_path / f"track{len(procs)}.nmea"
        f.write_text(nmea(epochs))
        port = free_port()
        p = subprocess.Popen(["gpsfake", "-q", "-P", str(port), "-c", "0.02", str(f)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)   # gpsfake starts gpsd: stop both
        procs.append(p)
        deadline = time.monotonic() + 30
        while True:
            assert p.poll() is None, "gpsfake exited before gpsd was listening"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return port
            except OSError:
                assert time.monotonic() < deadline, "gpsd did not listen within 30 s"
                time.sleep(0.05)
    yield start
    for p in procs:
        try:
            os.killpg(p.pid, signal.SIGTERM)
            p.wait(5)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(p.pid, signal.SIGKILL)


def config(home: PrivateBroker, tmp_path: Path, gpsd_port: int, **kw) -> WearableConfig:
    creds = tmp_path / "wearable-b.json"
    c = home.creds("wearable-b")
    creds.write_text(json.dumps({"username": c.username, "password": c.password}))
    kw.setdefault("answer_window_seconds", 1.0)
    return WearableConfig(household=PLAN.household, partner="b", credentials=str(creds),
                          state_dir=str(tmp_path / "wearable"), port=home.port,
                          home=(HOME.lat, HOME.lon), gpsd_port=gpsd_port, **kw)


def wearable(home, tmp_path, gpsd_port: int, **kw) -> tuple[Wearable, MockFactory]:
    factory = MockFactory()
    battery = kw.pop("battery", None) or (lambda: 80)
    cfg = config(home, tmp_path, gpsd_port, **kw)
    bus = BusClient("wearable-b", PLAN.household, home.creds("wearable-b"), port=home.port,
                    state_dir=Path(cfg.state_dir), reconnect_min=0.1, reconnect_max=0.5)
    w = Wearable(bus, cfg, pin_factory=factory, battery=battery)
    bus.start()
    w.start()
    assert bus.wait_subscribed(5)
    return w, factory


def client(home, tmp_path, service):
    return BusClient(service, PLAN.household, home.creds(service), port=home.port,
                     state_dir=tmp_path / service, reconnect_min=0.1, reconnect_max=0.5)


def buzzes(pin) -> list[str]:
    """The motor's patterns as felt: each a word of S (short < 0.4 s), L (long) and X (>= 1.2 s),
    split where the motor rested 0.6 s or more (timed by the mock pin as it was switched)."""
    st = list(pin.states)
    words, word = [], ""
    for prev, cur in itertools.pairwise(st):
        if prev.state and not cur.state:
            word += "S" if cur.timestamp < 0.4 else ("L" if cur.timestamp < 1.2 else "X")
        elif not prev.state and cur.state and cur.timestamp >= 0.6 and word:
            words.append(word)
            word = ""
    if word:
        words.append(word)
    return words


def press(factory, times: int = 1) -> None:
    pin = factory.pin(PINS["button"])
    for _ in range(times):
        pin.drive_low()
        time.sleep(0.1)
        pin.drive_high()
        time.sleep(0.1)


def no_coordinates_in(folder: Path) -> None:
    files = [f for f in folder.rglob("*") if f.is_file()]
    assert files, f"nothing written under {folder}?"
    for f in files:
        data = f.read_bytes()
        for bit in COORDINATE_TEXT:
            assert bit.encode() not in data, f"{f.name} holds {bit!r}"


def test_a_time_out_announced_on_the_wearable_runs_end_to_end(home, tmp_path, gpsfake, caplog):
    caplog.set_level(logging.DEBUG)
    gpsd_port = gpsfake([(150.0, 1.0)] * 30)       # the partner is 150 m away once gone
    clock = ManualClock()
    hub_bus = client(home, tmp_path, "hub")
    hub = Hub(PLAN, hub_bus, clock, tmp_path / "hub", tick_seconds=0.02).start()
    states = Collect(payloads=True)
    panel = client(home, tmp_path, "panel")
    panel.on("state", states)
    panel.start()
    w, factory = wearable(home, tmp_path, gpsd_port)
    motor, led = factory.pin(PINS["motor"]), factory.pin(PINS["led"])
    assert panel.wait_subscribed(5) and hub.bus.wait_subscribed(5)
    for p in "ab":
        hub.feed(P.PresenceSeen(p, "home"))

    # the partner's own long press: a time-out with partner b as P1 (and leaver)
    factory.pin(PINS["button"]).drive_low()
    assert wait_until(lambda: states and states[-1].phase == "leaving", 10)
    factory.pin(PINS["button"]).drive_high()
    assert states[-1].leaver == "b"
    assert wait_until(lambda: "X" in buzzes(motor), 5), buzzes(motor)     # "announced"
    # GNSS on for the time-out: the wearable's "apart" tells the hub the leaver has gone
    assert wait_until(lambda: hub.proc.public_state()["phase"] == "timeout", 20)
    assert wait_until(lambda: states[-1].phase == "timeout", 5)

    # the end check-in: a question pattern on the wearable, its LED on
    motor.clear_states()
    clock.advance(PLAN.timeout.minimum_minutes * 60 + 1)
    hub.feed(None)
    assert wait_until(lambda: states[-1].phase == "checkin", 5)
    assert wait_until(lambda: "SSL" in buzzes(motor) and led.state, 15), buzzes(motor)
    # four presses do not fit a question with three answers: asked again, nothing sent
    press(factory, 4)
    assert wait_until(lambda: "SSSSSS" in buzzes(motor), 10), buzzes(motor)
    assert led.state and hub.proc.public_state()["phase"] == "checkin"
    # one press: "calm", felt back as one buzz
    motor.clear_states()
    press(factory, 1)
    q_a = hub.proc.open_question("a")[0]
    hub.feed(P.Answer("a", q_a, 1))
    assert wait_until(lambda: states[-1].both_calm is True, 10)
    # "you may meet again" has its own pattern, then the first evaluation question its own
    assert wait_until(lambda: "SLSL" in buzzes(motor) and "LL" in buzzes(motor), 20), buzzes(motor)
    assert "S" in buzzes(motor)                     # the confirmation of one press
    assert led.state                                # the evaluation question is open
    answered = [e for e in hub.db.events() if e.type == "checkin_answered" and e.partner == "b"]
    assert answered and answered[-1].data.get("choice", 1) == 1

    w.close()
    w.bus.stop()
    panel.stop()
    hub.stop()
    # R4 on the hub's side too: its database, its outbox and every log line of both
    no_coordinates_in(tmp_path / "hub")
    no_coordinates_in(tmp_path / "wearable")
    for rec in caplog.records:
        for bit in COORDINATE_TEXT:
            assert bit not in rec.getMessage(), rec.getMessage()


def test_no_coordinate_leaves_the_wearable(home, tmp_path, gpsfake, caplog):
    """R4: a walk out to 150 m and back during a time-out. Everything the wearable published
    (read with the hub's own credentials, which may read all it can write), every log line and
    every file it wrote hold the verdict only; the home position is in its config alone."""
    out = [(min(150.0, 10.0 * i), 1.0) for i in range(16)]
    gpsd_port = gpsfake([(0.0, 1.0)] * 10 + out + [(150.0, 1.0)] * 10 + out[::-1] + [(0.0, 1.0)] * 10)
    c = home.creds("hub")
    hub = Raw(home.port, c.username, c.password, "hub")
    assert hub.wait_connack() == 0
    hub.subscribe_and_ack(f"timeout/{PLAN.household}/#")
    caplog.set_level(logging.DEBUG)
    w, _ = wearable(home, tmp_path, gpsd_port)
    state = schemas.State(phase="timeout", since=schemas.now_utc(), leaver="b")
    hub.publish_and_ack(f"timeout/{PLAN.household}/state", state.model_dump_json().encode(), retain=True)

    def verdicts() -> list[object]:
        with hub._lock:
            return [json.loads(p)["apart"] for t, p in hub.received if t.endswith("/apart")]
    assert wait_until(lambda: True in verdicts() and verdicts()[-1] is False, 60), verdicts()
    w.beat()
    assert wait_until(lambda: any(t.endswith("/heartbeat") for t in hub.topics()), 5)
    w.close()
    w.bus.stop()
    hub.close()

    with hub._lock:
        payloads = [(t, p.decode(errors="replace")) for t, p in hub.received]
    topics = {t.split("/", 2)[2] for t, _ in payloads}
    assert {"partner/b/apart", "partner/b/heartbeat"} <= topics
    for t, p in payloads:
        for bit in COORDINATE_TEXT:
            assert bit not in p, f"{t} carries {bit!r}"
    for rec in caplog.records:
        for bit in COORDINATE_TEXT:
            assert bit not in rec.getMessage(), rec.getMessage()
    no_coordinates_in(tmp_path / "wearable")
    # the apart payload is the verdict and its time, nothing else
    for t, p in payloads:
        if t.endswith("/apart"):
            assert set(json.loads(p)) == {"v", "id", "ts", "apart", "fix"}


def test_a_silent_wearable_and_a_low_battery_are_on_the_panel(home, tmp_path):
    clock = ManualClock()
    hub = Hub(PLAN, client(home, tmp_path, "hub"), clock, tmp_path / "hub", tick_seconds=0.02).start()
    watch = WearableWatch(hub, check_every_s=0.05).start()
    states = Collect(payloads=True)
    panel = client(home, tmp_path, "panel")
    panel.on("state", states)
    panel.start()
    level = [80]
    w, _ = wearable(home, tmp_path, free_port(), battery=lambda: level[0])

    def codes() -> set[tuple[str, str]]:
        return {(f.service, f.code) for f in states[-1].faults} if states else set()
    assert wait_until(lambda: watch.beats["b"] >= 1, 10)      # its first beat, at its start
    clock.advance(3600 + 1)               # an hour without a heartbeat from partner b's wearable
    assert wait_until(lambda: ("hub", "wearable.silent.b") in codes(), 10), codes()
    assert ("hub", "wearable.silent.a") not in codes()      # a has no wearable in the plan
    w.beat()                               # heard again
    assert wait_until(lambda: ("hub", "wearable.silent.b") not in codes(), 10), codes()
    level[0] = 20
    w.beat()
    assert wait_until(lambda: ("wearable-b", "wearable.battery_low") in codes(), 10), codes()
    level[0] = 90
    w.beat()
    assert wait_until(lambda: ("wearable-b", "wearable.battery_low") not in codes(), 10), codes()
    w.close()
    w.bus.stop()
    watch.stop()
    panel.stop()
    hub.stop()


def test_a_wearable_config_without_home_is_one_sentence(tmp_path):
    bad = tmp_path / "w.toml"
    bad.write_text('household = "hh-0042"\npartner = "b"\ncredentials = "/nonexistent.json"\n'
                   'home = [0.0, 0.0]\n')
    r = subprocess.run([sys.executable, "-m", "firmware.cli", "wearable", "--config", str(bad)],
                       capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert r.returncode == 2 and "home" in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_the_hub_asking_again_does_not_cancel_presses_being_made(home, tmp_path):
    """The hub repeats an unanswered check-in (3 prompts over 5 minutes); a repeat that arrives
    while the partner is pressing must not throw away the presses already made."""
    import uuid
    hub = client(home, tmp_path, "hub")
    inputs = Collect(payloads=True)
    hub.on("partner/b/input", inputs)
    hub.start()
    w, factory = wearable(home, tmp_path, free_port(), answer_window_seconds=3.0)
    assert hub.wait_subscribed(5)
    q = uuid.uuid4()
    prompt = schemas.PartnerPrompt(question_id=q, kind="checkin", key="checkin.how_do_you_feel",
                                   options=3)
    hub.publish("partner/b/prompt", prompt)
    assert wait_until(lambda: factory.pin(PINS["led"]).state, 5)
    press(factory, 1)
    hub.publish("partner/b/prompt", prompt.model_copy(update={"id": uuid.uuid4()}))   # asked again
    assert wait_until(lambda: w._question_at and w.question is not None and w.question.id != prompt.id, 5)
    press(factory, 1)
    assert wait_until(lambda: len(inputs) >= 1, 10)
    assert inputs[0].kind == "answer" and inputs[0].question_id == q and inputs[0].choice == 2
    w.close()
    w.bus.stop()
    hub.stop()


def test_the_wearable_service_runs_under_systemd_without_gpsd(home, tmp_path):
    """`timeout-hub wearable` as its unit runs it (READY=1, WATCHDOG=1), during a time-out with
    no gpsd to read: one warning line, the watchdog still fed, a clean stop."""
    c = home.creds("hub")
    hub = Raw(home.port, c.username, c.password, "hub")
    assert hub.wait_connack() == 0
    state = schemas.State(phase="timeout", since=schemas.now_utc(), leaver="b")
    hub.publish_and_ack(f"timeout/{PLAN.household}/state", state.model_dump_json().encode(), retain=True)
    hub.close()
    cfg = tmp_path / "wearable.toml"
    cfg.write_text(f'household = "{PLAN.household}"\npartner = "b"\n'
                   f'credentials = "{home.directory / "credentials" / "wearable-b.json"}"\n'
                   f'state_dir = "{tmp_path / "state"}"\nport = {home.port}\n'
                   f'home = [{HOME.lat}, {HOME.lon}]\ngpsd_port = {free_port()}\n')
    sock_path = tmp_path / "notify.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(str(sock_path))
    s.settimeout(15)
    env = {**os.environ, "NOTIFY_SOCKET": str(sock_path), "WATCHDOG_USEC": "2000000",
           "PYTHONPATH": str(ROOT)}
    p = subprocess.Popen([sys.executable, "-m", "firmware.cli", "wearable", "--config", str(cfg),
                          "--mock"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
    try:
        got: list[str] = []
        while got.count("WATCHDOG=1") < 3:      # fed again and again while gpsd is missing
            got.append(s.recv(256).decode())
        assert "READY=1" in got
    finally:
        p.send_signal(signal.SIGTERM)
        code = p.wait(15)
        err = p.stderr.read()
        s.close()
    assert code == 0, err
    assert "Traceback" not in err
    assert err.count("gpsd at 127.0.0.1") == 1, err     # said once, not every retry
