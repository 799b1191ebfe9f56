"""The organisation's service on real brokers (docs/care.md): two household Mosquittos bridged over
TLS to the organisation's Mosquitto, the service logged in as its own account. What a household
seals arrives opened in the organisation's store under that household only, the broker holds
ciphertext only, a withdrawal and a wipe act on what is stored, the organisation's reads reach
the household they are about and no other, and bad input is refused with a reason."""
from __future__ import annotations

import json
import os
import signal
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyrage
import pytest

from mqtt import schemas
from mqtt.broker_process import PrivateBroker
from mqtt.errors import BrokerConfigError
from mqtt.org_broker import OrgBrokerProcess, write_org_broker_config
from mqtt.seal import recipient, seal
from mqtt.shared import CATEGORIES, ConsentChange, ConsentSet, SharedCall, SharedTimeout, SharedTopics, Wipe
from org.keys import KeyFileError, create_key, load_key
from org.service import KnownHouseholds, OrgService, load_link, mirror_access
from org.store import OrgStore
from tests.conftest import wait_until
from tests.helpers import postgres
from tests.helpers.rawmqtt import Raw
from tests.test_fleet import AUDIT_ACL, ONE, TWO, OrgClient, _bridged, _household

ALL = ConsentSet(a=frozenset(CATEGORIES), b=frozenset(CATEGORIES))
MARK = 37.25   # a length no sealed envelope can contain in the clear


@dataclass
class World:
    org: OrgBrokerProcess
    homes: dict[str, PrivateBroker]
    bridge: dict[str, Raw]        # each household's `bridge` role on its own broker
    key: Path
    to: pyrage.x25519.Recipient
    audit: OrgClient              # sees every message on the organisation's broker

    def send(self, household: str, item, kind: str) -> None:
        sealed = seal(item, household, kind, self.to)   # type: ignore[arg-type]
        self.send_raw(household, sealed.model_dump_json().encode())

    def send_raw(self, household: str, payload: bytes) -> None:
        assert self.bridge[household].publish_and_ack(
            f"timeout/{household}/share/summary", payload).value == 0


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("org")
    org = OrgBrokerProcess(tmp / "org", (ONE, TWO), extra_acl=AUDIT_ACL,
                           extra_users=("audit",)).start()
    homes = {h: _household(tmp, org, h) for h in (ONE, TWO)}
    for b in homes.values():
        assert wait_until(lambda b=b: _bridged(b, org), 15), f"no bridge: {b.log_tail()}"
    bridge = {}
    for h, b in homes.items():
        bridge[h] = Raw(b.port, "bridge", b.creds("bridge").password, "bridge")
        assert bridge[h].subscribe_and_ack(f"timeout/{h}/org/access")[0].value == 1
    audit = OrgClient(org, "audit")
    assert audit.subscribe("#") == [1]
    key = tmp / "age.key"
    public = create_key(key)
    yield World(org, homes, bridge, key, recipient(public), audit)
    audit.close()
    for r in bridge.values():
        r.close()
    for b in homes.values():
        b.kill()
    org.kill()


@pytest.fixture(scope="module")
def pg() -> Iterator[postgres.PgServer]:
    yield from postgres.running_server()


@pytest.fixture
def db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where the store is: SQLite by default; `indirect` "postgresql" for the module's server."""
    if getattr(request, "param", "sqlite") == "sqlite":
        return str(tmp_path / "org.sqlite3")
    return request.getfixturevalue("pg").database()


BOTH = pytest.mark.parametrize("db", ["sqlite", "postgresql"], indirect=True)


@pytest.fixture
def service(world: World, db: str) -> Iterator[OrgService]:
    link = load_link(world.org.directory / "service.toml")
    store = OrgStore.open(db)
    s = OrgService(store, load_key(world.key), known=KnownHouseholds(link.households).__contains__,
                   prefix=link.prefix, link=link).start()
    assert s.connected.wait(10), world.org.log_tail()
    yield s
    s.stop()
    store.close()


def timeout(household: str, **over) -> SharedTimeout:
    fields = {"household": household, "timeout_id": uuid.uuid4(), "started": datetime.now(UTC),
                  "minutes": MARK, "rounds": 2, "outcome": "handed_to_contacts",
                  "early_returns": {"a": 0, "b": 1},
                  "calls": [SharedCall(partner="b", outcome="acknowledged", acknowledged=True)],
                  "evaluation": {"long_enough": True}}
    fields.update(over)
    fields.setdefault("ts", fields["started"])
    return SharedTimeout(**fields)


def notices(world: World, household: str) -> list[schemas.AccessNotice]:
    r = world.bridge[household]
    with r._lock:
        got = [p for t, p in r.received if t == f"timeout/{household}/org/access"]
    return [schemas.AccessNotice.model_validate_json(p) for p in got]


def test_a_sealed_summary_arrives_opened_under_its_household_only_and_the_broker_holds_ciphertext(
        world: World, service: OrgService):
    a = timeout(ONE)
    world.send(ONE, a, "timeout")
    assert wait_until(lambda: service.store.summaries(ONE) != [], 15), service.counts
    assert service.store.summaries(ONE) == [a]
    assert service.store.summaries(TWO) == []
    # on the organisation's broker: a Sealed envelope, the household and the kind, no content
    wire = [p for t, p in world.audit.messages(f"fleet/{ONE}/share/summary")]
    assert wire and all(json.loads(p).keys() == {"v", "id", "ts", "household", "kind", "age"}
                        for p in wire)
    assert not any(str(MARK).encode() in p or b"handed_to_contacts" in p for p in wire)

    # while the service is away the broker keeps the household's summaries for it: its
    # persistence file then holds them, and only as ciphertext
    service.stop()
    b = timeout(ONE, outcome="evaluated", minutes=MARK + 1)
    world.send(ONE, b, "timeout")
    before = len(wire)
    assert wait_until(lambda: len(world.audit.messages(f"fleet/{ONE}/share/summary")) > before, 10)
    db = world.org.directory / "data" / "mosquitto.db"
    sealed_b = world.audit.messages(f"fleet/{ONE}/share/summary")[-1][1]
    age_b = json.loads(sealed_b)["age"][:40].encode()
    os.kill(world.org.pid() or 0, signal.SIGUSR1)    # Mosquitto: write the persistence file now
    assert wait_until(lambda: db.exists() and age_b in db.read_bytes(), 10)
    for place in (db.read_bytes(), world.org.log_path.read_bytes()):
        assert str(MARK + 1).encode() not in place and b"handed_to_contacts" not in place
        assert str(b.timeout_id).encode() not in place
    service.start()
    assert wait_until(lambda: len(service.store.summaries(ONE)) == 2, 15), service.counts


@BOTH
def test_a_withdrawal_removes_exactly_the_withdrawn_fields_and_is_told_to_the_household(
        world: World, service: OrgService):
    before = len(notices(world, ONE))
    kept, other = timeout(ONE), timeout(TWO)
    topics = SharedTopics(household=ONE, count=2, session_date="2027-01-15")
    world.send(ONE, kept, "timeout")
    world.send(ONE, topics, "topics")
    world.send(TWO, other, "timeout")
    assert wait_until(lambda: len(service.store.summaries(ONE)) == 2
                      and len(service.store.summaries(TWO)) == 1, 15), service.counts

    world.send(ONE, ConsentChange(household=ONE, partner="b", withdrawn=["call", "presence"],
                                  consent=ALL.without("b", ["call", "presence"]),
                                  retention_days=30), "consent")
    assert wait_until(lambda: service.counts["consent"] == 1, 15), service.counts
    [after, topics_after] = service.store.summaries(ONE)
    assert after.calls == [] and after.early_returns == {"a": 0}          # b's, withdrawn: gone
    assert after == kept.model_copy(update={"calls": [], "early_returns": {"a": 0}})  # the rest
    assert topics_after == topics
    assert service.store.summaries(TWO) == [other]                      # the other household
    assert service.store.consent_of(ONE)[1] == 30
    # a summary sealed before the withdrawal that arrives after it is filtered too
    world.send(ONE, timeout(ONE, ts=kept.ts + timedelta(minutes=1)), "timeout")
    assert wait_until(lambda: len(service.store.summaries(ONE)) == 3, 15)
    assert all(s.calls == [] for s in service.store.summaries(ONE) if isinstance(s, SharedTimeout))
    # the consent change is in the household's own access log (R6)
    assert wait_until(lambda: len(notices(world, ONE)) > before, 15)
    assert notices(world, ONE)[-1].action == "consent"


def test_a_wipe_drops_the_household_and_keeps_the_others(world: World, service: OrgService):
    world.send(ONE, timeout(ONE), "timeout")
    world.send(TWO, (two := timeout(TWO)), "timeout")
    assert wait_until(lambda: service.store.summaries(ONE) and service.store.summaries(TWO), 15)
    world.send(ONE, Wipe(household=ONE), "wipe")
    assert wait_until(lambda: service.counts["wipe"] == 1, 15), service.counts
    assert service.store.summaries(ONE) == [] and service.store.consent_of(ONE)[0] is None
    assert service.store.summaries(TWO) == [two]
    assert wait_until(lambda: "wipe" in [n.action for n in notices(world, ONE)], 15)   # R6


@BOTH
def test_an_access_entry_reaches_its_own_household_only(world: World, service: OrgService):
    """The care worker's web page, in its own process, writes the access log in the same store;
    the service tells each entry to the household it is about and to no other."""
    def seen(household: str) -> list[tuple[str, str, bool]]:
        return [(n.worker, n.action, n.allowed) for n in notices(world, household)]
    web = OrgStore.open(service.store.where)   # another connection, as another process has
    now = datetime.now(UTC)
    worker = f"worker.{uuid.uuid4().hex[:8]}"   # its own: the households' logs outlive a test
    web.log_access(worker, "home-nine", "report", True, now)   # not a household: not told
    web.log_access(worker, ONE, "report", True, now)
    assert wait_until(lambda: (worker, "report", True) in seen(ONE), 15), world.org.log_tail()
    # a refused read of household two is told to household two; one's entry never reached two
    web.log_access(worker, TWO, "report", False, now)
    mirror_access()                      # the web page's hook: at once rather than within 1 s
    assert wait_until(lambda: (worker, "report", False) in seen(TWO), 15)
    assert (worker, "report", True) not in seen(TWO)
    assert (worker, "report", False) not in seen(ONE)
    assert service.counts["mirror_refused"] == 1
    # noted as told once the broker acknowledged it: that note may land just after the household
    assert wait_until(lambda: web.unmirrored() == [], 10)
    web.close()


def test_bad_sealed_messages_are_refused_with_a_reason_and_counted(
        world: World, service: OrgService):
    stranger = recipient(str(pyrage.x25519.Identity.generate().to_public()))
    world.send_raw(ONE, b"{not json")
    world.send_raw(ONE, seal(timeout(ONE), ONE, "timeout", stranger).model_dump_json().encode())
    world.send(ONE, timeout(TWO), "timeout")                # claims the other household
    world.send(ONE, SharedTopics(household=ONE, count=1), "timeout")   # not what it says it is
    world.send(ONE, (good := timeout(ONE)), "timeout")      # the service is still there
    assert wait_until(lambda: service.store.summaries(ONE) == [good], 15), service.counts
    assert service.counts["refused:malformed"] == 1
    assert service.counts["refused:not_open"] == 2
    assert service.counts["refused:wrong_household"] == 1
    assert service.store.summaries(TWO) == []
    # a household the organisation does not know (its topic, as a misconfigured bridge would)
    out = service.handle("fleet/home-nine/share/summary",
                         seal(timeout("home-nine"), "home-nine", "timeout",
                              world.to).model_dump_json().encode())
    assert out.startswith("refused:") and "does not know" in (service.last_refusal or "")


def test_retention_prunes_once_a_day_by_the_households_days(tmp_path: Path):
    now = [datetime(2027, 3, 1, 3, tzinfo=UTC)]
    key = pyrage.x25519.Identity.generate()
    store = OrgStore(tmp_path / "org.sqlite3")
    s = OrgService(store, key, known=lambda h: True, clock=lambda: now[0])
    for h, age in ((ONE, 40), (ONE, 10), (TWO, 40)):
        store.put(timeout(h, started=now[0] - timedelta(days=age)))
    store.set_consent(ONE, ALL, 30, now[0])     # household one: 30 days; two: the default 90
    assert s.prune_due() == 1
    assert len(store.summaries(ONE)) == 1 and len(store.summaries(TWO)) == 1
    now[0] += timedelta(days=45)
    assert s.prune_due() == 1                      # one's 10-day-old one is 55 days old now
    assert store.summaries(ONE) == [] and len(store.summaries(TWO)) == 1   # two's: 85 of 90
    store.put(timeout(TWO, started=now[0] - timedelta(days=100)))
    assert s.prune_due() == 0                      # the same day: not again
    now[0] += timedelta(days=1)
    assert s.prune_due() == 1 and len(store.summaries(TWO)) == 1


def test_the_organisations_key_is_private_and_made_once(tmp_path: Path):
    key = tmp_path / "age.key"
    public = create_key(key)
    assert public.startswith("age1") and oct(key.stat().st_mode & 0o777) == "0o600"
    assert str(load_key(key).to_public()) == public
    with pytest.raises(KeyFileError, match="already exists"):
        create_key(key)
    key.chmod(0o644)
    with pytest.raises(KeyFileError, match="may be read by others"):
        load_key(key)


def test_care_is_refused_as_a_household_id(tmp_path: Path):
    """`care` is the organisation's service's account: as a household it would get its ACL."""
    with pytest.raises(BrokerConfigError, match="organisation's service's account"):
        write_org_broker_config(tmp_path / "org", add=("care",), host="127.0.0.1")


def test_the_organisations_public_key_reaches_every_households_link_file(tmp_path):
    """The installer gives the key once; each household's org.toml carries it to the hub's
    consent filter (without it the filter shares nothing)."""
    from mqtt.bridge_config import load_org
    pub = str(pyrage.x25519.Identity.generate().to_public())
    out = tmp_path / "org"
    with pytest.raises(BrokerConfigError, match="age public key"):
        write_org_broker_config(out, host="localhost", add=("hh-1",), age_recipient="age1nope")
    write_org_broker_config(out, host="localhost", add=("hh-1",), age_recipient=pub)
    write_org_broker_config(out, host="localhost", add=("hh-2",))      # a later run keeps it
    for h in ("hh-1", "hh-2"):
        assert load_org(out / "households" / h / "org.toml").age_recipient == pub


def test_a_household_removed_from_the_organisation_is_wiped_and_an_unreadable_list_wipes_nothing(
        tmp_path: Path):
    from org.service import KnownHouseholds
    registry = tmp_path / "households.json"
    registry.write_text(json.dumps({"households": [ONE, TWO]}))
    store = OrgStore(tmp_path / "org.sqlite3")
    known = KnownHouseholds(registry)
    s = OrgService(store, pyrage.x25519.Identity.generate(), known=known.__contains__,
                   registry=known)
    for h in (ONE, TWO):
        store.put(timeout(h))
    assert s.wipe_departed() == []
    registry.write_text("{not json")                   # half-written: never a reason to wipe
    assert s.wipe_departed() == [] and store.summaries(TWO)
    registry.write_text(json.dumps({"households": [ONE]}))   # org-broker-config --remove TWO
    assert s.wipe_departed() == [TWO]
    assert store.summaries(TWO) == [] and len(store.summaries(ONE)) == 1
    assert [(a.household, a.action) for a in store.access_log(TWO)] == [(TWO, "wipe")]
    assert s.wipe_departed() == []                     # once


@pytest.mark.parametrize("which", ["service", "web"])
def test_the_organisations_processes_notify_systemd_and_stop_cleanly(tmp_path: Path, which: str):
    """Their units are Type=notify with a watchdog: READY when running, WATCHDOG while their own
    threads are (the broker may be away: the service reconnects by itself), exit 0 on SIGTERM."""
    import os
    import socket
    import subprocess
    import sys
    root = Path(__file__).resolve().parents[1]
    if which == "service":
        write_org_broker_config(tmp_path / "org", host="127.0.0.1", port=1, add=(ONE,))
        create_key(tmp_path / "age.key")
        argv = ["org.service", "--config", str(tmp_path / "org" / "service.toml"),
                "--key", str(tmp_path / "age.key"), "--db", str(tmp_path / "org.sqlite3")]
    else:
        accounts = tmp_path / "workers.json"
        subprocess.run([sys.executable, "-m", "org.web", "add-worker", "worker-1", "--accounts",
                        str(accounts)], input="a long enough passphrase\n" * 2, text=True,
                       capture_output=True, cwd=root, check=True, timeout=60)
        argv = ["org.web", "serve", "--db", str(tmp_path / "org.sqlite3"), "--accounts",
                str(accounts), "--port", "0"]
    sock_path = tmp_path / "notify.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(str(sock_path))
    s.settimeout(30)
    p = subprocess.Popen([sys.executable, "-m", *argv], cwd=root, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True,
                         env={**os.environ, "NOTIFY_SOCKET": str(sock_path), "WATCHDOG_USEC": "2000000"})
    try:
        got: set[str] = set()
        while not {"READY=1", "WATCHDOG=1"} <= got:
            got.add(s.recv(256).decode())
    finally:
        p.send_signal(signal.SIGTERM)
        assert p.wait(20) == 0, p.stderr.read() if p.stderr else ""
        s.close()
