"""The fleet link on real brokers (docs/fleet.md): two household Mosquittos, each bridged over TLS
to one organisation Mosquitto, all real processes on this machine. What crosses, who may read
and write what on the organisation's broker, a wearable away from home, kill -9 of either side
during 1,000 messages, and an uplink that is down for a while."""
from __future__ import annotations

import json
import os
import re
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from firmware.share.status import ShareStatusPublisher
from mqtt import schemas
from mqtt.bridge_config import write_bridge
from mqtt.broker_process import PrivateBroker
from mqtt.client import BusClient, Message
from mqtt.org_broker import OrgBrokerProcess
from tests.conftest import wait_until

ONE, TWO = "home-one", "home-two"
NOT_AUTHORIZED = 0x87
# The auditor sees every message that reaches the organisation's broker (added by the test only).
AUDIT_ACL = "\nuser audit\ntopic read #\n"


class OrgClient:
    """A paho client on the organisation's broker over TLS (MQTT 5: refusals come back as reason
    codes), like a care worker's service or a wearable away from home."""

    def __init__(self, org: OrgBrokerProcess, user: str, *, persistent: bool = False):
        self.received: list[tuple[str, bytes]] = []
        self.acks: dict[int, int] = {}
        self.subacks: dict[int, list[int]] = {}
        self.lock = threading.Lock()
        self.connected = threading.Event()
        self.subscriptions: list[str] = []
        c = paho.Client(CallbackAPIVersion.VERSION2, client_id=user, protocol=paho.MQTTv5)
        cert = org.directory / "clients" / f"{user}.crt"
        if cert.exists():   # org-broker-config --client-certificates: the certificate is the log-in
            c.tls_set(ca_certs=str(org.cafile), certfile=str(cert), keyfile=str(cert.with_suffix(".key")))
        else:
            c.username_pw_set(user, org.creds(user).password)
            c.tls_set(ca_certs=str(org.cafile))
        c.reconnect_delay_set(0.1, 0.5)
        c.on_connect = self._on_connect
        c.on_disconnect = lambda *a: self.connected.clear()
        c.on_message = self._on_message
        c.on_publish = self._on_publish
        c.on_subscribe = self._on_subscribe
        props = None
        if persistent:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = 3600
        c.connect_async("127.0.0.1", org.port, clean_start=not persistent, properties=props)
        c.loop_start()
        self.c = c
        assert self.connected.wait(10), f"{user} did not connect: {org.log_tail()}"

    def _on_connect(self, client, userdata, flags, rc, props):
        if not rc.is_failure:
            for t in self.subscriptions:
                client.subscribe(t, qos=1)
            self.connected.set()

    def _on_message(self, client, userdata, msg):
        with self.lock:
            self.received.append((msg.topic, msg.payload))

    def _on_publish(self, client, userdata, mid, rc, props):
        with self.lock:
            self.acks[mid] = rc.value

    def _on_subscribe(self, client, userdata, mid, rcs, props):
        with self.lock:
            self.subacks[mid] = [r.value for r in rcs]

    def subscribe(self, topic: str) -> list[int]:
        self.subscriptions.append(topic)
        _, mid = self.c.subscribe(topic, qos=1)
        assert wait_until(lambda: mid in self.subacks, 10), f"no SUBACK for {topic}"
        return self.subacks[mid]

    def publish(self, topic: str, payload: bytes | str) -> int:
        """QoS 1; the broker's PUBACK reason code (0 accepted, 0x87 not authorised)."""
        info = self.c.publish(topic, payload, qos=1)
        assert wait_until(lambda: info.mid in self.acks, 10), f"no PUBACK for {topic}"
        return self.acks[info.mid]

    def messages(self, prefix: str = "") -> list[tuple[str, bytes]]:
        with self.lock:
            return [(t, p) for t, p in self.received if t.startswith(prefix)]

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


class Relay:
    """A TCP relay on the household's uplink: cut() is the home's internet going away (the
    organisation's broker keeps running), mend() is it coming back."""

    def __init__(self, target_port: int):
        self.target = target_port
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.open = threading.Event()
        self.open.set()
        self.socks: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                a, _ = self.server.accept()
            except OSError:
                return
            if not self.open.is_set():
                a.close()
                continue
            b = socket.create_connection(("127.0.0.1", self.target))
            self.socks += [a, b]
            for x, y in ((a, b), (b, a)):
                threading.Thread(target=self._pipe, args=(x, y), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self) -> None:
        self.open.clear()
        for s in self.socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.socks.clear()

    def mend(self) -> None:
        self.open.set()

    def close(self) -> None:
        self.cut()
        self.server.close()


@dataclass
class Fleet:
    org: OrgBrokerProcess
    homes: dict[str, PrivateBroker]
    tmp: Path
    relay: Relay | None = None


def _household(tmp: Path, org: OrgBrokerProcess, household: str, via: int | None = None) -> PrivateBroker:
    broker = PrivateBroker(tmp / household, household)
    org_file = org.org_file(household)
    if via is not None:   # through the relay instead of straight to the organisation
        org_file = org_file.with_name("org-relay.toml")
        org_file.write_text(re.sub(r"(?m)^port = \d+$", f"port = {via}",
                                   org.org_file(household).read_text()))
    write_bridge(broker.directory, household, org_file)
    return broker.start()


def _bridged(broker: PrivateBroker, org: OrgBrokerProcess) -> bool:
    text = org.log_path.read_text(errors="replace") if org.log_path.exists() else ""
    return f"as {broker.household} (" in text


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    org = OrgBrokerProcess(tmp_path / "org", (ONE, TWO), extra_acl=AUDIT_ACL,
                           extra_users=("audit",)).start()
    homes = {h: _household(tmp_path, org, h) for h in (ONE, TWO)}
    for b in homes.values():
        assert wait_until(lambda b=b: _bridged(b, org), 15), f"no bridge: {b.log_tail()}"
    yield Fleet(org, homes, tmp_path)
    for b in homes.values():
        b.kill()
    org.kill()


def _bus(fleet: Fleet, household: str, service: str, state: str | None = None) -> BusClient:
    broker = fleet.homes[household]
    c = BusClient(service, household, broker.creds(service), port=broker.port,
                  state_dir=fleet.tmp / "state" / household / (state or service),
                  reconnect_min=0.1, reconnect_max=0.5)
    return c


def _status(bus: BusClient, **over: object) -> schemas.ShareStatus:
    fields: dict[str, object] = {"hub": "online", "panel": "online", "caller": "online",
                                 "wearables_online": 0, "faults": []}
    fields.update(over)
    return bus.make(schemas.ShareStatus, **fields)


# -- what crosses -----------------------------------------------------------------------------

# a run of 9+ digits that is not part of a hex id (an id's digits can look like a number)
PHONE = re.compile(rb"(?<![0-9a-fA-F-])\+?\d[\d ]{8,}(?![0-9a-fA-F])")


def test_status_arrives_under_its_own_prefix_and_nothing_personal_crosses(fleet: Fleet):
    """The care organisation sees household one's equipment status under fleet/home-one/share/;
    the busy evening on the household's own broker (state, events with answers, prompts, calls,
    sound, presence, an SMS answer) never reaches the organisation's broker."""
    audit = OrgClient(fleet.org, "audit")
    assert audit.subscribe("#") == [1]
    care = OrgClient(fleet.org, "care")
    assert care.subscribe("fleet/+/share/#") == [1]

    share = ShareStatusPublisher(_bus(fleet, ONE, "bridge")).start()
    hub, caller = _bus(fleet, ONE, "hub").start(), _bus(fleet, ONE, "caller").start()
    panel = _bus(fleet, ONE, "panel").start()
    try:
        assert hub.wait_connected(10) and caller.wait_connected(10) and panel.wait_connected(10)
        # the status follows the services: all three online, a fault code, no reason text
        panel.publish("panel/health", panel.make(schemas.Health, faults=[schemas.Fault(
            code="panel.button_stuck", service="panel", since=schemas.now_utc(),
            reason="the time-out button reads pressed for 10 minutes")]))

        def status() -> dict | None:
            got = care.messages(f"fleet/{ONE}/share/status")
            return json.loads(got[-1][1]) if got else None

        assert wait_until(lambda: (s := status()) is not None and s["faults"] == ["panel.button_stuck"]
                          and s["panel"] == s["caller"] == s["hub"] == "online", 15), status()
        assert "reason" not in json.dumps(status()) and "button reads" not in json.dumps(status())

        # the household's private traffic
        qid = uuid.uuid4()
        hub.publish("state", hub.make(schemas.State, phase="timeout", since=schemas.now_utc(), leaver="a"))
        hub.publish("events", hub.make(schemas.Event, type="checkin_answered", category="checkin",
                                       partner="b", data={"choice": 3}))
        hub.publish("partner/a/prompt", hub.make(schemas.PartnerPrompt, question_id=qid,
                                                 kind="checkin", key="checkin.how_do_you_feel", options=3))
        hub.publish("call/request", hub.make(schemas.CallRequest, partner="a", reason="not_calm"))
        hub.publish("partner/a/presence", hub.make(schemas.Presence, presence="away",
                                                   since=schemas.now_utc()))
        hub.publish("sensor/sound", hub.make(schemas.Sound, level_db=81.0, unit="dBA", shout=0.9,
                                             thermometer=8))
        caller.publish("partner/a/input", caller.make(schemas.PartnerInput, kind="answer", via="sms",
                                                      question_id=qid, choice=3))
        # then one more status change: once it has arrived, everything before it had its chance
        panel.publish("panel/health", panel.make(schemas.Health, faults=[]))
        assert wait_until(lambda: (s := status()) is not None and s["faults"] == [], 15)
        assert wait_until(lambda: any(json.loads(p).get("faults") == [] for t, p in audit.messages()), 10)
    finally:
        for c in (share, hub, caller, panel):
            c.stop()

    seen = audit.messages()
    # out: share/status to the care organisation; to partner a's wearable away from home only its
    # own prompt (and whether the hub is online): never state, events, calls, sound, presence,
    # the other partner's prompts, or an SMS answer (tests/test_wearable_link.py uses them)
    away = {f"fleet/{ONE}.wearable-a/partner/a/prompt",
            *(f"fleet/{ONE}.wearable-{p}/hub/available" for p in "ab")}
    topics = {t for t, _ in seen}
    assert f"fleet/{ONE}/share/status" in topics and f"fleet/{ONE}.wearable-a/partner/a/prompt" in topics
    assert topics <= {f"fleet/{ONE}/share/status", *away}, topics
    for t, payload in seen:
        if t in away:
            continue
        body = json.loads(payload)
        assert set(body) == {"v", "id", "ts", "hub", "panel", "caller", "wearables_online", "faults"}
        assert not PHONE.search(payload)
        for word in (b"leaver", b"choice", b"answer", b"partner", b"question", b"wearable-a"):
            assert word not in payload
    assert not care.messages(f"fleet/{TWO}/")
    audit.close()
    care.close()


# -- isolation on the organisation's broker (misuse) -----------------------------------------

def _input(choice: int | None = None) -> bytes:
    if choice is None:
        m = schemas.PartnerInput(kind="button", via="wearable")
    else:
        m = schemas.PartnerInput(kind="answer", via="wearable", question_id=uuid.uuid4(), choice=choice)
    return m.model_dump_json().encode()


def test_a_household_cannot_read_or_write_another_households_topics(tmp_path: Path):
    """Household one's credentials (its bridge's) used by hand on the organisation's broker:
    writing into household two's prefix or its wearables' is refused; subscribing to household
    two, to everything, or to household two's wearables brings nothing of theirs."""
    org = OrgBrokerProcess(tmp_path / "org", (ONE, TWO)).start()
    try:
        one = OrgClient(org, ONE)
        two = OrgClient(org, TWO)
        two_wearable = OrgClient(org, f"{TWO}.wearable-a")
        for topic in (f"fleet/{TWO}/share/status", f"fleet/{TWO}.wearable-a/partner/a/input",
                      f"fleet/{TWO}/partner/a/input", "fleet/care/share/status", "timeout/home-two/state"):
            assert one.publish(topic, b"{}") == NOT_AUTHORIZED, topic
        for topic in ("#", "fleet/#", f"fleet/{TWO}/#", f"fleet/{TWO}.wearable-a/#", "fleet/+/share/#"):
            one.subscribe(topic)   # may be granted; what matters is what arrives
        one.subscribe(f"fleet/{ONE}.wearable-a/partner/a/input")
        # household two's own traffic, then a sentinel for household one
        assert two.publish(f"fleet/{TWO}/share/status", b'{"x": 1}') == 0
        assert two_wearable.publish(f"fleet/{TWO}.wearable-a/partner/a/input", _input(2)) == 0
        sentinel = OrgClient(org, f"{ONE}.wearable-a")
        assert sentinel.publish(f"fleet/{ONE}.wearable-a/partner/a/input", _input()) == 0
        assert wait_until(lambda: one.messages(f"fleet/{ONE}.wearable-a/"), 10)
        # (one copy per matching subscription: the set of topics is what counts)
        assert {t for t, _ in one.messages()} == {f"fleet/{ONE}.wearable-a/partner/a/input"}
        # a household's wearable cannot speak for the household's bridge or for another wearable
        assert sentinel.publish(f"fleet/{ONE}/share/status", b"{}") == NOT_AUTHORIZED
        assert sentinel.publish(f"fleet/{ONE}.wearable-b/partner/b/input", _input()) == NOT_AUTHORIZED
        assert sentinel.publish(f"fleet/{TWO}.wearable-a/partner/a/input", _input()) == NOT_AUTHORIZED
        # the care organisation's reader reads share/ only, and writes nothing
        care = OrgClient(org, "care")
        assert care.publish(f"fleet/{ONE}/share/status", b"{}") == NOT_AUTHORIZED
        assert care.publish(f"fleet/{ONE}.wearable-a/partner/a/input", _input()) == NOT_AUTHORIZED
        for c in (one, two, two_wearable, sentinel, care):
            c.close()
    finally:
        org.kill()


def test_a_wearable_away_from_home_reaches_its_own_hub_only(fleet: Fleet):
    """Partner a's wearable of household one, connected to the organisation's broker, presses its
    button: household one's hub gets it as partner a's input. It cannot reach household two's hub,
    and what it writes as partner b under its own name never reaches any hub."""
    got: dict[str, list[Message]] = {ONE: [], TWO: []}
    hubs = {}
    for h in (ONE, TWO):
        hubs[h] = _bus(fleet, h, "hub")
        hubs[h].on("partner/{partner}/input", got[h].append)
        hubs[h].on("partner/{partner}/apart", got[h].append)
        hubs[h].start()
        assert hubs[h].wait_subscribed(10)
    wearable = OrgClient(fleet.org, f"{ONE}.wearable-a")
    try:
        assert wearable.publish(f"fleet/{TWO}.wearable-a/partner/a/input", _input()) == NOT_AUTHORIZED
        assert wearable.publish(f"fleet/{ONE}.wearable-a/partner/b/input", _input()) in (16, NOT_AUTHORIZED)
        assert wearable.publish(f"fleet/{ONE}.wearable-a/partner/a/input", _input()) == 0
        apart = schemas.Apart(apart=True, fix=True).model_dump_json()
        assert wearable.publish(f"fleet/{ONE}.wearable-a/partner/a/apart", apart) == 0
        assert wait_until(lambda: len(got[ONE]) >= 2, 15), fleet.homes[ONE].log_tail()
        assert sorted((m.topic, m.partner) for m in got[ONE]) == [
            ("partner/a/apart", "a"), ("partner/a/input", "a")]
        assert got[TWO] == []
    finally:
        wearable.close()
        for c in hubs.values():
            c.stop()


# -- no loss, no duplicates, in order --------------------------------------------------------

N = 1000


def _care_ids(care: OrgClient) -> list[str]:
    return [json.loads(p)["id"] for _, p in care.messages(f"fleet/{ONE}/share/status")]


@pytest.mark.parametrize("side", ["household", "organisation"])
def test_kill_9_either_side_during_1000_messages_loses_nothing(fleet: Fleet, side: str):
    """1,000 status messages from household one; halfway the household's or the organisation's
    broker is killed (-9) and started again. Every id arrives at the care organisation; an id
    that arrives twice (QoS 1 is at least once) is recognised by its id."""
    care = OrgClient(fleet.org, "care", persistent=True)
    assert care.subscribe(f"fleet/{ONE}/share/#") == [1]
    pub = _bus(fleet, ONE, "bridge").start()
    assert pub.wait_connected(10)
    sent: list[str] = []
    try:
        for i in range(N):
            sent.append(str(pub.publish("share/status", _status(pub, wearables_online=i % 3))))
            if i == N // 2:
                if side == "household":
                    fleet.homes[ONE].kill()
                    fleet.homes[ONE].start()
                else:
                    fleet.org.kill()
                    fleet.org.start()
            time.sleep(0.002)
        assert wait_until(lambda: set(sent) <= set(_care_ids(care)), 90), (
            f"{len(set(sent) - set(_care_ids(care)))} of {N} lost; {fleet.org.log_tail()}")
    finally:
        pub.stop()
        care.close()
    ids = _care_ids(care)
    repeats = len(ids) - len(set(ids))
    print(f"\nkill -9 {side}: {N} sent, {len(set(ids))} distinct ids arrived, {repeats} repeats "
          "recognised by id")
    assert len(set(ids)) == N
    assert set(ids) == set(sent)


def test_uplink_down_for_a_while_then_everything_arrives_in_order(tmp_path: Path):
    """The household's internet goes away (the organisation's broker keeps running) while the
    household keeps publishing and partner a's wearable, away, presses its button; when the
    uplink comes back everything queued arrives, in order, and the hub gets the press."""
    org = OrgBrokerProcess(tmp_path / "org", (ONE,)).start()
    relay = Relay(org.port)
    home = _household(tmp_path, org, ONE, via=relay.port)
    fleet = Fleet(org, {ONE: home}, tmp_path, relay)
    care = OrgClient(org, "care", persistent=True)
    wearable = OrgClient(org, f"{ONE}.wearable-a")
    pub = hub = None
    presses: list[Message] = []
    try:
        assert wait_until(lambda: _bridged(home, org), 15), home.log_tail()
        assert care.subscribe(f"fleet/{ONE}/share/#") == [1]
        pub = _bus(fleet, ONE, "bridge").start()
        assert pub.wait_connected(10)
        hub = _bus(fleet, ONE, "hub")
        hub.on("partner/{partner}/input", presses.append)
        hub.start()
        assert hub.wait_subscribed(10)
        sent = [str(pub.publish("share/status", _status(pub))) for _ in range(20)]
        assert wait_until(lambda: _care_ids(care) == sent, 15)
        relay.cut()
        # the household broker notices the uplink is gone (its bridge reconnects and fails)
        before = home.log_path.read_text(errors="replace").count("Connecting bridge")
        for i in range(300):
            sent.append(str(pub.publish("share/status", _status(pub, wearables_online=i % 3))))
        assert wait_until(lambda: home.log_path.read_text(errors="replace").count(
            "Connecting bridge") > before, 30), home.log_tail()
        assert wearable.publish(f"fleet/{ONE}.wearable-a/partner/a/input", _input()) == 0
        time.sleep(3.0)   # the outage: the queue is the point, not its length
        assert len(_care_ids(care)) < len(sent) and not presses
        relay.mend()
        assert wait_until(lambda: [m.partner for m in presses] == ["a"], 30), home.log_tail()
        assert wait_until(lambda: len(set(_care_ids(care))) >= len(sent), 60), (
            f"{len(sent) - len(set(_care_ids(care)))} missing; {home.log_tail()}")
        ids = list(dict.fromkeys(_care_ids(care)))   # first arrival of each id
        assert ids == sent
    finally:
        for c in (pub, hub):
            if c:
                c.stop()
        care.close()
        wearable.close()
        relay.close()
        home.kill()
        org.kill()


# -- the installer's commands: rotating and removing a household --------------------------------

def _login(org: OrgBrokerProcess, user: str, password: str) -> str:
    """The organisation broker's answer to a log-in (over TLS): 'Success' or the refusal."""
    answer: list[str] = []
    done = threading.Event()
    c = paho.Client(CallbackAPIVersion.VERSION2, client_id=user, protocol=paho.MQTTv5)
    c.username_pw_set(user, password)
    c.tls_set(ca_certs=str(org.cafile))

    def on_connect(client, userdata, flags, rc, props):
        answer.append(str(rc))
        done.set()
    c.on_connect = on_connect
    c.connect("127.0.0.1", org.port)
    c.loop_start()
    assert done.wait(10), "no CONNACK"
    c.disconnect()
    c.loop_stop()
    return answer[0]


def _org_cli(org: OrgBrokerProcess, *args: str) -> int:
    from firmware.cli import main
    run_as = ["--broker-user", "root"] if os.geteuid() == 0 else []   # as OrgBrokerProcess does
    return main(["org-broker-config", "--out", str(org.directory), "--port", str(org.port),
                 "--bind", "127.0.0.1", "--host", "127.0.0.1", *run_as, *args])


def test_removing_a_household_cuts_it_off_at_once_and_keeps_the_others(fleet: Fleet):
    """`org-broker-config --remove` then a reload (SIGHUP): the household's bridge is thrown off
    and cannot log in again, nor can its wearables; its hand-over files are gone; household two
    still logs in."""
    old = {u: fleet.org.creds(u).password for u in (ONE, f"{ONE}.wearable-a", TWO)}
    assert _org_cli(fleet.org, "--remove", ONE) == 0
    fleet.org.reload()
    assert wait_until(lambda: f"Client {ONE} disconnected" in fleet.org.log_path.read_text(), 10)
    assert _login(fleet.org, ONE, old[ONE]) != "Success"
    assert _login(fleet.org, f"{ONE}.wearable-a", old[f"{ONE}.wearable-a"]) != "Success"
    assert not (fleet.org.directory / "households" / ONE).exists()
    assert _login(fleet.org, TWO, old[TWO]) == "Success"


def test_rotating_a_households_password_refuses_the_old_one(fleet: Fleet):
    """`org-broker-config --rotate` then a reload: the old password is refused; the household's
    hub is given the new org.toml (`broker-config --bridge`) and bridges again."""
    old = fleet.org.creds(ONE).password
    assert _org_cli(fleet.org, "--rotate", ONE) == 0
    new = fleet.org.creds(ONE).password
    assert new != old and fleet.org.creds(TWO).password   # the others keep theirs
    fleet.org.reload()
    assert _login(fleet.org, ONE, old) != "Success"
    home = fleet.homes[ONE]
    home.kill()
    before = fleet.org.log_path.read_text().count(f"as {ONE} (")
    write_bridge(home.directory, ONE, fleet.org.org_file(ONE))
    home.start()
    assert wait_until(lambda: fleet.org.log_path.read_text().count(f"as {ONE} (") > before, 15)


def test_broker_config_bridge_keeps_the_password_private_and_refuses_a_bad_file(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    """The bridge password sits in a 0600 file, not in the world-readable mosquitto.conf; a
    wrong organisation file is one sentence and exit 2, never a traceback."""
    from firmware.cli import main
    org = OrgBrokerProcess(tmp_path / "org", (ONE,))
    out = tmp_path / "broker"
    assert main(["broker-config", "--household", ONE, "--out", str(out), "--bridge",
                 str(org.org_file(ONE))]) == 0
    password = org.creds(ONE).password
    bridge = out / "conf.d" / "bridge.conf"
    assert password in bridge.read_text() and bridge.stat().st_mode & 0o777 == 0o600
    assert password not in (out / "mosquitto.conf").read_text()
    assert "topic share/# out 1" in bridge.read_text()
    capsys.readouterr()
    bad = org.org_file(ONE).with_name("bad.toml")
    for text, words in ((org.org_file(ONE).read_text().replace(f'"{ONE}"', f'"{TWO}"'),
                         "is for household 'home-two', not 'home-one'"),
                        ('household = "home-one"\nport = "x"\n', "port must be"),
                        ("household = [", "not readable TOML")):
        bad.write_text(text)
        assert main(["broker-config", "--household", ONE, "--out", str(out), "--bridge", str(bad)]) == 2
        err = capsys.readouterr().err.strip()
        assert words in err and "Traceback" not in err and len(err.splitlines()) == 1, err


def test_share_status_counts_wearables_without_saying_whose(bus):
    """Partner a's wearable comes online and reports a fault: the status says one wearable is
    connected and names the fault code, never which partner's device, never the reason text."""
    share = ShareStatusPublisher(bus("bridge", start=False))
    seen: list[schemas.ShareStatus] = []
    # the bridge role may read share/status back: the publisher's own client watches it
    share.bus.on("share/status", lambda m: seen.append(m.payload))   # type: ignore[arg-type]
    share.start()
    assert share.bus.wait_subscribed(10)
    wearable = bus("wearable-a")
    wearable.publish("wearable-a/health", wearable.make(schemas.Health, faults=[schemas.Fault(
        code="wearable.no_fix", service="wearable-a", since=schemas.now_utc(),
        reason="no GPS fix for 10 minutes")]))
    assert wait_until(lambda: bool(seen) and seen[-1].wearables_online == 1
                      and seen[-1].faults == ["wearable.no_fix"], 15), seen[-1:] or "nothing"
    raw = seen[-1].model_dump_json()
    assert "wearable-a" not in raw and "GPS fix" not in raw and '"a"' not in raw
    wearable.stop()
    assert wait_until(lambda: seen[-1].wearables_online == 0, 15)


def _tls_login(org: OrgBrokerProcess, user: str, cert: Path | None) -> str:
    """A log-in with a client certificate (or none): 'Success', the refusal, or the TLS error."""
    answer: list[str] = []
    done = threading.Event()
    c = paho.Client(CallbackAPIVersion.VERSION2, client_id=user, protocol=paho.MQTTv5)
    c.username_pw_set(user, "a password is not enough")
    c.tls_set(ca_certs=str(org.cafile), certfile=str(cert) if cert else None,
              keyfile=str(cert.with_suffix(".key")) if cert else None)
    c.on_connect = lambda client, userdata, flags, rc, props: (answer.append(str(rc)), done.set())
    c.on_disconnect = lambda *a: done.set()
    try:
        c.connect("127.0.0.1", org.port)
    except (OSError, ssl.SSLError) as e:
        return f"TLS refused: {e}"
    c.loop_start()
    done.wait(10)
    c.disconnect()
    c.loop_stop()
    return answer[0] if answer else "disconnected"


def test_client_certificates_instead_of_passwords(tmp_path: Path):
    """`org-broker-config --client-certificates`: the household bridges with its certificate and
    its status arrives under its prefix; a password alone gets nowhere; a household's wearable
    certificate cannot write into another household; a removed household's certificate is
    revoked: its bridge is cut off at the reload and refused after."""
    org = OrgBrokerProcess(tmp_path / "org", (ONE, TWO), client_certificates=True).start()
    home = _household(tmp_path, org, ONE)
    fleet = Fleet(org, {ONE: home}, tmp_path)
    pub = None
    try:
        assert "password" not in org.org_file(ONE).read_text()
        assert wait_until(lambda: _bridged(home, org), 15), home.log_tail()
        care = OrgClient(org, "care")
        assert care.subscribe("fleet/+/share/#") == [1]
        pub = _bus(fleet, ONE, "bridge").start()
        pub.publish("share/status", _status(pub))
        assert wait_until(lambda: bool(care.messages(f"fleet/{ONE}/share/status")), 15)
        assert _tls_login(org, ONE, None) != "Success"
        wearable = OrgClient(org, f"{ONE}.wearable-a")
        assert wearable.publish(f"fleet/{TWO}.wearable-a/partner/a/input", _input()) == NOT_AUTHORIZED
        assert wearable.publish(f"fleet/{ONE}.wearable-a/partner/a/input", _input()) == 0
        wearable.close()
        old_cert = tmp_path / "one.crt"
        for suffix in (".crt", ".key"):
            old_cert.with_suffix(suffix).write_bytes(
                (org.directory / "clients" / f"{ONE}{suffix}").read_bytes())
        assert _tls_login(org, ONE, old_cert) == "Success"
        # rotating revokes the old certificate at the reload (Mosquitto rereads the CRL)
        two_old = tmp_path / "two.crt"
        for suffix in (".crt", ".key"):
            two_old.with_suffix(suffix).write_bytes(
                (org.directory / "clients" / f"{TWO}{suffix}").read_bytes())
        assert _org_cli(org, "--rotate", TWO) == 0
        org.reload()
        assert wait_until(lambda: _tls_login(org, TWO, two_old) != "Success", 10)
        assert _tls_login(org, TWO, org.directory / "clients" / f"{TWO}.crt") == "Success"
        assert _org_cli(org, "--remove", ONE) == 0
        assert "client_certificates" in (org.directory / "households.json").read_text()
        org.reload()
        assert wait_until(lambda: f"Client {ONE} disconnected" in org.log_path.read_text(), 10)
        # the broker applies the reload's revocation to new connections a moment after it
        # drops the old one: wait for the refusal rather than racing it
        assert wait_until(lambda: _tls_login(org, ONE, old_cert) != "Success", 10)
        care.close()
    finally:
        if pub:
            pub.stop()
        home.kill()
        org.kill()
