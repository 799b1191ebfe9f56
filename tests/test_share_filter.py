"""The consent filter on real brokers (docs/care.md): a household Mosquitto bridged over TLS
(through a relay that can cut the uplink) to an organisation Mosquitto, the filter running as the
`bridge` role, the hub's events on the household's bus, and an auditor reading everything that
reaches the organisation's broker. What leaves is sealed to the organisation's age key; a
withdrawal covers what waits while the link is down; without a key nothing leaves."""
from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyrage
import pytest

from firmware.share.filter import ConsentFilter, load_key
from mqtt import schemas
from mqtt.bridge_config import AGE_FILE, write_bridge
from mqtt.broker_process import PrivateBroker
from mqtt.client import BusClient
from mqtt.org_broker import OrgBrokerProcess
from mqtt.seal import SealError, unseal
from mqtt.shared import CATEGORIES, ConsentChange, ConsentSet, SharedTimeout
from tests.conftest import wait_until
from tests.test_fleet import AUDIT_ACL, OrgClient, Relay

HOME = "home-one"
ALL = ConsentSet(a=frozenset(CATEGORIES), b=frozenset(CATEGORIES))


@dataclass
class Link:
    org: OrgBrokerProcess
    home: PrivateBroker
    relay: Relay
    audit: OrgClient
    key: pyrage.x25519.Identity
    tmp: Path

    def bus(self, service: str) -> BusClient:
        c = BusClient(service, HOME, self.home.creds(service), port=self.home.port,
                      state_dir=self.tmp / "state" / service, reconnect_min=0.1, reconnect_max=0.5)
        return c

    def sealed(self) -> list[schemas.Sealed]:
        return [schemas.Sealed.model_validate_json(p)
                for _, p in self.audit.messages(f"fleet/{HOME}/share/summary")]

    def opened(self, kind: str) -> list:
        model = {"timeout": SharedTimeout, "consent": ConsentChange}[kind]
        return [unseal(s, self.key, model) for s in self.sealed() if s.kind == kind]


@pytest.fixture
def link(tmp_path: Path) -> Iterator[Link]:
    key = pyrage.x25519.Identity.generate()
    org = OrgBrokerProcess(tmp_path / "org", (HOME,), extra_acl=AUDIT_ACL,
                           extra_users=("audit",)).start()
    relay = Relay(org.port)
    org_file = org.org_file(HOME).with_name("org-relay.toml")
    org_file.write_text(re.sub(r"(?m)^port = \d+$", f"port = {relay.port}",
                               org.org_file(HOME).read_text())
                        + f'age_recipient = "{key.to_public()}"\n')
    home = PrivateBroker(tmp_path / HOME, HOME)
    write_bridge(home.directory, HOME, org_file)
    home.start()
    audit = OrgClient(org, "audit")
    assert audit.subscribe("#") == [1]
    yield Link(org, home, relay, audit, key, tmp_path)
    audit.close()
    relay.close()
    home.kill()
    org.kill()


def start_filter(link: Link, *, key_file: Path | None = None, base: ConsentSet = ALL) -> ConsentFilter:
    key, problem = load_key(key_file or link.home.directory / "bridge" / AGE_FILE)
    f = ConsentFilter(link.bus("bridge"), link.tmp / "share", base=base, retention_days=90,
                      key=key, key_problem=problem, poll_s=0.2).start()
    assert f.bus.wait_subscribed(10)
    return f


def evening(hub: BusClient, t0: datetime) -> uuid.UUID:
    """A time-out with b's early return and b's contacts called, evaluated and ended."""
    tid = uuid.uuid4()

    def ev(at: float, type_: str, category: str, partner=None, **data) -> None:
        hub.publish("events", schemas.Event(
            ts=t0 + timedelta(minutes=at), type=type_, category=category, partner=partner,
            timeout_id=None if type_ == "suggestion" else tid, data=data))
    ev(0, "suggestion", "sensing", thermometer=7)
    ev(1, "started", "procedure", "a", source="panel")
    ev(5, "returned_early", "presence", "b", minutes=4.0)
    ev(6, "call_result", "call", "b", outcome="acknowledged")
    ev(40, "evaluation_outcome", "evaluation", long_enough=True, discuss="next_session",
       decided_by="agreed", topics_for_session=1, session_date="2026-11-10")
    ev(41, "ended", "procedure", outcome="evaluated", rounds=2, minutes=40.0)
    return tid


def test_a_timeouts_summary_leaves_sealed_and_opens_only_with_the_organisations_key(link):
    f = start_filter(link)
    hub = link.bus("hub").start()
    try:
        assert wait_until(f.link_up.is_set, 20), "the broker never said its bridge is up"
        tid = evening(hub, datetime.now(UTC) - timedelta(hours=2))
        assert wait_until(lambda: link.opened("timeout"), 20), "no summary reached the organisation"
        [summary] = link.opened("timeout")
        assert (summary.timeout_id, summary.minutes, summary.rounds) == (tid, 40.0, 2)
        assert summary.early_returns == {"a": 0, "b": 1} and summary.thermometer
        # on the organisation's broker: the household, the kind and ciphertext, nothing else
        raw = b"".join(p for t, p in link.audit.messages(f"fleet/{HOME}/share/summary"))
        for plain in (str(tid), "evaluated", "acknowledged", "early_returns", "thermometer"):
            assert plain.encode() not in raw, f"{plain} is readable at the organisation's broker"
        assert set(json.loads(link.audit.messages(f"fleet/{HOME}/share/summary")[0][1])) == {
            "v", "id", "ts", "household", "kind", "age"}
        with pytest.raises(SealError, match="does not open"):
            unseal(link.sealed()[0], pyrage.x25519.Identity.generate(), SharedTimeout)
        # a later event of the ended time-out (a call result after its end) sends it again
        hub.publish("events", schemas.Event(type="call_result", category="call", partner="a",
                                            timeout_id=tid, data={"outcome": "no_answer"}))
        assert wait_until(lambda: len(link.opened("timeout")) == 2, 20), "no renewed summary"
        assert [c.partner for c in link.opened("timeout")[1].calls or []] == ["b", "a"]
        # the household's private traffic did not cross: no events, no link notice
        assert {t for t, _ in link.audit.messages(f"fleet/{HOME}/")} == {
            f"fleet/{HOME}/share/summary"}
    finally:
        hub.stop()
        f.stop()


def test_a_withdrawal_covers_a_summary_that_waits_while_the_link_is_down(link):
    f = start_filter(link)
    hub, caller = link.bus("hub").start(), link.bus("caller").start()
    replies = []
    caller.on("partner/b/share-reply", replies.append)
    try:
        assert wait_until(f.link_up.is_set, 20) and caller.wait_subscribed(10)
        link.relay.cut()                      # the home's internet goes away
        assert wait_until(lambda: not f.link_up.is_set(), 60), "the link never went down"
        tid = evening(hub, datetime.now(UTC) - timedelta(hours=2))
        assert wait_until(lambda: f.queued() == 1, 10), "the ended time-out was not queued"
        # partner b withdraws calls and presence (as the caller relays b's SMS)
        caller.publish("partner/b/share-request", schemas.ShareRequest(
            kind="withdraw", categories=["call", "presence"]))
        assert wait_until(lambda: replies, 10), "no answer to b's withdrawal"
        assert replies[0].payload.categories == ["call", "presence"]
        assert f.consent().of("b") == frozenset(CATEGORIES) - {"call", "presence"}
        assert f.consent().of("a") == frozenset(CATEGORIES)
        assert f.sent == 0 and f.queued() == 2     # nothing went to the bus while down
        link.relay.mend()
        # the withdrawal was queued after the time-out: once it arrives, the summary is there too
        assert wait_until(lambda: link.opened("consent"), 60), "the consent notice never arrived"
        [change] = link.opened("consent")
        assert (change.partner, change.withdrawn) == ("b", ["call", "presence"])
        [summary] = link.opened("timeout")
        assert summary.timeout_id == tid
        assert summary.calls == [] and summary.early_returns == {"a": 0}    # b's: gone
        assert summary.minutes == 40.0           # procedure: both still consent
    finally:
        hub.stop()
        caller.stop()
        f.stop()


def test_without_the_organisations_key_nothing_leaves_and_the_service_says_why(link):
    bad = link.tmp / "not-a-key.pub"
    bad.write_text("age1notakey\n")
    f = start_filter(link, key_file=bad)
    hub = link.bus("hub")
    health = []
    hub.on("bridge/health", health.append)    # the hub folds it into the faults it shows
    hub.start()
    try:
        assert wait_until(lambda: health and health[-1].payload.faults, 10)
        [fault] = health[-1].payload.faults
        assert fault.code == "share.no_key" and "not an age public key" in fault.reason
        assert wait_until(f.link_up.is_set, 20)
        evening(hub, datetime.now(UTC) - timedelta(hours=2))
        assert wait_until(lambda: f.queued() == 1, 10)
        assert f.pump() == 0 and f.sent == 0 and f.queued() == 1   # kept, never sent in clear
    finally:
        hub.stop()
        f.stop()
