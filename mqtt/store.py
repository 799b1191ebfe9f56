"""Per-service SQLite store (WAL): the outbox of QoS 1 messages not yet acknowledged by the
broker, the dead letters the broker refused, and the ids already handed to the application.

Durability choices:
- an outbox insert is committed with `synchronous=FULL` before `publish()` returns: an event the
  application published survives a crash or a power cut;
- the ids handed to the application are committed with `synchronous=FULL` too: the hub and the
  bridge share one Pi and one power cut, and a resent event must still be recognised;
- removals after PUBACK use `synchronous=NORMAL` (safe against a process crash): after a power
  cut at worst a message is sent again, and the receiver drops it by id.
The files are private to the service (0600; SQLite gives -wal and -shm the same mode): the outbox
holds partners' inputs.
"""
from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from core.durable import open_durable

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    qos INTEGER NOT NULL,
    retain INTEGER NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS dead_letter (
    id TEXT PRIMARY KEY,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    reason TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS seen (
    id TEXT PRIMARY KEY,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS seen_at ON seen(at);
"""


@dataclass(frozen=True)
class OutboxRow:
    seq: int
    id: str
    topic: str
    payload: bytes
    qos: int
    retain: bool


class Store:
    def __init__(self, path: Path, *, seen_memory: int = 100_000, seen_days: float = 14.0):
        self.path = Path(path)
        self._durable = open_durable(self.path, synchronous="FULL")
        os.chmod(self.path, 0o600)   # also an existing file: the outbox holds payloads
        self._durable.executescript(_SCHEMA)
        self._fast = open_durable(self.path, synchronous="NORMAL")
        self._lock = threading.Lock()
        self._seen_days = seen_days
        self._seen_memory = seen_memory
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._seen_since_prune = 0
        self._prune_seen()
        for (mid,) in self._fast.execute(
                "SELECT id FROM seen ORDER BY at DESC LIMIT ?", (seen_memory,)).fetchall()[::-1]:
            self._seen[mid] = None

    # -- outbox ---------------------------------------------------------------------------
    def add(self, msg_id: str, topic: str, payload: bytes, qos: int, retain: bool) -> OutboxRow | None:
        """Persist before sending. A retained topic keeps only its newest message (its value).
        Returns None when this id is already queued (the same event published twice)."""
        with self._lock:
            c = self._durable
            c.execute("BEGIN IMMEDIATE")
            try:
                if retain:
                    c.execute("DELETE FROM outbox WHERE topic = ? AND retain = 1", (topic,))
                cur = c.execute(
                    "INSERT OR IGNORE INTO outbox (id, topic, payload, qos, retain, created) "
                    "VALUES (?, ?, ?, ?, ?, ?)", (msg_id, topic, payload, qos, int(retain), time.time()))
                c.execute("COMMIT")
            except BaseException:
                c.execute("ROLLBACK")
                raise
            if cur.rowcount == 0:
                return None
            return OutboxRow(cur.lastrowid, msg_id, topic, payload, qos, retain)

    def has(self, msg_id: str, topics: frozenset[str]) -> bool:
        """This id is in the outbox, on one of these topics."""
        with self._lock:
            row = self._fast.execute("SELECT topic FROM outbox WHERE id = ?", (msg_id,)).fetchone()
        return row is not None and row[0] in topics

    def pending(self) -> list[OutboxRow]:
        with self._lock:
            rows = self._fast.execute(
                "SELECT seq, id, topic, payload, qos, retain FROM outbox ORDER BY seq").fetchall()
        return [OutboxRow(s, i, t, bytes(p), q, bool(r)) for s, i, t, p, q, r in rows]

    def remove(self, msg_ids: list[str]) -> None:
        if not msg_ids:
            return
        with self._lock:
            self._fast.executemany("DELETE FROM outbox WHERE id = ?", [(m,) for m in msg_ids])

    def dead_letter(self, msg_id: str, reason: str) -> None:
        with self._lock:
            c = self._fast
            c.execute("BEGIN IMMEDIATE")
            try:
                c.execute("INSERT OR REPLACE INTO dead_letter (id, topic, payload, reason, at) "
                          "SELECT id, topic, payload, ?, ? FROM outbox WHERE id = ?",
                          (reason, time.time(), msg_id))
                c.execute("DELETE FROM outbox WHERE id = ?", (msg_id,))
                c.execute("COMMIT")
            except BaseException:
                c.execute("ROLLBACK")
                raise

    def outbox_size(self) -> int:
        with self._lock:
            return self._fast.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]

    def dead_letters(self) -> list[tuple[str, str, str]]:
        with self._lock:
            return self._fast.execute("SELECT id, topic, reason FROM dead_letter ORDER BY at").fetchall()

    # -- ids already delivered to the application -------------------------------------------
    def seen(self, msg_id: str) -> bool:
        with self._lock:
            return msg_id in self._seen

    def mark_seen(self, msg_id: str, persist: bool = True) -> None:
        with self._lock:
            self._seen[msg_id] = None
            if len(self._seen) > self._seen_memory:
                self._seen.popitem(last=False)
            if persist:
                self._durable.execute("INSERT OR IGNORE INTO seen (id, at) VALUES (?, ?)",
                                   (msg_id, time.time()))
                self._seen_since_prune += 1
        if self._seen_since_prune >= 10_000:
            self._prune_seen()

    def _prune_seen(self) -> None:
        # Older ids cannot come back: the broker forgets a session after 14 days.
        with self._lock:
            self._fast.execute("DELETE FROM seen WHERE at < ?",
                               (time.time() - self._seen_days * 86400,))
            self._seen_since_prune = 0

    def close(self) -> None:
        with self._lock:
            self._durable.close()
            self._fast.close()
