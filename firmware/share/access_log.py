"""The household's access log (R6): every report, export, consent change, bridge change and
reset, and every read the care organisation reports back (`org/access`), with who and when.
Both partners can read it by SMS (`LOGBOEK` / `ACCESS LOG`) and the installer with
`timeout-hub access-log` (docs/care.md). It names roles, never people: `installer`, `a`, `b`,
`worker.<account id>`; it never holds an answer, a name or a number.

Other commands log themselves through `record()`, e.g. `timeout-hub report`:
    record(state_dir, "installer", "report", "2026-11-01")
"""
from __future__ import annotations

import sqlite3
from datetime import datetime
from pathlib import Path

from core.errors import StorageError
from firmware.share.state import connect
from mqtt.schemas import AccessEntry, now_utc

__all__ = ["AccessEntry", "entries", "line", "record"]


def record(state_dir: Path | str | sqlite3.Connection, who: str, action: str, detail: str = "",
           *, allowed: bool = True, at: datetime | None = None) -> AccessEntry:
    """Add one entry. `who`: installer, a, b or worker.<id>; `action`: report, export,
    consent.withdraw, consent.give, bridge, reset, org.<what>; `detail`: a short code (a date,
    categories). ValueError when an argument is not such a code (nothing is written)."""
    entry = AccessEntry(ts=at or now_utc(), who=who, action=action, detail=detail, allowed=allowed)
    conn = state_dir if isinstance(state_dir, sqlite3.Connection) else connect(state_dir)
    try:
        conn.execute("INSERT INTO access_log (ts, who, action, detail, allowed) VALUES (?,?,?,?,?)",
                     (entry.ts.isoformat(), entry.who, entry.action, entry.detail, int(allowed)))
    except sqlite3.Error as e:
        raise StorageError(f"the access log cannot be written: {e}") from e
    finally:
        if conn is not state_dir:
            conn.close()
    return entry


def entries(state_dir: Path | str | sqlite3.Connection, last: int | None = None) -> list[AccessEntry]:
    """The log, oldest first (`last`: only the newest n)."""
    conn = state_dir if isinstance(state_dir, sqlite3.Connection) else connect(state_dir)
    try:
        rows = conn.execute("SELECT ts, who, action, detail, allowed FROM access_log "
                            "ORDER BY seq DESC LIMIT ?", (-1 if last is None else last,)).fetchall()
    finally:
        if conn is not state_dir:
            conn.close()
    return [AccessEntry(ts=datetime.fromisoformat(ts), who=who, action=action, detail=detail,
                        allowed=bool(ok)) for ts, who, action, detail, ok in reversed(rows)]


def line(e: AccessEntry) -> str:
    """One entry for the installer's screen."""
    return (f"{e.ts.astimezone():%Y-%m-%d %H:%M}  {e.who:<16} {e.action:<18} {e.detail}"
            + ("" if e.allowed else "  (refused)")).rstrip()
