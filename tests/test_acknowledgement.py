"""Acknowledged inputs are not lost (issue 20, harm 6): an input is done when the hub has applied
and saved it, not when the broker has it. The broker is killed (-9) in its first seconds, before
its first autosave, while it holds inputs it acknowledged for a hub that is not reading them; every
input is applied exactly once after the broker and the hub are back."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

from core.clock import ManualClock
from firmware.hub.plan import load_plan
from firmware.hub.service import Hub
from mqtt import schemas
from mqtt.broker_process import PrivateBroker
from mqtt.client import BusClient
from tests.conftest import wait_until

ROOT = Path(__file__).resolve().parents[1]
PLAN = load_plan(ROOT / "examples" / "household.toml", today=dt.date(2026, 11, 21))
N = 120



def _client(home: PrivateBroker, tmp_path: Path, service: str) -> BusClient:
    return BusClient(service, PLAN.household, home.creds(service), port=home.port,
                     state_dir=tmp_path / service, reconnect_min=0.1, reconnect_max=0.5)


def _hub(home: PrivateBroker, tmp_path: Path, clock: ManualClock) -> Hub:
    return Hub(PLAN, _client(home, tmp_path, "hub"), clock, tmp_path / "hub", tick_seconds=0.05).start()


def test_inputs_the_broker_acknowledged_survive_its_kill_before_the_first_autosave(home, tmp_path):
    clock = ManualClock()
    hub = _hub(home, tmp_path, clock)
    assert hub.bus.wait_subscribed(5)
    hub.stop()                        # its session (and the queue for it) stays with the broker
    panel = _client(home, tmp_path, "panel")
    panel.start()
    assert panel.wait_connected(5)
    # short presses: each one the hub applies is counted, so "exactly once" can be read off
    for _ in range(N):
        panel.publish("panel/press", schemas.PanelPress(press="short", held_s=0.3))
    assert wait_until(lambda: panel.stats["acked"] == N, 10), "the broker did not take them all"
    home.kill()                       # seconds after its start: nothing autosaved yet
    home.start()
    hub = _hub(home, tmp_path, clock)
    try:
        assert wait_until(lambda: hub.proc.short_presses >= N, 20), \
            f"{N - hub.proc.short_presses} of {N} acknowledged inputs lost"
        # the panel forgets them only once the hub has confirmed them all; then no repeat can
        # still be on its way
        assert wait_until(lambda: panel.outbox_size() == 0, 10)
        assert hub.proc.short_presses == N, "an input was applied twice"
    finally:
        panel.stop()
        hub.stop()
