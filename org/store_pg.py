"""The OrgStore's PostgreSQL connection (an organisation's server; org/store.py holds the shared
SQL, docs/care.md says how to set it up). Imported only for a `postgresql://` URL, so the
embedded SQLite default needs no psycopg.

The password never travels on a command line: a URL that carries one is refused; libpq reads it
from `passfile=` in the URL or from PGPASSFILE. A connection that fails or drops raises one
StorageError sentence and is opened again on the next call, so the service keeps retrying as it
does for SQLite.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

from core.errors import StorageError

# TEXT in the "C" collation: ISO timestamps and household ids sort byte-wise, as in SQLite,
# whatever locale the organisation's cluster was created with.
SCHEMA = (
    """CREATE TABLE IF NOT EXISTS summaries (
        household TEXT COLLATE "C" NOT NULL, key TEXT COLLATE "C" NOT NULL,
        ts TEXT COLLATE "C" NOT NULL, body TEXT NOT NULL, PRIMARY KEY (household, key))""",
    """CREATE TABLE IF NOT EXISTS consent (
        household TEXT COLLATE "C" PRIMARY KEY, consent TEXT NOT NULL,
        retention_days INTEGER NOT NULL, ts TEXT COLLATE "C" NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS mirrored (
        one INTEGER PRIMARY KEY CHECK (one = 1), seq BIGINT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS assignments (
        worker TEXT COLLATE "C" NOT NULL, household TEXT COLLATE "C" NOT NULL,
        PRIMARY KEY (worker, household))""",
    """CREATE TABLE IF NOT EXISTS access (
        seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, ts TEXT COLLATE "C" NOT NULL,
        worker TEXT COLLATE "C" NOT NULL, household TEXT COLLATE "C" NOT NULL,
        action TEXT NOT NULL, allowed INTEGER NOT NULL)""",
    """CREATE OR REPLACE FUNCTION org_access_append_only() RETURNS trigger LANGUAGE plpgsql
        AS $$ BEGIN RAISE EXCEPTION 'the access log is append-only'; END $$""",
    """CREATE OR REPLACE TRIGGER access_append_only BEFORE UPDATE OR DELETE OR TRUNCATE
        ON access FOR EACH STATEMENT EXECUTE FUNCTION org_access_append_only()""",
)
_SCHEMA_LOCK = 1818   # an advisory lock: two processes creating the schema at once would collide


def describe(url: str) -> str:
    """The database a URL names, for messages (host, port, database; never a password)."""
    try:
        d = conninfo_to_dict(url)
    except psycopg.Error:
        return "the PostgreSQL database"
    where = d.get("host") or "the local socket"
    return f"PostgreSQL database {d.get('dbname') or d.get('user') or '?'} on {where}" + (
        f":{d['port']}" if d.get("port") else "")


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0].rstrip(".")


class PgDb:
    """One psycopg connection in autocommit mode; the OrgStore's lock serialises its use."""

    placeholder = "%s"

    def __init__(self, url: str):
        try:
            info = conninfo_to_dict(url)
        except psycopg.Error as e:
            raise StorageError(f"{url!r} is not a PostgreSQL URL: {_first_line(e)}.") from e
        if info.get("password"):
            raise StorageError("the PostgreSQL URL holds a password: put it in a password file "
                               "(passfile= in the URL, or PGPASSFILE) instead, so it is never "
                               "on a command line.")
        self.url, self.name = url, describe(url)
        self._c: psycopg.Connection[Any] | None = None
        self._closed = False
        with self.transaction() as db:
            db.run("SELECT pg_advisory_xact_lock(?)", (_SCHEMA_LOCK,))
            for stmt in SCHEMA:
                db.run(stmt)

    def _conn(self) -> psycopg.Connection[Any]:
        if self._closed:   # a thread still running after close() must not open it again
            raise StorageError(f"the connection to the {self.name} was closed.")
        if self._c is None or self._c.closed or self._c.broken:
            if self._c is not None:
                self._c.close()
            self._c = None
            try:
                self._c = psycopg.connect(self.url, autocommit=True, connect_timeout=10)
            except psycopg.Error as e:
                raise StorageError(f"the {self.name} cannot be reached: {_first_line(e)}.") from e
        return self._c

    @contextmanager
    def transaction(self, write: bool = True) -> Iterator[PgDb]:
        """All statements inside in one transaction (read or write alike); any failure as one
        StorageError sentence (a dropped connection is opened again on the next call)."""
        conn = self._conn()
        try:
            with conn.transaction():
                yield self
        except psycopg.OperationalError as e:
            conn.close()
            raise StorageError(f"the connection to the {self.name} failed: {_first_line(e)}.") from e
        except psycopg.Error as e:
            raise StorageError(f"the {self.name} refused a change: {_first_line(e)}.") from e

    def run(self, sql: str, args: Sequence[Any] = ()) -> int:
        cur = self._conn().execute(sql.replace("?", "%s"), args or None)
        return cur.rowcount

    def rows(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self._conn().execute(sql.replace("?", "%s"), args or None).fetchall()

    def many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        with self._conn().cursor() as cur:
            cur.executemany(sql.replace("?", "%s"), rows)

    def lock_access_log(self) -> None:
        """Access-log entries committed in their seq order, so the mirror (which remembers the
        last seq it told) never skips one that a slower writer committed later."""
        self.run("LOCK TABLE access IN SHARE ROW EXCLUSIVE MODE")

    def close(self) -> None:
        self._closed = True
        if self._c is not None:
            self._c.close()
