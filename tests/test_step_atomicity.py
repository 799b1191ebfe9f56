"""A power cut inside a step (issue 20, harm 4): the real `timeout-hub hub` process is killed (-9)
right after a step's outputs left it (TIMEOUT_HUB_CRASH_AFTER), the partners answer while it is
down, and it is started again. Their answers count, the log and what left the hub agree, and no
call is requested that the answers did not ask for."""
from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from firmware.hub.eventlog import HubDatabase
from mqtt import schemas
from mqtt.broker_process import PrivateBroker
from mqtt.client import BusClient
from tests.conftest import wait_until
from tests.helpers.collect import Collect

ROOT = Path(__file__).resolve().parents[1]
HH = "hh-0042"
# 100 evening seconds a second: the 20-minute time-out takes 12 s; a quiet checkpoint comes only
# every 1,000 evening seconds, so the last one before the check-in is 10 minutes old (the step
# that asks the check-in question is the only record of it).
SPEED = 100



def _hub(home: PrivateBroker, tmp_path: Path, crash_after: str | None) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("TIMEOUT_HUB_CRASH_AFTER", None)
    if crash_after:
        env["TIMEOUT_HUB_CRASH_AFTER"] = crash_after
    return subprocess.Popen(
        [sys.executable, "-m", "firmware.cli", "-q", "hub", "--plan", str(ROOT / "examples" / "household.toml"),
         "--broker-dir", str(home.directory), "--state-dir", str(tmp_path / "hub"),
         "--port", str(home.port), "--speed", str(SPEED)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _client(home: PrivateBroker, tmp_path: Path, service: str) -> BusClient:
    return BusClient(service, HH, home.creds(service), port=home.port, state_dir=tmp_path / service,
                     reconnect_min=0.1, reconnect_max=0.5)


@pytest.mark.parametrize("down_s", [0.0, 4.0], ids=["short", "past_the_deadline"])
def test_answers_given_while_the_hub_was_down_count_and_the_log_agrees_with_the_bus(home, tmp_path, down_s):
    """`past_the_deadline`: the hub stays down 4 s, 400 evening seconds on its clock, longer than
    the check-in's 5 minutes; the same boot's monotonic clock credits all of it. The answers
    queued meanwhile are applied before time acts (Hub._catch_up)."""
    prompts: dict[str, Collect] = {"a": Collect(payloads=True), "b": Collect(payloads=True)}
    calls, events = Collect(payloads=True), Collect(payloads=True)
    caller = _client(home, tmp_path, "caller")          # relays partner a's SMS answers
    caller.on("partner/a/prompt", prompts["a"])
    caller.on("call/request", calls)
    wb = _client(home, tmp_path, "wearable-b")
    wb.on("partner/b/prompt", prompts["b"])
    bridge = _client(home, tmp_path, "bridge")
    bridge.on("events", events)
    clients = (caller, wb, bridge)
    for c in clients:
        c.start()
        assert c.wait_subscribed(5)
    hub = _hub(home, tmp_path, crash_after="end_checkin")
    try:
        def checkins(p: str) -> list[schemas.PartnerPrompt]:
            with prompts[p].lock:
                return [m for m in prompts[p] if m.kind == "checkin"]

        # b starts the time-out on the wearable and leaves; the hub is killed right after the
        # end check-in's prompts left it
        states = Collect(payloads=True)
        wb.on("state", states)
        assert wait_until(lambda: bool(states), 15), hub.stderr
        wb.publish("partner/b/input", schemas.PartnerInput(kind="button", via="wearable"))
        wb.publish("partner/b/apart", schemas.Apart(apart=True, fix=True))
        hub.wait(45)
        assert hub.returncode == -9, "the crash point did not fire"
        # the periodic check-in 10 minutes in (unanswered, no consequence), then the end one
        assert len(checkins("a")) == len(checkins("b")) == 2
        end_a, end_b = checkins("a")[-1], checkins("b")[-1]
        assert end_a.question_id == end_b.question_id

        # while the hub is down: a is calm, b is not calm at all; only b's contacts are to be called
        caller.publish("partner/a/input", schemas.PartnerInput(
            kind="answer", via="sms", question_id=end_a.question_id, choice=1))
        wb.publish("partner/b/input", schemas.PartnerInput(
            kind="answer", via="wearable", question_id=end_b.question_id, choice=3))
        time.sleep(down_s)      # the length of the power cut, not a wait for something
        hub = _hub(home, tmp_path, crash_after=None)
        assert wait_until(lambda: any(e.type == "extended" for e in events) and bool(calls), 30), \
            f"no decision after the restart: {[e.type for e in events]}"
        # every event the log holds has left the hub, and what left is in the log: wait for
        # both to settle on the same set (the log is read after the bus saw the decision)
        db = HubDatabase(tmp_path / "hub" / "hub.sqlite3", read_only=True)

        def agree() -> bool:
            with events.lock:
                sent = {str(e.id): e.type for e in events}
            # fault events are the hub's own record, never published
            return sent == {e.id: e.type for e in db.events() if e.category != "fault"}
        assert wait_until(agree, 10), "the event log and the events that left the hub disagree"
        logged = db.events()
        db.close()
    finally:
        if hub.poll() is None:
            hub.terminate()
            hub.wait(15)
        for c in clients:
            c.stop()

    types = [e.type for e in logged]
    answered = [(e.partner, e.data["choice"], e.data["final"]) for e in logged
                if e.type == "checkin_answered"]
    assert sorted(answered) == [("a", 1, True), ("b", 3, True)], \
        f"answers given while the hub was down were lost: {types}"
    assert "checkin_unanswered" not in types
    # exactly one call left the hub, for b, not calm; the log names the same request
    assert [(c.partner, c.reason) for c in calls] == [("b", "not_calm")], calls
    requested = [e for e in logged if e.type == "call_requested"]
    assert [(e.partner, e.data["reason"]) for e in requested] == [("b", "not_calm")]
    assert len({str(c.id) for c in calls}) == len(calls)
    assert all(isinstance(uuid.UUID(e.id), uuid.UUID) for e in logged)
