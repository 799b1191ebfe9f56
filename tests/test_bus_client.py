"""The bus client as a service sees it, through a real Mosquitto."""
from __future__ import annotations

import json
import logging
import uuid

import pytest
from pydantic import ValidationError

from mqtt import schemas
from mqtt.broker_config import Credentials
from mqtt.client import BusClient, Message
from mqtt.errors import ContractError, NotPermitted
from tests.conftest import HOUSEHOLD, wait_until
from tests.helpers.collect import Collect
from tests.helpers.rawmqtt import Raw


def test_availability_online_stopped_and_last_will(bus):
    seen = Collect()
    hub = bus("hub")
    hub.on("{service}/available", seen)
    assert hub.wait_subscribed(5)
    panel = bus("panel")
    assert wait_until(lambda: seen.words("panel/available")[-1:] == ["online"], 5)
    panel.stop()
    assert wait_until(lambda: seen.words("panel/available")[-1:] == ["stopped"], 5)
    caller = bus("caller")
    assert wait_until(lambda: seen.words("caller/available")[-1:] == ["online"], 5)
    caller.kill()  # no clean disconnect: the broker publishes the last will
    assert wait_until(lambda: seen.words("caller/available")[-1:] == ["offline"], 5)


def test_panel_started_later_gets_the_retained_state_also_after_its_restart(bus):
    hub = bus("hub")
    hub.publish("state", hub.make(schemas.State, phase="timeout", since=schemas.now_utc(),
                                  leaver="a", thermometer=6))
    for attempt in range(2):  # the second panel is a restart with the same state dir
        got = Collect()
        panel = bus("panel", start=False, state="panel")
        panel.on("state", got)
        panel.start()
        assert wait_until(lambda got=got: len(got) == 1, 5), f"start {attempt}: no state shown"
        assert got[0].retained and got[0].payload.phase == "timeout"
        panel.stop()


def test_identity_comes_from_the_topic_not_the_payload(broker, bus):
    got = Collect()
    hub = bus("hub")
    hub.on("partner/{partner}/input", got)
    assert hub.wait_subscribed(5)
    wb = bus("wearable-b")
    wb.publish("partner/b/input", schemas.PartnerInput(kind="button", via="wearable"))
    assert wait_until(lambda: len(got) == 1, 5)
    assert got[0].partner == "b"
    wb.stop()  # the broker uses the username as client id: one connection per service
    # a payload that claims a partner is refused (unknown field), whoever sends it
    raw = Raw(broker.port, "wearable-b", broker.creds("wearable-b").password, "raw-b")
    raw.wait_connack()
    claim = b'{"v":1,"id":"%s","ts":"2026-11-21T20:00:00+01:00","kind":"button","via":"wearable","partner":"a"}' % str(uuid.uuid4()).encode()
    raw.publish_and_ack(f"timeout/{HOUSEHOLD}/partner/b/input", claim)
    assert wait_until(lambda: hub.stats["rejected"] == 1, 5)
    raw.close()
    assert len(got) == 1


def test_publish_is_checked_against_the_contract_before_sending(bus):
    panel = bus("panel")
    with pytest.raises(NotPermitted):
        panel.publish("state", schemas.State(phase="monitoring", since=schemas.now_utc()))
    with pytest.raises(PermissionError):  # NotPermitted is a PermissionError
        bus("wearable-a").publish("partner/b/apart", schemas.Apart(apart=True, fix=True))
    with pytest.raises(ContractError):
        panel.publish("panel/press", schemas.PanelAnswer(question_id=uuid.uuid4(), choice=1))
    with pytest.raises(ContractError):
        panel.publish("panel/nonsense", schemas.PanelPress(press="long", held_s=2))
    with pytest.raises(NotPermitted):
        panel.on("events", lambda m: None)


def test_no_phone_numbers_or_coordinates_fit_in_a_payload():
    with pytest.raises(ValidationError, match="phone number"):
        schemas.CallResult(request_id=uuid.uuid4(), partner="a", step="dial", outcome="failed",
                           final=True, error="dial +31 6 1234 5678 failed")
    with pytest.raises(ValidationError, match="not allowed"):
        schemas.Event(type="left", category="presence", data={"lat": 52.1})
    with pytest.raises(ValidationError):
        schemas.Apart(apart=True, fix=True, lat=52.1, lon=4.3)


def test_a_failing_handler_does_not_stop_the_service(bus, caplog):
    calls = Collect()

    def handler(m: Message):
        calls(m)
        if len(calls) == 1:
            raise RuntimeError("bug in a handler")

    hub = bus("hub")
    hub.on("panel/press", handler)
    assert hub.wait_subscribed(5)
    panel = bus("panel")
    with caplog.at_level(logging.ERROR, logger="mqtt.client"):
        panel.publish("panel/press", schemas.PanelPress(press="short", held_s=0.2))
        panel.publish("panel/press", schemas.PanelPress(press="long", held_s=2.2))
        assert wait_until(lambda: len(calls) == 2, 5)
    assert hub.stats["handler_errors"] == 1
    assert "handler for panel/press failed" in caplog.text


def test_malformed_payload_is_logged_with_a_reason_not_its_content(broker, bus, caplog):
    hub = bus("hub")
    hub.on("panel/press", lambda m: None)
    assert hub.wait_subscribed(5)
    raw = Raw(broker.port, "panel", broker.creds("panel").password, "raw-panel")
    raw.wait_connack()
    with caplog.at_level(logging.WARNING, logger="mqtt.client"):
        raw.publish_and_ack(f"timeout/{HOUSEHOLD}/panel/press", b'{"v": 1, "secret": "0612345678"')
        raw.publish_and_ack(f"timeout/{HOUSEHOLD}/panel/press", b'{"v": 7}')
        raw.publish_and_ack(f"timeout/{HOUSEHOLD}/panel/press", b'{"v": "Jan de Vries"}')
        extra = schemas.PanelPress(press="long", held_s=2).model_dump()
        extra["Jan de Vries 0612345678"] = "x"
        raw.publish_and_ack(f"timeout/{HOUSEHOLD}/panel/press",
                            schemas.PanelPress.model_validate(
                                {k: v for k, v in extra.items() if k != "Jan de Vries 0612345678"}
                            ).model_dump_json()[:-1].encode() + b', "Jan de Vries 0612345678": 1}')
        assert wait_until(lambda: hub.stats["rejected"] == 4, 5)
    raw.close()
    assert "payload is not JSON" in caplog.text
    assert "unsupported schema version 7" in caplog.text
    assert "a field that is not in the contract" in caplog.text
    assert "0612345678" not in caplog.text and "Jan de Vries" not in caplog.text


def test_a_payload_is_never_coerced_and_one_without_id_is_refused(broker, bus, caplog):
    """Issue 20, harm 8: `"v": true` and `"held_s": "0.2"` were accepted (coerced), and a press
    or an answer without `id` got a fresh id each time and was applied each time it was resent."""
    got: list[Message] = []
    hub = bus("hub")
    hub.on("panel/press", got.append)
    hub.on("partner/{partner}/input", got.append)
    assert hub.wait_subscribed(5)
    press = schemas.PanelPress(press="long", held_s=2).model_dump(mode="json")
    answer = schemas.PartnerInput(kind="answer", via="sms", question_id=uuid.uuid4(),
                                  choice=1).model_dump(mode="json")
    bad = [("panel/press", {**press, "v": True}),
           ("panel/press", {**press, "held_s": "0.2"}),
           ("panel/press", {**press, "queued": 0}),
           ("partner/a/input", {**answer, "choice": "1"})]
    no_id = {k: v for k, v in press.items() if k != "id"}
    no_id_answer = {k: v for k, v in answer.items() if k != "id"}
    bad += [("panel/press", no_id), ("panel/press", no_id),       # the same press resent
            ("partner/a/input", no_id_answer), ("partner/a/input", no_id_answer)]
    panel = Raw(broker.port, "panel", broker.creds("panel").password, "raw-panel")
    caller = Raw(broker.port, "caller", broker.creds("caller").password, "raw-caller")
    panel.wait_connack()
    caller.wait_connack()
    with caplog.at_level(logging.WARNING, logger="mqtt.client"):
        for topic, obj in bad:
            sender = caller if topic.startswith("partner/") else panel
            sender.publish_and_ack(f"timeout/{HOUSEHOLD}/{topic}", json.dumps(obj).encode())
        # then valid ones from each sender: once they are in, everything before them was handled
        panel.publish_and_ack(f"timeout/{HOUSEHOLD}/panel/press",
                              schemas.PanelPress(press="short", held_s=0.2).model_dump_json().encode())
        caller.publish_and_ack(f"timeout/{HOUSEHOLD}/partner/b/input",
                               schemas.PartnerInput(kind="button", via="sms").model_dump_json().encode())
        assert wait_until(lambda: len(got) >= 2, 5)
    panel.close()
    caller.close()
    assert [(m.topic, getattr(m.payload, "press", None)) for m in got] == \
        [("panel/press", "short"), ("partner/b/input", None)], "a coerced or id-less payload was applied"
    assert hub.stats["rejected"] == len(bad)
    assert "unsupported schema version of type bool" in caplog.text
    assert "invalid PanelPress: held_s: float_type" in caplog.text
    assert "invalid PanelPress: queued: bool_type" in caplog.text
    assert "invalid PartnerInput: choice: int_type" in caplog.text
    assert "no id: every message carries its own id" in caplog.text


def test_a_retained_input_is_refused(broker, bus):
    """A retained button press would be replayed on every reconnect of the hub."""
    got = []
    hub = bus("hub")
    hub.on("panel/press", got.append)
    assert hub.wait_subscribed(5)
    raw = Raw(broker.port, "panel", broker.creds("panel").password, "raw-panel")
    raw.wait_connack()
    raw.publish_and_ack(f"timeout/{HOUSEHOLD}/panel/press",
                        schemas.PanelPress(press="long", held_s=2).model_dump_json().encode(),
                        retain=True)
    raw.close()
    assert wait_until(lambda: len(got) == 1, 5)   # live, it is a press like any other
    hub.stop()
    hub = bus("hub", start=False)                  # the hub restarts and subscribes again
    hub.on("panel/press", got.append)
    hub.start()
    assert hub.wait_subscribed(5)
    assert wait_until(lambda: hub.rejections["retained"] == 1, 5)   # the broker's replay
    assert len(got) == 1


def test_events_survive_a_service_restart_while_the_broker_is_down(broker, bus, tmp_path):
    got = Collect()
    hub = bus("hub")
    hub.on("panel/press", got)
    assert hub.wait_subscribed(5)
    broker.stop()
    panel = bus("panel", start=False, state="panel")
    panel.start()
    for i in range(5):
        panel.publish("panel/press", schemas.PanelPress(press="long", held_s=2 + i))
    assert panel.outbox_size() == 5
    panel.kill()                                  # the panel crashes before the broker returns
    broker.start()
    panel = bus("panel", state="panel")           # restarted panel, same state dir
    assert wait_until(lambda: len(got) == 5, 15), f"hub got {len(got)} of 5"
    assert sorted(m.payload.held_s for m in got) == [2, 3, 4, 5, 6]
    assert wait_until(lambda: panel.outbox_size() == 0, 5)


def test_a_retained_value_queued_while_down_keeps_only_the_newest(broker, bus):
    got = Collect()
    hub = bus("hub")
    hub.on("partner/{partner}/apart", got)
    assert hub.wait_subscribed(5)
    broker.stop()
    wa = bus("wearable-a", start=False)
    wa.start()
    for apart in (False, True, None):
        wa.publish("partner/a/apart", schemas.Apart(apart=apart, fix=apart is not None))
    assert wa.outbox_size() == 1
    broker.start()
    assert wait_until(lambda: len(got) >= 1 and got[-1].payload.apart is None, 15)
    assert got[-1].partner == "a"


def test_service_started_before_the_broker_connects_when_it_comes(broker, bus):
    broker.stop()
    hub = bus("hub", start=False)
    hub.start()
    assert not hub.wait_connected(0.5)
    broker.start()
    assert hub.wait_connected(10)


def test_wrong_password_is_reported_and_does_not_crash(broker, tmp_path, caplog):
    c = BusClient("hub", HOUSEHOLD, Credentials("hub", "wrong"), port=broker.port,
                  state_dir=tmp_path / "x", reconnect_min=0.1, reconnect_max=0.2)
    with caplog.at_level(logging.ERROR, logger="mqtt.client"):
        c.start()
        assert not c.wait_connected(1.0)
        assert wait_until(lambda: c.stats["connect_refused"] >= 1, 5)
    c.stop()
    assert "broker refused the connection" in caplog.text


def test_a_message_the_broker_refuses_for_good_goes_to_dead_letters(broker, bus):
    """If the broker's ACL and the contract ever disagree, the refused event is kept aside with
    the reason and logged, not retried forever and not silently counted as sent."""
    acl = broker.directory / "acl"
    acl.write_text(acl.read_text().replace(f"topic write timeout/{HOUSEHOLD}/panel/press\n", ""))
    broker.restart()
    panel = bus("panel")
    panel.publish("panel/press", schemas.PanelPress(press="long", held_s=2.5))
    assert wait_until(lambda: panel.stats["dead_letter"] == 1, 5)
    assert panel.outbox_size() == 0
    [(_msg_id, topic, reason)] = panel.store.dead_letters()
    assert topic.endswith("panel/press") and "authorized" in reason.lower()
