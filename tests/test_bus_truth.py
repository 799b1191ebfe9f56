"""Issue 20, harm 5: the panel shows something false. Through a real Mosquitto with each role's
own password and ACL and the real hub: a fault's sender is the topic it came on, one device cannot
fill the fault list, and a broker that restores a stale retained state is corrected."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

from core.clock import ManualClock
from firmware.hub import procedure as P
from firmware.hub.plan import load_plan
from firmware.hub.service import Hub
from mqtt import schemas
from mqtt.broker_process import PrivateBroker
from mqtt.client import BusClient
from tests.conftest import wait_until
from tests.helpers.collect import Collect
from tests.helpers.rawmqtt import Raw

ROOT = Path(__file__).resolve().parents[1]
PLAN = load_plan(ROOT / "examples" / "household.toml", today=dt.date(2026, 11, 21))



def client(home: PrivateBroker, tmp_path: Path, service: str, *, start: bool = True) -> BusClient:
    c = BusClient(service, PLAN.household, home.creds(service), port=home.port,
                  state_dir=tmp_path / service, reconnect_min=0.1, reconnect_max=0.5)
    if start:
        c.start()
        assert c.wait_connected(5)
    return c


def start_hub(home: PrivateBroker, tmp_path: Path) -> Hub:
    hub = Hub(PLAN, client(home, tmp_path, "hub", start=False), ManualClock(), tmp_path / "hub",
              tick_seconds=0.02).start()
    assert hub.bus.wait_subscribed(5)
    return hub


def panel_view(home: PrivateBroker, tmp_path: Path) -> tuple[BusClient, Collect]:
    states = Collect(payloads=True)
    panel = client(home, tmp_path, "panel", start=False)
    panel.on("state", states)
    panel.start()
    assert panel.wait_subscribed(5)
    return panel, states


def fault(code: str, service: str, n: int = 0) -> schemas.Fault:
    return schemas.Fault(code=code, service=service,  # type: ignore[arg-type]
                         since=schemas.now_utc() + dt.timedelta(seconds=n), reason="test")


def test_a_wearable_cannot_put_a_modem_fault_under_the_callers_name(home, tmp_path, caplog):
    hub = start_hub(home, tmp_path)
    panel, states = panel_view(home, tmp_path)
    wearable = client(home, tmp_path, "wearable-a")
    wearable.publish("wearable-a/health", schemas.Health(faults=[
        fault("modem.no_sim", "caller"),            # a lie about another service's part
        fault("battery.low", "caller")]))           # its own fault, under another's name
    assert wait_until(lambda: states and states[-1].faults, 5)
    assert [(f.code, f.service) for f in states[-1].faults] == [("battery.low", "wearable-a")]
    assert "wearable-a/health: fault modem.no_sim refused: only caller may report it" in caplog.text
    # the caller itself still can
    caller = client(home, tmp_path, "caller")
    caller.publish("caller/health", schemas.Health(faults=[fault("modem.no_sim", "caller")]))
    assert wait_until(lambda: ("modem.no_sim", "caller") in
                      [(f.code, f.service) for f in states[-1].faults], 5)
    for c in (wearable, caller, panel):
        c.stop()
    hub.stop()


def test_a_33_fault_flood_leaves_the_panel_following_the_hubs_phase(home, tmp_path):
    """One device's 32 retained faults plus one more fault pushed state.faults past its limit:
    every later state publish failed validation (hub "leaving", panel "monitoring")."""
    wearable = client(home, tmp_path, "wearable-b")
    wearable.publish("wearable-b/health", schemas.Health(
        faults=[fault(f"flood.f{i:02d}", "wearable-b", i) for i in range(32)]))
    caller = client(home, tmp_path, "caller")
    caller.publish("caller/health", schemas.Health(faults=[fault("modem.no_network", "caller")]))
    hub = start_hub(home, tmp_path)                 # gets both retained lists at its start
    panel, states = panel_view(home, tmp_path)
    assert wait_until(lambda: states and any(f.code == "modem.no_network" for f in states[-1].faults), 5)
    shown = [f for f in states[-1].faults if f.service == "wearable-b"]
    assert [f.code for f in shown] == ["flood.f00", "flood.f01", "flood.f02", "faults.dropped"]
    assert "29 more fault(s) from wearable-b" in shown[-1].reason
    hub.feed(P.PresenceSeen("a", "home"))
    hub.feed(P.PresenceSeen("b", "home"))
    panel.publish("panel/press", schemas.PanelPress(press="long", held_s=2.5))
    assert wait_until(lambda: states[-1].phase == "leaving", 5), \
        f"the panel stays on {states[-1].phase} while the hub is {hub.public_state()['phase']}"
    for c in (wearable, caller, panel):
        c.stop()
    hub.stop()


def test_after_a_broker_kill_the_panel_ends_on_the_hubs_true_phase(home, tmp_path):
    """A broker killed -9 restores the retained `state` of its last autosave; the hub's state had
    not changed since, so it did not publish it again (panel on "monitoring" in a time-out).
    The panel here is a bare client without a persistent session or last will: a service whose
    last will fires at the broker's restart would change the state and hide the harm."""
    hub = start_hub(home, tmp_path)
    hub.feed(P.PresenceSeen("a", "home"))
    hub.feed(P.PresenceSeen("b", "home"))
    assert wait_until(lambda: hub.bus.outbox_size() == 0, 5)
    home.stop()                      # a clean stop saves "monitoring" in the broker's database
    home.start()
    assert wait_until(lambda: hub.bus.stats["connects"] == 2, 10)
    hub.feed(P.PanelPress(long=True))            # what a long press on the panel does
    assert hub.public_state()["phase"] == "leaving"
    assert wait_until(lambda: hub.bus.outbox_size() == 0, 5)   # the broker has "leaving"
    home.kill()                      # before its next autosave (10 s): "leaving" is not on disk
    home.start()
    assert wait_until(lambda: hub.bus.stats["connects"] == 3, 10)
    panel = Raw(home.port, "panel", home.creds("panel").password, "panel")
    panel.wait_connack()
    panel.subscribe_and_ack(f"timeout/{PLAN.household}/state")

    def phase() -> str | None:
        with panel._lock:
            last = panel.received[-1][1] if panel.received else None
        return schemas.State.model_validate_json(last).phase if last else None
    assert wait_until(lambda: phase() == "leaving", 10), \
        f"the panel shows {phase()} while the hub is {hub.public_state()['phase']}"
    panel.close()
    hub.stop()
