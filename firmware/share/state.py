"""The share service's own state (SQLite in its state folder): the access log, consent changes,
the events of recent time-outs and the queue of what may leave. One file, opened by the running
service and by the installer's commands (`consent`, `access-log`, `report`) alike."""
from __future__ import annotations

import sqlite3
from pathlib import Path

from core.durable import open_durable

DB_NAME = "share.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS access_log (
    seq INTEGER PRIMARY KEY, ts TEXT NOT NULL, who TEXT NOT NULL, action TEXT NOT NULL,
    detail TEXT NOT NULL, allowed INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS consent_change (
    seq INTEGER PRIMARY KEY, ts TEXT NOT NULL, partner TEXT NOT NULL, category TEXT NOT NULL,
    allowed INTEGER NOT NULL, who TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    id TEXT PRIMARY KEY, ts TEXT NOT NULL, timeout_id TEXT, type TEXT NOT NULL, json TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS events_by_timeout ON events (timeout_id);
CREATE TABLE IF NOT EXISTS queue (
    seq INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE, kind TEXT NOT NULL, payload TEXT);
CREATE TABLE IF NOT EXISTS sent (key TEXT PRIMARY KEY, digest TEXT NOT NULL);
"""


def connect(state_dir: Path | str) -> sqlite3.Connection:
    """The share database (made on first use, mode 0600); StorageError in one sentence."""
    conn = open_durable(Path(state_dir) / DB_NAME)
    conn.executescript(_SCHEMA)
    return conn
