"""The consent filter's own queue of what may leave (durable, in the share database). A row is a
time-out to summarise or a consent change; a time-out's summary is made and sealed only when it
is handed to the bus, under the consent of that moment, so a withdrawal also covers what waits
here. The bus gets it only while the bridge to the organisation is up (firmware/share/filter.py)."""
from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from mqtt.shared import ConsentChange


@dataclass(frozen=True)
class Row:
    seq: int
    key: str
    kind: str            # "timeout" (payload: None) or "consent" (payload: ConsentChange JSON)
    payload: str | None


def add_timeout(conn: sqlite3.Connection, timeout_id: str) -> None:
    """(Again) a time-out to summarise: once in the queue, at its first place."""
    conn.execute("INSERT OR IGNORE INTO queue (key, kind, payload) VALUES (?, 'timeout', NULL)",
                 (f"timeout:{timeout_id}",))


def add_consent(conn: sqlite3.Connection, change: ConsentChange) -> None:
    conn.execute("INSERT INTO queue (key, kind, payload) VALUES (?, 'consent', ?)",
                 (f"consent:{change.id}", change.model_dump_json()))


def pending(conn: sqlite3.Connection) -> list[Row]:
    return [Row(*r) for r in conn.execute("SELECT seq, key, kind, payload FROM queue ORDER BY seq")]


def done(conn: sqlite3.Connection, row: Row) -> None:
    conn.execute("DELETE FROM queue WHERE seq = ?", (row.seq,))


def size(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT count(*) FROM queue").fetchone()[0])
