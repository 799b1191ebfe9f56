"""Misuse cases (R13), one test each, through the real broker with each role's own credentials and
the real hub: a partner trying to cancel or shorten a time-out, to make the other one the leaver,
to trigger a call to the other's contacts, to read the other's answers, to change the plan or
reset the hub; a child pressing every button. Each must fail with a reason (the broker's refusal,
or the hub's logged "input ignored") and no effect. Absence is checked only after a positive
signal: a later input that went through, or the broker's own refusal."""
from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from pathlib import Path

import pytest

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
HH = PLAN.household


class Home:
    """A running hub in a time-out that partner b started on the wearable and left for."""

    def __init__(self, tmp_path: Path):
        self.broker = PrivateBroker(tmp_path / "broker", HH).start()
        self.clock = ManualClock()
        self.clients: list[BusClient] = []
        bus = self.client("hub", tmp_path)
        self.hub = Hub(PLAN, bus, self.clock, tmp_path / "hub", tick_seconds=0.02).start()
        self.states = Collect(payloads=True)
        self.calls = Collect(payloads=True)
        self.panel = self.client("panel", tmp_path)
        self.panel.on("state", self.states)
        self.caller = self.client("caller", tmp_path)
        self.caller.on("call/request", self.calls)
        self.wa, self.wb = self.client("wearable-a", tmp_path), self.client("wearable-b", tmp_path)
        for c in (self.panel, self.caller, self.wa, self.wb):
            c.start()
            assert c.wait_subscribed(5)
        assert self.hub.bus.wait_subscribed(5)
        self.hub.feed(P.PresenceSeen("a", "home"))
        self.hub.feed(P.PresenceSeen("b", "home"))
        self.wb.publish("partner/b/input", schemas.PartnerInput(kind="button", via="wearable"))
        self.wb.publish("partner/b/apart", schemas.Apart(apart=True, fix=True))
        assert wait_until(lambda: self.hub.public_state()["phase"] == "timeout", 5)
        self.episode = self.hub.proc.timeout_id()
        self.ends_at = self.hub.public_state()["ends_at"]

    def client(self, service: str, tmp_path: Path) -> BusClient:
        c = BusClient(service, HH, self.broker.creds(service), port=self.broker.port,
                      state_dir=tmp_path / service, reconnect_min=0.1, reconnect_max=0.5)
        self.clients.append(c)
        return c

    def raw(self, role: str) -> Raw:
        r = Raw(self.broker.port, role, self.broker.creds(role).password, f"misuse-{role}-{uuid.uuid4().hex[:6]}")
        assert str(r.wait_connack()) == "Success"
        return r

    def unchanged(self) -> None:
        ps = self.hub.public_state()
        assert ps["phase"] == "timeout" and ps["leaver"] == "b" and ps["ends_at"] == self.ends_at
        assert self.hub.proc.timeout_id() == self.episode

    def close(self) -> None:
        for c in self.clients[1:]:
            c.stop()
        self.hub.stop()
        self.broker.kill()


@pytest.fixture
def home(tmp_path):
    h = Home(tmp_path)
    yield h
    h.close()


def payload(model) -> bytes:
    return model.model_dump_json().encode()


def test_a_partner_cannot_cancel_or_shorten_a_running_time_out(home, caplog):
    caplog.set_level(logging.INFO, logger="firmware.hub.service")
    for wearable, p in ((home.wa, "a"), (home.wb, "b")):
        wearable.publish(f"partner/{p}/input", schemas.PartnerInput(kind="button", via="wearable"))
        wearable.publish(f"partner/{p}/input", schemas.PartnerInput(
            kind="answer", via="wearable", question_id=uuid.uuid4(), choice=1))
    home.panel.publish("panel/press", schemas.PanelPress(press="long", held_s=5))
    assert wait_until(lambda: caplog.text.count("input ignored") >= 5, 5), caplog.text
    home.unchanged()
    assert "button during timeout changes nothing (R7)" in caplog.text
    assert "a long press during timeout changes nothing (R7)" in caplog.text


def test_a_partner_cannot_make_the_other_the_leaver_or_speak_for_them(home):
    a = home.raw("wearable-a")
    for topic, body in (("partner/b/apart", payload(schemas.Apart(apart=False, fix=True))),
                        ("partner/b/input", payload(schemas.PartnerInput(kind="button", via="wearable")))):
        assert a.publish_and_ack(f"timeout/{HH}/{topic}", body).is_failure, topic   # refused
    a.close()
    # a's own input still goes through: the hub got that far, and b is still the one away
    home.wa.publish("partner/a/input", schemas.PartnerInput(kind="button", via="wearable"))
    assert wait_until(lambda: "button during timeout" in (home.hub.proc.ignored or ""), 5)
    home.unchanged()
    assert not home.hub.public_state()["returned_early"]
    assert [e.type for e in home.hub.db.events()].count("returned_early") == 0


def test_a_partner_cannot_trigger_a_call_to_the_others_contacts(home):
    a = home.raw("wearable-a")
    forged = schemas.CallRequest(partner="b", reason="early_return", timeout_id=uuid.UUID(home.episode))
    assert a.publish_and_ack(f"timeout/{HH}/call/request", payload(forged)).is_failure
    result = schemas.CallResult(request_id=uuid.uuid4(), partner="b", step="ladder", outcome="acknowledged",
                                final=True)
    assert a.publish_and_ack(f"timeout/{HH}/call/result", payload(result)).is_failure
    a.close()
    # the one call that does go out is the hub's own: b comes back early
    home.clock.advance(5 * 60)
    home.wb.publish("partner/b/apart", schemas.Apart(apart=False, fix=True))
    assert wait_until(lambda: len(home.calls) >= 1, 5)
    assert [(c.partner, c.reason) for c in home.calls] == [("b", "early_return")]


def test_a_partner_cannot_read_the_others_answers_or_prompts(home):
    # the broker takes the username as client id: a's own service client steps aside, or it
    # would throw the raw one off when it reconnects
    home.wa.stop()
    a = home.raw("wearable-a")
    # Mosquitto grants a subscription and filters on delivery (per message, by the ACL)
    for rel in ("partner/b/input", "partner/b/prompt", "partner/b/apart", "partner/b/presence",
                "events", "call/request", "#"):
        a.subscribe_and_ack(f"timeout/{HH}/{rel}")
    prompts_b = Collect(payloads=True)
    home.wb.on("partner/b/prompt", prompts_b)
    home.clock.advance(10 * 60 + 1)                               # the periodic check-in
    assert wait_until(lambda: any(m.kind == "checkin" for m in prompts_b), 5)
    q = next(m for m in prompts_b if m.kind == "checkin").question_id   # not the reminder beside it
    home.wb.publish("partner/b/input", schemas.PartnerInput(kind="answer", via="wearable",
                                                            question_id=q, choice=3))
    assert wait_until(lambda: any(e.type == "checkin_answered" for e in home.hub.db.events()), 5)
    # a positive signal on a's side first: a's own prompt of the same check-in, and the state the
    # hub drew after b's answer (the thermometer moves)
    home.hub.feed(P.Sound(thermometer=2))
    assert wait_until(lambda: f"timeout/{HH}/partner/a/prompt" in a.topics()
                      and any(b'"thermometer":2' in body for tp, body in a.received
                              if tp.endswith("/state")), 5)
    seen = a.topics()
    assert not [t for t in seen if "/partner/b/" in t or t.endswith("/events")], seen
    # and the retained state carries no answer of b's (R9)
    assert "choice" not in json.dumps(home.hub.public_state())
    a.close()


def test_a_partner_cannot_change_the_plan_or_reset_the_hub(home):
    for role in ("wearable-a", "wearable-b", "panel"):
        r = home.raw(role)
        for rel, body in (("hub/plan", b"[timeout]\nminimum_minutes = 1\n"), ("hub/reset", b"{}"),
                          ("state", payload(schemas.State(phase="monitoring", since=schemas.now_utc()))),
                          ("hub/available", b"offline")):
            assert r.publish_and_ack(f"timeout/{HH}/{rel}", body, retain=True).is_failure, (role, rel)
        r.close()
    # the panel still draws the hub's own state: a later one arrives and it is the time-out
    home.hub.feed(P.Sound(thermometer=3))
    assert wait_until(lambda: home.states and home.states[-1].thermometer == 3, 5)
    assert home.states[-1].phase == "timeout"
    home.unchanged()


def test_a_child_pressing_every_button_starts_nothing_and_answers_nothing(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="firmware.hub.service")
    broker = PrivateBroker(tmp_path / "broker", HH).start()
    try:
        clock = ManualClock()
        bus = BusClient("hub", HH, broker.creds("hub"), port=broker.port, state_dir=tmp_path / "hub")
        hub = Hub(PLAN, bus, clock, tmp_path / "hub", tick_seconds=0.02).start()
        panel = BusClient("panel", HH, broker.creds("panel"), port=broker.port, state_dir=tmp_path / "panel")
        panel.start()
        assert panel.wait_subscribed(5) and hub.bus.wait_subscribed(5)
        for _ in range(20):
            panel.publish("panel/press", schemas.PanelPress(press="short", held_s=0.2))
        for choice in (1, 2, 3):
            panel.publish("panel/answer", schemas.PanelAnswer(question_id=uuid.uuid4(), choice=choice))
        assert wait_until(lambda: hub.proc.short_presses == 20, 5)
        assert wait_until(lambda: caplog.text.count("input ignored: an answer from panel") == 3, 5)
        assert hub.public_state()["phase"] == "monitoring"
        assert not [e for e in hub.db.events() if e.type in ("started", "checkin_answered")]
        panel.stop()
        hub.stop()
    finally:
        broker.kill()
