"""The hub's event log and the procedure's saved state, in one SQLite file (WAL).

The log is append-only (a trigger refuses updates); only the retention limit from the household
plan removes rows, oldest first. Events carry codes and numbers, never names or content.
"""
from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from core.durable import open_durable

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    ts TEXT NOT NULL,
    type TEXT NOT NULL,
    category TEXT NOT NULL,
    partner TEXT,
    timeout_id TEXT,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_ts ON events(ts);
CREATE TRIGGER IF NOT EXISTS events_append_only BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'the event log is append-only'); END;
CREATE TABLE IF NOT EXISTS procedure_state (
    k INTEGER PRIMARY KEY CHECK (k = 1),
    snapshot TEXT NOT NULL
);
-- A step's bus messages, saved with the step and sent after it (docs/reliability.md, "Step")
CREATE TABLE IF NOT EXISTS unsent (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    topic TEXT NOT NULL,
    payload TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class Unsent:
    id: str
    topic: str        # relative to the household's prefix
    payload: str      # the message as JSON


@dataclass(frozen=True)
class LoggedEvent:
    id: str
    ts: datetime
    type: str
    category: str
    partner: str | None
    timeout_id: str | None
    data: dict[str, Any]


class HubDatabase:
    def __init__(self, path: Path, *, read_only: bool = False):
        """`read_only` (what `timeout-hub log` uses) never writes to the hub's state: no file or
        folder is created, no schema, no journal mode, no checkpoint. A WAL reader needs the -shm
        index: while the hub runs (its -wal exists) the hub's own -wal and -shm are read; when
        there is no -wal every event is in the database file, which is then opened `immutable`,
        so SQLite creates no -wal or -shm beside it (a reader's new -shm, owned by whoever ran
        the command, could lock the hub out of its own log)."""
        self.path = Path(path)
        if read_only:
            self._c = open_durable(self.path, read_only=True)
            self._lock = threading.Lock()
            return
        self._c = open_durable(self.path)   # synchronous=FULL: a power cut must not undo a step
        self._c.executescript(_SCHEMA)
        self._lock = threading.Lock()

    def save_step(self, snapshot: dict[str, Any], events: list[LoggedEvent],
                  unsent: Sequence[Unsent] = (), sent: Sequence[str] = ()) -> None:
        """One transaction per procedure step: its events, the state after it and the bus
        messages it makes (`unsent`, sent once this returns); `sent` are earlier steps' messages
        that are in the bus outbox by now."""
        with self._lock:
            c = self._c
            c.execute("BEGIN IMMEDIATE")
            try:
                c.executemany("DELETE FROM unsent WHERE id = ?", [(i,) for i in sent])
                c.executemany("INSERT OR IGNORE INTO unsent (id, topic, payload) VALUES (?, ?, ?)",
                              [(u.id, u.topic, u.payload) for u in unsent])
                c.executemany(
                    "INSERT OR IGNORE INTO events (id, ts, type, category, partner, timeout_id, data) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [(e.id, e.ts.isoformat(), e.type, e.category, e.partner, e.timeout_id,
                      json.dumps(e.data, sort_keys=True)) for e in events])
                c.execute("INSERT OR REPLACE INTO procedure_state (k, snapshot) VALUES (1, ?)",
                          (json.dumps(snapshot),))
                c.execute("COMMIT")
            except BaseException:
                c.execute("ROLLBACK")
                raise

    def unsent(self) -> list[Unsent]:
        """Messages of saved steps that may not have reached the bus outbox (a crash after the
        commit): sent again at start; receivers drop a repeated id."""
        with self._lock:
            rows = self._c.execute("SELECT id, topic, payload FROM unsent ORDER BY seq").fetchall()
        return [Unsent(*r) for r in rows]

    def load_snapshot(self) -> dict[str, Any] | None:
        with self._lock:
            row = self._c.execute("SELECT snapshot FROM procedure_state WHERE k = 1").fetchone()
        return json.loads(row[0]) if row else None

    def events(self, since: datetime | None = None, category: str | None = None) -> list[LoggedEvent]:
        q, args = "SELECT id, ts, type, category, partner, timeout_id, data FROM events WHERE 1=1", []
        if since is not None:
            q += " AND ts >= ?"
            args.append(since.isoformat())
        if category:
            q += " AND category = ?"
            args.append(category)
        with self._lock:
            rows = self._c.execute(q + " ORDER BY seq", args).fetchall()
        return [LoggedEvent(i, datetime.fromisoformat(ts), t, c, p, tid, json.loads(d))
                for i, ts, t, c, p, tid, d in rows]

    def newest(self) -> datetime | None:
        """The time of the newest event in the log (None when it is empty)."""
        with self._lock:
            row = self._c.execute("SELECT ts FROM events ORDER BY seq DESC LIMIT 1").fetchone()
        return datetime.fromisoformat(row[0]) if row else None

    def prune(self, now: datetime, retention_days: int) -> int:
        with self._lock:
            cur = self._c.execute("DELETE FROM events WHERE ts < ?",
                                  ((now - timedelta(days=retention_days)).isoformat(),))
            return cur.rowcount

    def close(self) -> None:
        with self._lock:
            self._c.close()
