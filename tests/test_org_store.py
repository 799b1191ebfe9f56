"""The organisation's store (org/store.py) behaves the same on both of its databases: SQLite (a
file, the embedded default) and PostgreSQL (a real server from tests/helpers/postgres.py, one per
module, signed in with a password from a password file). On PostgreSQL a dropped connection
gives one sentence and the next call works again; a password on the command line is refused."""
from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyrage
import pytest

from core.errors import StorageError
from mqtt.seal import recipient, seal
from mqtt.shared import CATEGORIES, ConsentSet, SharedCall, SharedTimeout, SharedTopics, restrict
from org.service import OrgService
from org.store import OrgStore
from tests.helpers import postgres

ROOT = Path(__file__).resolve().parents[1]
NOW = datetime(2027, 3, 1, 3, tzinfo=UTC)
ONE, TWO = "hh-0001", "hh-0002"
ALL = ConsentSet(a=frozenset(CATEGORIES), b=frozenset(CATEGORIES))


@pytest.fixture(scope="module")
def pg() -> Iterator[postgres.PgServer]:
    yield from postgres.running_server()


@pytest.fixture(params=["sqlite", "postgresql"])
def where(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "org.sqlite3")
    return request.getfixturevalue("pg").database()


@pytest.fixture
def store(where: str) -> Iterator[OrgStore]:
    s = OrgStore.open(where)
    yield s
    s.close()


def timeout(household: str, days_ago: float, **over) -> SharedTimeout:
    ts = NOW - timedelta(days=days_ago)
    fields = {"household": household, "timeout_id": uuid.uuid4(), "ts": ts, "started": ts,
              "minutes": 25.0, "rounds": 1, "outcome": "evaluated",
              "early_returns": {"a": 0, "b": 1},
              "calls": [SharedCall(partner="b", outcome="acknowledged", acknowledged=True)]}
    fields.update(over)
    return SharedTimeout(**fields)


def test_a_newer_summary_of_a_time_out_replaces_it_and_since_reads_in_time_order(store):
    old, mid = timeout(ONE, 20), timeout(ONE, 5)
    topics = SharedTopics(household=ONE, count=2, ts=NOW - timedelta(days=10))
    for item in (mid, topics, old, timeout(TWO, 1)):
        store.put(item)
    newer = mid.model_copy(update={"rounds": 3, "ts": mid.ts + timedelta(minutes=30)})
    store.put(newer)                                     # the same time-out, later: replaced
    assert store.summaries(ONE) == [old, topics, newer]
    assert store.summaries(ONE, since=NOW - timedelta(days=10)) == [topics, newer]
    assert store.households() == [ONE, TWO]


def test_only_assigned_workers_may_read_a_household(store):
    store.assign("worker-1", TWO)
    store.assign("worker-1", ONE)
    store.assign("worker-1", ONE)                        # twice: once
    store.assign("worker-2", TWO)
    assert store.households_for("worker-1") == [ONE, TWO]
    assert store.may_read("worker-2", TWO) and not store.may_read("worker-2", ONE)
    store.unassign("worker-1", TWO)
    assert store.households_for("worker-1") == [ONE] and not store.may_read("worker-1", TWO)
    assert store.households() == [ONE, TWO]              # assigned, nothing stored yet


def test_the_access_log_keeps_the_order_and_the_refusals_and_cannot_be_changed(store, where):
    store.log_access("worker-1", ONE, "report", True, NOW)
    store.log_access("worker-2", ONE, "report", False, NOW - timedelta(hours=1))   # later entry
    other = OrgStore.open(where)                         # another process's connection
    other.log_access("worker-1", TWO, "list", True, NOW)
    assert [(e.worker, e.allowed, e.ts) for e in store.access_log(ONE)] == [
        ("worker-1", True, NOW), ("worker-2", False, NOW - timedelta(hours=1))]
    # the outbox the service tells the households from: in the order written, whoever wrote
    assert [(e.household, e.worker) for _, e in store.unmirrored()] == [
        (ONE, "worker-1"), (ONE, "worker-2"), (TWO, "worker-1")]
    seq = store.unmirrored()[1][0]
    other.mark_mirrored(seq)
    assert [e.household for _, e in store.unmirrored()] == [TWO]
    other.close()
    with pytest.raises(StorageError, match="append-only"), store._tx() as db:
        db.run("DELETE FROM access")                     # not behind the API's back either
    store.close()
    store = OrgStore.open(where)
    assert len(store.access_log(ONE)) == 2


def test_a_wipe_drops_one_household_and_keeps_the_other_and_the_access_log(store):
    store.put(timeout(ONE, 1))
    store.put(two := timeout(TWO, 1))
    store.set_consent(ONE, ALL.without("b", ["call"]), 30, NOW)
    store.log_access("worker-1", ONE, "report", True, NOW)
    assert store.wipe(ONE) == 1
    assert store.summaries(ONE) == [] and store.consent_of(ONE) == (None, 90)
    assert store.summaries(TWO) == [two]
    assert [e.action for e in store.access_log(ONE)] == ["report"]


def test_prune_drops_what_is_past_the_households_retention(store):
    kept, gone = timeout(ONE, 10), timeout(ONE, 40)
    store.put(kept)
    store.put(gone)
    store.put(two := timeout(TWO, 40))
    assert store.prune(ONE, 30, NOW) == 1
    assert store.summaries(ONE) == [kept] and store.summaries(TWO) == [two]


def test_a_consent_change_is_applied_whole_or_not_at_all(store):
    a, b = timeout(ONE, 2), timeout(ONE, 1)
    store.put(a)
    store.put(b)
    narrower = ALL.without("b", ["call"])
    filtered = [r for s in store.summaries(ONE) if (r := restrict(s, narrower))]
    with pytest.raises(AttributeError):                 # fails after the first row: rolled back
        store.replace_all(ONE, [filtered[0], None])     # type: ignore[list-item]
    assert store.summaries(ONE) == [a, b]
    store.replace_all(ONE, filtered)
    store.set_consent(ONE, narrower, 30, NOW)
    assert all(s.calls == [] for s in store.summaries(ONE))   # type: ignore[union-attr]
    assert store.consent_of(ONE) == (narrower, 30)


def test_a_dropped_postgresql_connection_is_one_sentence_and_the_service_retries(pg):
    url = pg.database()
    store = OrgStore.open(url)
    key = pyrage.x25519.Identity.generate()
    service = OrgService(store, key, known=lambda h: True, clock=lambda: NOW)
    to = recipient(str(key.to_public()))

    def send(item: SharedTimeout) -> str:
        return service.handle(f"fleet/{ONE}/share/summary",
                              seal(item, ONE, "timeout", to).model_dump_json().encode())

    assert send(first := timeout(ONE, 2)) == "stored"
    assert pg.cut_connections(url) >= 1                 # a server restart, a network cut
    with pytest.raises(StorageError) as failed:          # not acknowledged: delivered again
        send(second := timeout(ONE, 1))
    assert "\n" not in str(failed.value) and str(failed.value).endswith(".")
    assert "PostgreSQL database org_" in str(failed.value) and "care-test" not in str(failed.value)
    assert service.counts["store_failed"] == 1
    assert send(second) == "stored"                      # the broker's redelivery: connected again
    assert store.summaries(ONE) == [first, second]
    store.close()


def test_an_unreachable_server_or_a_password_in_the_url_is_one_sentence(pg, tmp_path):
    nobody = f"postgresql://care@127.0.0.1:{postgres._free_port()}/org?passfile={pg.passfile}"
    with pytest.raises(StorageError, match=r"^the PostgreSQL database org on 127\.0\.0\.1:\d+ "
                                           r"cannot be reached: [^\n]*\.$"):
        OrgStore.open(nobody)
    with pytest.raises(StorageError, match="holds a password: put it in a password file"):
        OrgStore.open(f"postgresql://care:{postgres.CARE_PASSWORD}@127.0.0.1:{pg.port}/org_1")


def test_the_commands_take_a_postgresql_url(pg):
    """The administrator assigns a household with the web page's command against the
    organisation's server; a URL with a password is refused with one sentence, not a trace."""
    url = pg.database()
    def org_web(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "org.web", *args], text=True,
                              capture_output=True, cwd=ROOT, timeout=60)
    done = org_web("assign", "worker-1", ONE, "--db", url)
    assert done.returncode == 0, done.stderr
    store = OrgStore.open(url)
    assert store.households_for("worker-1") == [ONE]
    store.close()
    done = org_web("serve", "--db", url.replace("care@", f"care:{postgres.CARE_PASSWORD}@"),
                   "--accounts", "/nonexistent/accounts.json", "--port", "0")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "holds a password: put it in a password file" in done.stderr
