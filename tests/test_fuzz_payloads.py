"""10,000 random and malformed payloads (hypothesis) through a real broker into the hub's inputs:
the hub drops each bad one with a reason, never crashes, never hands one to the application, and
still takes the next valid message."""
from __future__ import annotations

import json
import threading
import uuid
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mqtt import schemas
from mqtt.broker_process import PrivateBroker
from mqtt.client import BusClient, Message
from tests.conftest import HOUSEHOLD, wait_until
from tests.helpers.rawmqtt import Raw

# topic -> (credential that may write it, a valid payload to mutate)
VALID = {
    "panel/press": ("panel", schemas.PanelPress(press="long", held_s=2.5)),
    "panel/answer": ("panel", schemas.PanelAnswer(question_id=uuid.uuid4(), choice=2)),
    "partner/a/input": ("caller", schemas.PartnerInput(kind="answer", via="sms",
                                                       question_id=uuid.uuid4(), choice=1)),
    "partner/b/apart": ("wearable-b", schemas.Apart(apart=True, fix=True)),
    "call/result": ("caller", schemas.CallResult(request_id=uuid.uuid4(), partner="b", contact=1,
                                                 step="dial", outcome="busy", final=False)),
}
TOPICS = sorted(VALID)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12)


@st.composite
def mutated(draw) -> bytes:
    """A valid payload with one thing wrong (or, sometimes, still valid)."""
    topic = draw(st.sampled_from(TOPICS))
    obj = json.loads(VALID[topic][1].model_dump_json())
    action = draw(st.sampled_from(["drop", "replace", "extra", "version", "phone", "id"]))
    key = draw(st.sampled_from(sorted(obj)))
    if action == "drop":
        obj.pop(key)
    elif action == "replace":
        obj[key] = draw(json_values)
    elif action == "extra":
        obj[draw(st.sampled_from(["lat", "name", "phone", "audio", "x"]))] = draw(json_values)
    elif action == "version":
        obj["v"] = draw(st.sampled_from([0, 2, "1", None, 1.0]))
    elif action == "phone":
        obj[key] = draw(st.sampled_from(["+31 6 12345678", "0612345678", "call 020-1234567"]))
    else:
        obj["id"] = draw(st.sampled_from(["", "not-a-uuid", 42, str(uuid.uuid4())]))
    return json.dumps(obj).encode()


payloads = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda v: json.dumps(v).encode()),
    mutated(),
    st.sampled_from([b"", b"null", b"[]", b"{}", b"\xff\xfe", b"[" * 5000 + b"]" * 5000,
                     b"{\"v\": 1}", b"x" * 20000, b"online"]),
)
pairs = st.tuples(st.sampled_from(TOPICS), payloads)


class Harness:
    def __init__(self, tmp: Path):
        self.broker = PrivateBroker(tmp / "broker", HOUSEHOLD).start()
        self.hub = BusClient("hub", HOUSEHOLD, self.broker.creds("hub"), port=self.broker.port,
                             state_dir=tmp / "hub")
        self.seen: list[Message] = []
        self.lock = threading.Lock()
        for t in TOPICS:
            self.hub.on(t, self._handle)
        self.hub.start()
        assert self.hub.wait_subscribed(10)
        self.raw = {role: Raw(self.broker.port, role, self.broker.creds(role).password, f"fuzz-{role}")
                    for role in {r for r, _ in VALID.values()}}
        for r in self.raw.values():
            r.wait_connack()
        self.sent = 0

    def _handle(self, m: Message) -> None:
        # The application only ever gets a payload that is valid for its topic.
        schema = type(VALID[m.topic][1])
        assert isinstance(m.payload, schema)
        schema.model_validate_json(m.payload.model_dump_json())
        with self.lock:
            self.seen.append(m)

    def send(self, topic: str, payload: bytes) -> None:
        role = VALID[topic][0]
        self.raw[role].c.publish(f"timeout/{HOUSEHOLD}/{topic}", payload, qos=1)
        self.sent += 1

    def close(self):
        for r in self.raw.values():
            r.close()
        self.hub.stop(1)
        self.broker.kill()


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    h = Harness(tmp_path_factory.mktemp("fuzz"))
    yield h
    h.close()


def fuzz(harness: Harness) -> None:
    @settings(max_examples=100, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                     HealthCheck.large_base_example])
    @given(batch=st.lists(pairs, min_size=100, max_size=100))
    def batches(batch):
        for topic, payload in batch:
            harness.send(topic, payload)
        assert wait_until(lambda: harness.hub.stats["received"] >= harness.sent, 30), \
            f"hub took {harness.hub.stats['received']} of {harness.sent}: it stopped receiving"
    batches()


def test_10000_malformed_payloads_never_crash_the_subscriber(harness: Harness):
    fuzz(harness)
    assert harness.sent >= 10_000
    s = harness.hub.stats
    assert s["internal_errors"] == 0 and s["handler_errors"] == 0
    assert s["delivered"] + s["rejected"] + s["duplicates"] == s["received"]
    assert s["rejected"] > 0.8 * harness.sent, s
    # and it still takes a valid message
    before = len(harness.seen)
    harness.send("panel/press", schemas.PanelPress(press="long", held_s=3).model_dump_json().encode())
    assert wait_until(lambda: len(harness.seen) == before + 1, 5)
    print(f"fuzz: {harness.sent + 1} payloads, rejected {s['rejected']}, "
          f"delivered {s['delivered']}, reasons {len(harness.hub.rejections)}")
