"""The generated broker configuration on a real Mosquitto: no anonymous access, and every role
limited to the topics the contract gives it. The expected table is written out here by hand, so a
wrong change to mqtt/contract.py fails this test instead of silently widening the ACL."""
from __future__ import annotations

import time

import pytest

from mqtt.broker_process import PrivateBroker
from tests.conftest import HOUSEHOLD, wait_until
from tests.helpers.rawmqtt import Raw

ROLES = ("hub", "panel", "caller", "wearable-a", "wearable-b", "bridge", "doctor")
ALL = set(ROLES)

# relative topic: (who may publish, who may read)
TABLE: dict[str, tuple[set[str], set[str]]] = {
    "state": ({"hub"}, {"hub", "panel", "wearable-a", "wearable-b"}),
    "events": ({"hub"}, {"hub", "bridge"}),
    "sensor/sound": ({"hub"}, {"hub", "doctor"}),
    "partner/a/presence": ({"hub"}, {"hub"}),
    "partner/b/presence": ({"hub"}, {"hub"}),
    "partner/a/apart": ({"wearable-a"}, {"hub"}),
    "partner/b/apart": ({"wearable-b"}, {"hub"}),
    "partner/a/input": ({"wearable-a", "caller"}, {"hub"}),
    "partner/b/input": ({"wearable-b", "caller"}, {"hub"}),
    "partner/a/prompt": ({"hub"}, {"hub", "wearable-a", "caller"}),
    "partner/b/prompt": ({"hub"}, {"hub", "wearable-b", "caller"}),
    "panel/press": ({"panel"}, {"hub", "doctor"}),
    "panel/answer": ({"panel"}, {"hub"}),
    "call/request": ({"hub"}, {"hub", "caller"}),
    "call/result": ({"caller"}, {"hub"}),
    "hub/available": ({"hub"}, ALL),
    "panel/available": ({"panel"}, {"hub", "doctor", "bridge"}),
    "caller/available": ({"caller"}, {"hub", "doctor", "bridge"}),
    "wearable-a/available": ({"wearable-a"}, {"hub", "doctor", "bridge"}),
    "wearable-b/available": ({"wearable-b"}, {"hub", "doctor", "bridge"}),
    "bridge/available": ({"bridge"}, {"hub", "doctor", "bridge"}),
    "panel/health": ({"panel"}, {"hub", "doctor", "bridge"}),
    "caller/health": ({"caller"}, {"hub", "doctor", "bridge"}),
    "wearable-a/health": ({"wearable-a"}, {"hub", "doctor", "bridge"}),
    "door/hub-1": ({"hub"}, {"hub"}),
    "door/hub-1/event": ({"hub"}, {"hub"}),
    "door/panel-1": ({"panel"}, {"hub"}),
    "door/panel-2/event": ({"panel"}, {"hub"}),
    # the fleet bridge sends out only share/ (docs/fleet.md); the status is made from the above
    "share/status": ({"bridge"}, {"bridge"}),
    # not in the contract: nobody
    "door/front": (set(), set()),
    "partner/a": (set(), set()),
    "partner/c/input": (set(), set()),
    "debug/audio": (set(), set()),
}
OUTSIDE = ["timeout/other-home/state", "timeout/other-home/panel/press", "homeassistant/x", "state"]


@pytest.fixture
def clients(broker: PrivateBroker):
    made = {}
    for role in ROLES:
        c = Raw(broker.port, role, broker.creds(role).password, f"probe-{role}")
        assert str(c.wait_connack()) == "Success", f"{role}: {c.connack}"
        made[role] = c
    yield made
    for c in made.values():
        c.close()


def test_anonymous_and_wrong_password_are_refused(broker: PrivateBroker):
    anon = Raw(broker.port, None, None, "anonymous")
    assert str(anon.wait_connack()) == "Not authorized"
    anon.close()
    wrong = Raw(broker.port, "hub", "not-the-password", "wrong")
    assert str(wrong.wait_connack()) in {"Bad user name or password", "Not authorized"}
    wrong.close()
    # a partner's wearable cannot log in as the hub with its own password
    swapped = Raw(broker.port, "hub", broker.creds("wearable-a").password, "swapped")
    assert str(swapped.wait_connack()) in {"Bad user name or password", "Not authorized"}
    swapped.close()


def test_publish_allowed_only_per_table(clients):
    wrong = []
    for role, c in clients.items():
        for rel, (writers, _) in TABLE.items():
            rc = c.publish_and_ack(f"timeout/{HOUSEHOLD}/{rel}", b"probe")
            allowed = not rc.is_failure
            if allowed != (role in writers):
                wrong.append(f"{role} publish {rel}: broker said {rc}, expected "
                             f"{'allowed' if role in writers else 'denied'}")
        for topic in OUTSIDE:
            rc = c.publish_and_ack(topic, b"probe")
            if not rc.is_failure:
                wrong.append(f"{role} could publish outside the household: {topic}")
    assert not wrong, "\n".join(wrong)


def test_each_role_reads_only_per_table(broker: PrivateBroker, clients):
    # Everyone subscribes to everything; the broker must filter on delivery.
    for c in clients.values():
        c.subscribe_and_ack("#")
    publisher = {rel: next(iter(sorted(w))) for rel, (w, _) in TABLE.items() if w}
    for rel, role in publisher.items():
        assert not clients[role].publish_and_ack(f"timeout/{HOUSEHOLD}/{rel}", b"probe").is_failure
    expected = {role: {f"timeout/{HOUSEHOLD}/{rel}" for rel, (_, r) in TABLE.items()
                       if role in r and rel in publisher} for role in ROLES}
    assert wait_until(lambda: all(expected[r] <= clients[r].topics() for r in ROLES), 10), \
        {r: sorted(expected[r] - clients[r].topics()) for r in ROLES}
    time.sleep(0.5)  # anything a role must not read would have arrived by now
    extra = {r: sorted(clients[r].topics() - expected[r]) for r in ROLES}
    assert all(not v for v in extra.values()), f"read outside the ACL: {extra}"


def test_wearable_cannot_speak_for_the_other_partner(broker: PrivateBroker, clients):
    hub = clients["hub"]
    hub.subscribe_and_ack(f"timeout/{HOUSEHOLD}/partner/+/input")
    rc = clients["wearable-a"].publish_and_ack(f"timeout/{HOUSEHOLD}/partner/b/input", b"forged")
    assert str(rc) == "Not authorized"
    assert not clients["wearable-a"].publish_and_ack(
        f"timeout/{HOUSEHOLD}/partner/a/input", b"own").is_failure
    assert wait_until(lambda: hub.topics() == {f"timeout/{HOUSEHOLD}/partner/a/input"}, 5)
    time.sleep(0.3)
    assert hub.topics() == {f"timeout/{HOUSEHOLD}/partner/a/input"}


def test_the_broker_listens_only_where_configured(broker):
    """No default listener on 0.0.0.0:1883 sneaks in (an option in the wrong place does that)."""
    import subprocess
    out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True).stdout
    pid = broker._proc.pid
    mine = sorted(line.split()[3] for line in out.splitlines() if f"pid={pid}," in line)
    assert mine == [f"127.0.0.1:{broker.port}"], mine


def test_a_service_cannot_take_over_another_services_session(broker, bus):
    """The broker uses the username as client id: wearable-a claiming the id "hub" gets its own
    session, and the hub stays connected."""
    hub = bus("hub")
    impostor = Raw(broker.port, "wearable-a", broker.creds("wearable-a").password, "hub")
    assert str(impostor.wait_connack()) == "Success"
    time.sleep(0.5)
    assert hub.connected.is_set() and hub.stats["disconnects"] == 0
    impostor.close()


def test_only_the_service_that_owns_a_door_sensor_can_publish_it(broker: PrivateBroker, clients):
    """A neighbour's device or a partner's wearable cannot fake the exit door: the broker refuses
    a publish on a door it does not own, and the hub hears only the owner's."""
    hub = clients["hub"]
    hub.subscribe_and_ack(f"timeout/{HOUSEHOLD}/door/#")
    for role, door in (("wearable-a", "hub-1"), ("panel", "hub-1"), ("caller", "panel-1"),
                       ("hub", "panel-1"), ("wearable-b", "panel-1")):
        rc = clients[role].publish_and_ack(f"timeout/{HOUSEHOLD}/door/{door}/event", b"forged")
        assert str(rc) == "Not authorized", (role, door, rc)
    assert not clients["panel"].publish_and_ack(f"timeout/{HOUSEHOLD}/door/panel-1/event", b"own").is_failure
    assert wait_until(lambda: hub.topics() == {f"timeout/{HOUSEHOLD}/door/panel-1/event"}, 5)
    # a positive signal after the forged ones instead of a fixed sleep: the panel's second event
    # arrives, and still nothing else has
    assert not clients["panel"].publish_and_ack(f"timeout/{HOUSEHOLD}/door/panel-1/event", b"own2").is_failure
    assert wait_until(lambda: any(body == b"own2" for _, body in hub.received), 5)
    assert hub.topics() == {f"timeout/{HOUSEHOLD}/door/panel-1/event"}
