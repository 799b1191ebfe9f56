"""The care organisation's store of consented summaries, per household: SQLite, the embedded
default (a file path), or PostgreSQL on an organisation's server (a `postgresql://` URL,
org/store_pg.py; docs/care.md says how to set it up).

What is kept: the opened `mqtt.shared` summaries (one row per time-out, replaced when a newer
summary of the same time-out arrives), which care worker is assigned to which household, and the
access log (who read what, when), which is also mirrored back to the household (R6).
Retention: `prune()` drops what is older than the household's retention days; `wipe()` drops a
household's shared data when consent is withdrawn or the household leaves (R11).
"""
from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import TypeAdapter

from core.durable import open_durable
from core.errors import StorageError
from mqtt.shared import RETENTION_DAYS, ConsentSet, SharedTimeout, SharedTopics

if TYPE_CHECKING:
    from org.store_pg import PgDb

Summary = SharedTimeout | SharedTopics
_SUMMARY: TypeAdapter[Summary] = TypeAdapter(Summary)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS summaries (
    household TEXT NOT NULL,
    key TEXT NOT NULL,          -- the time-out id, or 'topics:<ts>'
    ts TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (household, key)
);
CREATE TABLE IF NOT EXISTS consent (
    household TEXT PRIMARY KEY,
    consent TEXT NOT NULL,      -- the household's last ConsentSet (JSON)
    retention_days INTEGER NOT NULL,
    ts TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS mirrored (   -- how far the access log was told to the households
    one INTEGER PRIMARY KEY CHECK (one = 1),
    seq INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS assignments (
    worker TEXT NOT NULL,
    household TEXT NOT NULL,
    PRIMARY KEY (worker, household)
);
CREATE TABLE IF NOT EXISTS access (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    ts TEXT NOT NULL,
    worker TEXT NOT NULL,
    household TEXT NOT NULL,
    action TEXT NOT NULL,
    allowed INTEGER NOT NULL
);
CREATE TRIGGER IF NOT EXISTS access_no_update BEFORE UPDATE ON access
    BEGIN SELECT RAISE(ABORT, 'the access log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS access_no_delete BEFORE DELETE ON access
    BEGIN SELECT RAISE(ABORT, 'the access log is append-only'); END;
"""


# an upsert both databases speak: a newer summary of the same time-out replaces the older one
_PUT = ("INSERT INTO summaries (household, key, ts, body) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (household, key) DO UPDATE SET ts = excluded.ts, body = excluded.body")


def _key(item: Summary) -> str:
    return str(item.timeout_id) if isinstance(item, SharedTimeout) else f"topics:{item.ts.isoformat()}"


def _row(household: str, item: Summary) -> tuple[str, str, str, str]:
    return household, _key(item), item.ts.astimezone(UTC).isoformat(), item.model_dump_json()


@dataclass(frozen=True)
class Access:
    ts: datetime
    worker: str
    household: str
    action: str
    allowed: bool


class _SqliteDb:
    """The embedded default: one SQLite file (core.durable: WAL, owner-only)."""

    def __init__(self, path: Path):
        self.path = path
        self._c = open_durable(path)
        try:
            self._c.executescript(_SCHEMA)
        except sqlite3.Error as e:
            raise StorageError(f"{path}: the organisation's store cannot be set up: {e}.") from e

    @contextmanager
    def transaction(self, write: bool = True) -> Iterator[_SqliteDb]:
        try:
            self._c.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield self
            except BaseException:
                self._c.execute("ROLLBACK")
                raise
            self._c.execute("COMMIT")
        except sqlite3.Error as e:
            raise StorageError(f"{self.path}: the organisation's store cannot be used: {e}.") from e

    def run(self, sql: str, args: Sequence[Any] = ()) -> int:
        return self._c.execute(sql, args).rowcount

    def rows(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self._c.execute(sql, args).fetchall()

    def many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self._c.executemany(sql, rows)

    def lock_access_log(self) -> None:
        """BEGIN IMMEDIATE already serialises the writers: seq order is commit order."""

    def close(self) -> None:
        self._c.close()


class OrgStore:
    """The store's one API over either database. The SQL is shared (SQLite's `?` placeholders
    become psycopg's `%s`); what both backends promise: a consent change and a wipe in one
    transaction, the access log append-only and read in the order it was written."""

    def __init__(self, path: Path | str):
        where = str(path)
        self.where = where      # what opens it again (another process: OrgStore(store.where))
        self.path: Path | None = None
        if is_url(where):
            from org.store_pg import PgDb  # psycopg: only for an organisation's server
            self._db: _SqliteDb | PgDb = PgDb(where)
        else:
            self.path = Path(path)
            self._db = _SqliteDb(self.path)
        self._lock = threading.Lock()

    @classmethod
    def open(cls, where: Path | str) -> OrgStore:
        """A file path: SQLite; a `postgresql://` URL: PostgreSQL (docs/care.md)."""
        return cls(where)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _tx(self, write: bool = True) -> Iterator[_SqliteDb | PgDb]:
        with self._lock, self._db.transaction(write) as db:
            yield db

    # -- summaries --------------------------------------------------------------------------
    def put(self, item: Summary) -> None:
        with self._tx() as db:
            db.run(_PUT, _row(item.household, item))

    def summaries(self, household: str, since: datetime | None = None) -> list[Summary]:
        q, args = "SELECT body FROM summaries WHERE household = ?", [household]
        if since is not None:
            q += " AND ts >= ?"
            args.append(since.astimezone(UTC).isoformat())
        with self._tx(write=False) as db:
            rows = db.rows(q + " ORDER BY ts, key", args)
        return [_SUMMARY.validate_json(body) for (body,) in rows]

    def households(self) -> list[str]:
        with self._tx(write=False) as db:
            rows = db.rows("SELECT DISTINCT household FROM summaries UNION "
                           "SELECT household FROM assignments ORDER BY 1")
        return [h for (h,) in rows]

    def wipe(self, household: str) -> int:
        """Drop every shared summary of a household and its consent record; returns how many
        summaries were dropped. The access log stays: it records who read, not what."""
        with self._tx() as db:
            db.run("DELETE FROM consent WHERE household = ?", (household,))
            return db.run("DELETE FROM summaries WHERE household = ?", (household,))

    def replace_all(self, household: str, items: list[Summary]) -> None:
        """Replace what is held of a household by `items` in one transaction (a consent change
        re-filters everything at once: never half old, half new)."""
        with self._tx() as db:
            db.run("DELETE FROM summaries WHERE household = ?", (household,))
            if items:
                db.many(_PUT, [_row(household, i) for i in items])

    # -- the household's consent and retention (from its sealed consent messages) -------------
    def set_consent(self, household: str, consent: ConsentSet, retention_days: int,
                    now: datetime) -> None:
        with self._tx() as db:
            db.run("INSERT INTO consent (household, consent, retention_days, ts) "
                   "VALUES (?, ?, ?, ?) ON CONFLICT (household) DO UPDATE SET "
                   "consent = excluded.consent, retention_days = excluded.retention_days, "
                   "ts = excluded.ts",
                   (household, consent.model_dump_json(), retention_days,
                    now.astimezone(UTC).isoformat()))

    def consent_of(self, household: str) -> tuple[ConsentSet | None, int]:
        """The household's last consent (None: none received yet) and its retention days."""
        with self._tx(write=False) as db:
            rows = db.rows("SELECT consent, retention_days FROM consent WHERE household = ?",
                           (household,))
        if not rows:
            return None, RETENTION_DAYS
        return ConsentSet.model_validate_json(rows[0][0]), int(rows[0][1])

    def prune(self, household: str, retention_days: int, now: datetime) -> int:
        cutoff = (now - timedelta(days=retention_days)).astimezone(UTC).isoformat()
        with self._tx() as db:
            return db.run("DELETE FROM summaries WHERE household = ? AND ts < ?",
                          (household, cutoff))

    # -- who may see what -------------------------------------------------------------------
    def assign(self, worker: str, household: str) -> None:
        with self._tx() as db:
            db.run("INSERT INTO assignments (worker, household) VALUES (?, ?) "
                   "ON CONFLICT DO NOTHING", (worker, household))

    def unassign(self, worker: str, household: str) -> None:
        with self._tx() as db:
            db.run("DELETE FROM assignments WHERE worker = ? AND household = ?",
                   (worker, household))

    def households_for(self, worker: str) -> list[str]:
        with self._tx(write=False) as db:
            rows = db.rows("SELECT household FROM assignments WHERE worker = ? "
                           "ORDER BY household", (worker,))
        return [h for (h,) in rows]

    def may_read(self, worker: str, household: str) -> bool:
        return household in self.households_for(worker)

    # -- the access log (R6) ----------------------------------------------------------------
    def log_access(self, worker: str, household: str, action: str, allowed: bool,
                   now: datetime) -> Access:
        entry = Access(now.astimezone(UTC), worker, household, action, allowed)
        with self._tx() as db:
            db.lock_access_log()
            db.run("INSERT INTO access (ts, worker, household, action, allowed) "
                   "VALUES (?, ?, ?, ?, ?)",
                   (entry.ts.isoformat(), worker, household, action, int(allowed)))
        return entry

    def access_log(self, household: str) -> list[Access]:
        with self._tx(write=False) as db:
            rows = db.rows("SELECT ts, worker, household, action, allowed FROM access "
                           "WHERE household = ? ORDER BY seq", (household,))
        return [Access(datetime.fromisoformat(ts), w, h, a, bool(ok)) for ts, w, h, a, ok in rows]

    def unmirrored(self, limit: int = 100) -> list[tuple[int, Access]]:
        """Access-log entries not yet told to their household (org/service.py), oldest first;
        whichever process wrote them (the web page, the service)."""
        with self._tx(write=False) as db:
            told = db.rows("SELECT seq FROM mirrored")
            rows = db.rows("SELECT seq, ts, worker, household, action, allowed FROM access "
                           "WHERE seq > ? ORDER BY seq LIMIT ?",
                           (told[0][0] if told else 0, limit))
        return [(seq, Access(datetime.fromisoformat(ts), w, h, a, bool(ok)))
                for seq, ts, w, h, a, ok in rows]

    def mark_mirrored(self, seq: int) -> None:
        with self._tx() as db:
            db.run("INSERT INTO mirrored (one, seq) VALUES (1, ?) "
                   "ON CONFLICT (one) DO UPDATE SET seq = excluded.seq", (seq,))


def db_location(text: str) -> Path | str:
    """`--db` on a command line: a postgresql:// URL as it is, anything else a SQLite file. A URL
    with a password is refused when opened (the password belongs in a password file)."""
    return text if is_url(text) else Path(text)


def is_url(where: Path | str) -> bool:
    """A `postgresql://` (or `postgres://`) URL rather than a SQLite file."""
    return isinstance(where, str) and where.startswith(("postgresql://", "postgres://"))


__all__ = ["Access", "OrgStore", "Summary", "db_location", "is_url"]
