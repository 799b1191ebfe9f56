"""The hub service through a real Mosquitto: inputs from the panel and wearables move the
procedure, the retained state shows it, a restart resumes without repeating a call, and the event
log lists what happened."""
from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import pytest

from core.clock import ManualClock
from firmware.hub import procedure as P
from firmware.hub.plan import load_plan
from firmware.hub.service import Hub
from mqtt import schemas
from tests.conftest import wait_until
from tests.helpers.collect import Collect


def Seen():
    return Collect(payloads=True)

ROOT = Path(__file__).resolve().parents[1]
PLAN = load_plan(ROOT / "examples" / "household.toml", today=dt.date(2026, 11, 21))



def make_hub(home, tmp_path, clock):
    from mqtt.client import BusClient
    bus = BusClient("hub", PLAN.household, home.creds("hub"), port=home.port,
                    state_dir=tmp_path / "hub", reconnect_min=0.1, reconnect_max=0.5)
    return Hub(PLAN, bus, clock, tmp_path / "hub", tick_seconds=0.02).start()


def client(home, tmp_path, service):
    from mqtt.client import BusClient
    return BusClient(service, PLAN.household, home.creds(service), port=home.port,
                     state_dir=tmp_path / service, reconnect_min=0.1, reconnect_max=0.5)


def test_an_evening_through_the_broker_and_a_restart_that_repeats_no_call(home, tmp_path):
    clock = ManualClock()
    hub = make_hub(home, tmp_path, clock)
    states, calls = Seen(), Seen()
    panel = client(home, tmp_path, "panel")
    panel.on("state", states)
    caller = client(home, tmp_path, "caller")
    caller.on("call/request", calls)
    wb = client(home, tmp_path, "wearable-b")
    for c in (panel, caller, wb):
        c.start()
        assert c.wait_subscribed(5)
    assert hub.bus.wait_subscribed(5)
    hub.feed(P.PresenceSeen("a", "home"))
    hub.feed(P.PresenceSeen("b", "home"))
    # partner b's own button starts the time-out: b is P1 and leaves
    wb.publish("partner/b/input", schemas.PartnerInput(kind="button", via="wearable"))
    assert wait_until(lambda: states and states[-1].phase == "leaving", 5)
    assert states[-1].leaver == "b"
    hub.feed(P.PresenceSeen("b", "away"))
    clock.advance(P.DEPART_CONFIRM_S + 1)             # away long enough to be a departure
    hub.feed(None)
    assert wait_until(lambda: states[-1].phase == "timeout", 5)
    clock.advance(6 * 60)
    hub.feed(P.PresenceSeen("b", "home"))            # back too early
    assert wait_until(lambda: len(calls) == 1, 5)
    assert calls[0].partner == "b" and calls[0].reason == "early_return"
    ends_at = states[-1].ends_at

    hub.stop()                                      # the hub restarts (a crash or an update)
    clock.reboot(down_seconds=20, trusted=True)
    hub = make_hub(home, tmp_path, clock)
    assert hub.bus.wait_subscribed(5)
    hub.feed(P.PresenceSeen("b", "home"))
    assert hub.public_state()["phase"] == "timeout"
    resumed_end = dt.datetime.fromisoformat(hub.public_state()["ends_at"])
    assert abs((resumed_end - ends_at).total_seconds()) < 2
    # a long press at the panel during the time-out neither ends it nor starts a new one
    episode = hub.proc.timeout_id()
    panel.publish("panel/press", schemas.PanelPress(press="long", held_s=5))
    # a short press after it on the same topic: once it is counted, the long one was handled
    panel.publish("panel/press", schemas.PanelPress(press="short", held_s=0.3))
    assert wait_until(lambda: hub.proc.short_presses == 1, 5)
    clock.advance(60)
    hub.feed(None)
    assert hub.public_state()["phase"] == "timeout"
    assert hub.proc.timeout_id() == episode, "the long press started a new time-out"
    assert dt.datetime.fromisoformat(hub.public_state()["ends_at"]) == resumed_end
    assert [e.type for e in hub.db.events()].count("call_requested") == 1, \
        "the call was requested again after the restart"
    assert len(calls) == 1, "the call was made again after the restart"
    hub.stop()
    for c in (panel, caller, wb):
        c.stop()

    r = subprocess.run([sys.executable, "-m", "firmware.cli", "log", "--state-dir",
                        str(tmp_path / "hub")], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    for word in ("started", "left", "returned_early", "call_requested"):
        assert word in r.stdout
    r = subprocess.run([sys.executable, "-m", "firmware.cli", "log", "--state-dir",
                        str(tmp_path / "hub"), "--category", "call"], cwd=ROOT,
                       capture_output=True, text=True)
    assert "call_requested" in r.stdout and "started" not in r.stdout


def test_retained_state_never_shows_one_partners_answer(home, tmp_path):
    clock = ManualClock()
    hub = make_hub(home, tmp_path, clock)
    states = Seen()
    panel = client(home, tmp_path, "panel")
    panel.on("state", states)
    panel.start()
    assert panel.wait_subscribed(5) and hub.bus.wait_subscribed(5)
    for p in "ab":
        hub.feed(P.PresenceSeen(p, "home"))
    hub.feed(P.PanelPress(long=True))
    hub.feed(P.PresenceSeen("a", "away"))
    clock.advance(20 * 60 + 1)
    hub.feed(None)
    assert wait_until(lambda: states and states[-1].phase == "checkin", 5)
    before = states[-1].model_dump(exclude={"id", "ts"})
    q = hub.proc.open_question("a")[0]
    hub.feed(P.Answer("b", q, 3))                 # b is not calm; a has not answered yet
    clock.advance(1)
    hub.feed(None)
    hub.feed(P.PanelPress(long=False))           # anything that would make the hub republish
    clock.advance(1)
    hub.feed(None)
    after = hub.proc.public_state()
    assert after["phase"] == "checkin" and after["both_calm"] is None
    # the panel's picture is the same before and after b's answer: nothing of it shows (R9).
    # Checked once a later picture has arrived (the thermometer moves), so any state published
    # after the answer has arrived too.
    seen = len(states)
    hub.feed(P.Sound(thermometer=7))
    assert wait_until(lambda: states[-1].thermometer == 7, 5)
    for s in states[seen - 1:]:
        assert s.model_dump(exclude={"id", "ts", "thermometer"}) == \
            {k: v for k, v in before.items() if k != "thermometer"}
    hub.stop()
    panel.stop()


def test_log_with_a_bad_date_or_directory_says_so(tmp_path):
    r = subprocess.run([sys.executable, "-m", "firmware.cli", "log", "--state-dir", str(tmp_path)],
                       cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 2 and "no event log" in r.stderr
    assert "Traceback" not in r.stderr
    # an event log that exists, asked from a date that is not one
    from firmware.hub.eventlog import HubDatabase
    HubDatabase(tmp_path / "hub.sqlite3").close()
    for since, code in (("2026-11-21", 0), ("last tuesday", 2), ("2026-13-45", 2)):
        r = subprocess.run([sys.executable, "-m", "firmware.cli", "log", "--state-dir",
                            str(tmp_path), "--since", since], cwd=ROOT, capture_output=True, text=True)
        assert r.returncode == code, (since, r.stderr)
        assert "Traceback" not in r.stderr
        if code:
            assert f"--since {since!r} is not a date" in r.stderr
        else:
            assert "(0 events)" in r.stdout


@pytest.mark.parametrize("trusted, kept", [(True, 1), (False, 2)])
def test_retention_removes_old_events_only_on_a_synchronised_clock(tmp_path, trusted, kept):
    from firmware.hub.eventlog import HubDatabase, LoggedEvent
    from mqtt.broker_config import Credentials
    from mqtt.client import BusClient
    clock = ManualClock(trusted=trusted)
    db = HubDatabase(tmp_path / "hub" / "hub.sqlite3")
    old = clock.wall() - dt.timedelta(days=PLAN.retention_days + 1)
    db.save_step({}, [LoggedEvent("old", old, "started", "procedure", "a", None, {}),
                      LoggedEvent("new", clock.wall(), "ended", "procedure", None, None, {})])
    db.close()
    bus = BusClient("hub", PLAN.household, Credentials("hub", "x"), state_dir=tmp_path / "bus")
    hub = Hub(PLAN, bus, clock, tmp_path / "hub")
    hub._prune()
    assert [e.id for e in hub.db.events()][-kept:] == (["new"] if kept == 1 else ["old", "new"])
    assert len(hub.db.events()) == kept
    with pytest.raises(Exception, match="append-only"):
        hub.db._c.execute("UPDATE events SET type = 'x'")
    hub.db.close()
    bus.store.close()


def test_a_hub_whose_procedure_stopped_ticking_is_not_alive(home, tmp_path):
    """What the systemd watchdog is fed on: a stuck or dead ticker must stop feeding it."""
    hub = make_hub(home, tmp_path, ManualClock())
    assert wait_until(hub.alive, 2)
    hub._stop.set()                      # the ticker thread ends, as if it had died
    hub._thread.join(2)
    assert not hub.alive()
    assert hub.bus.alive()
    hub.bus.stop()
    assert not hub.bus.alive()
    hub.db.close()


def test_other_services_faults_reach_the_panel(home, tmp_path):
    """A caller's modem fault and a service that vanished show in the state the panel draws."""
    hub = make_hub(home, tmp_path, ManualClock())
    availability = Collect()
    hub.bus.on("caller/available", availability)    # runs after the hub's own handler
    states = Seen()
    panel = client(home, tmp_path, "panel")
    panel.on("state", states)
    caller = client(home, tmp_path, "caller")
    for c in (panel, caller):
        c.start()
        assert c.wait_subscribed(5)
    assert hub.bus.wait_subscribed(5)
    caller.publish("caller/health", schemas.Health(faults=[schemas.Fault(
        code="modem.no_sim", service="caller", since=schemas.now_utc(), reason="SIM card: not inserted")]))
    assert wait_until(lambda: states and [f.code for f in states[-1].faults] == ["modem.no_sim"], 5)
    caller.publish("caller/health", schemas.Health(faults=[]))
    assert wait_until(lambda: states[-1].faults == [], 5)
    caller.kill()                                   # no clean exit: the last will "offline"
    assert wait_until(lambda: [(f.code, f.service) for f in states[-1].faults]
                      == [("service.offline", "caller")], 5)
    caller = client(home, tmp_path, "caller")
    caller.start()
    assert wait_until(lambda: states[-1].faults == [], 5)
    caller.stop()                                   # a clean stop is not a fault
    # wait until the hub has handled the caller's "stopped" (our handler runs after the hub's)
    assert wait_until(lambda: availability.words("caller/available")[-1:] == ["stopped"], 5)
    assert hub.faults() == []
    # and the panel's picture drawn after it: a later state (the thermometer moves) has no fault
    hub.feed(P.Sound(thermometer=4))
    assert wait_until(lambda: states[-1].thermometer == 4, 5)
    assert states[-1].faults == []
    hub.stop()
    panel.stop()


def test_the_sensing_light_and_the_log_tell_the_truth_about_the_hubs_sensors(home, tmp_path):
    """Issue 13 (R5): sensing was hard-coded "on"; now it follows the installed sensors' health,
    and every fault and its clearing is an event in the log."""
    clock = ManualClock()
    hub = make_hub(home, tmp_path, clock)
    states = Seen()
    panel = client(home, tmp_path, "panel")
    panel.on("state", states)
    panel.start()
    assert panel.wait_subscribed(5)
    hub.feed(None)
    assert wait_until(lambda: states and states[-1].sensing == "off", 5)   # nothing installed
    hub.expect_sensors("mic", "ble")
    assert wait_until(lambda: states[-1].sensing == "on", 5)

    def fault(code):
        return schemas.Fault(code=code, service="hub", since=clock.wall(), reason="test")
    hub.sensor_faults("mic", [fault("mic.unplugged")])
    assert wait_until(lambda: states[-1].sensing == "partial", 5)
    hub.sensor_faults("ble", [fault("ble.scanner_down")])
    assert wait_until(lambda: states[-1].sensing == "off", 5)
    hub.sensor_faults("mic", [])
    assert wait_until(lambda: states[-1].sensing == "partial", 5)
    logged = [(e.type, e.data["code"]) for e in hub.db.events(category="fault")]
    assert logged == [("fault", "mic.unplugged"), ("fault", "ble.scanner_down"),
                      ("fault_cleared", "mic.unplugged")]
    assert hub.db.events(category="fault")[0].data["action"] is True
    panel.stop()
    hub.stop()
