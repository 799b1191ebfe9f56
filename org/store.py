"""The care organisation's store of consented summaries, per household (SQLite, the embedded
default; docs/care.md says how to use PostgreSQL instead).

What is kept: the opened `mqtt.shared` summaries (one row per time-out, replaced when a newer
summary of the same time-out arrives), which care worker is assigned to which household, and the
access log (who read what, when), which is also mirrored back to the household (R6).
Retention: `prune()` drops what is older than the household's retention days; `wipe()` drops a
household's shared data when consent is withdrawn or the household leaves (R11).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pydantic import TypeAdapter

from core.durable import open_durable
from mqtt.shared import RETENTION_DAYS, ConsentSet, SharedTimeout, SharedTopics

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
"""


def _key(item: Summary) -> str:
    return str(item.timeout_id) if isinstance(item, SharedTimeout) else f"topics:{item.ts.isoformat()}"


@dataclass(frozen=True)
class Access:
    ts: datetime
    worker: str
    household: str
    action: str
    allowed: bool


class OrgStore:
    def __init__(self, path: Path):
        self.path = Path(path)
        self._c = open_durable(self.path)
        self._c.executescript(_SCHEMA)
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._c.close()

    # -- summaries --------------------------------------------------------------------------
    def put(self, item: Summary) -> None:
        with self._lock, self._c:
            self._c.execute("INSERT OR REPLACE INTO summaries (household, key, ts, body) "
                            "VALUES (?, ?, ?, ?)",
                            (item.household, _key(item), item.ts.astimezone(UTC).isoformat(),
                             item.model_dump_json()))

    def summaries(self, household: str, since: datetime | None = None) -> list[Summary]:
        q, args = "SELECT body FROM summaries WHERE household = ?", [household]
        if since is not None:
            q += " AND ts >= ?"
            args.append(since.astimezone(UTC).isoformat())
        with self._lock:
            rows = self._c.execute(q + " ORDER BY ts", args).fetchall()
        return [_SUMMARY.validate_json(body) for (body,) in rows]

    def households(self) -> list[str]:
        with self._lock:
            rows = self._c.execute("SELECT DISTINCT household FROM summaries UNION "
                                   "SELECT household FROM assignments ORDER BY 1").fetchall()
        return [h for (h,) in rows]

    def wipe(self, household: str) -> int:
        """Drop every shared summary of a household and its consent record; returns how many
        summaries were dropped. The access log stays: it records who read, not what."""
        with self._lock, self._c:
            self._c.execute("BEGIN")
            self._c.execute("DELETE FROM consent WHERE household = ?", (household,))
            return self._c.execute("DELETE FROM summaries WHERE household = ?",
                                   (household,)).rowcount

    def replace_all(self, household: str, items: list[Summary]) -> None:
        """Replace what is held of a household by `items` in one transaction (a consent change
        re-filters everything at once: never half old, half new)."""
        rows = [(household, _key(i), i.ts.astimezone(UTC).isoformat(), i.model_dump_json())
                for i in items]
        with self._lock, self._c:
            self._c.execute("BEGIN")
            self._c.execute("DELETE FROM summaries WHERE household = ?", (household,))
            self._c.executemany("INSERT OR REPLACE INTO summaries (household, key, ts, body) "
                                "VALUES (?, ?, ?, ?)", rows)

    # -- the household's consent and retention (from its sealed consent messages) -------------
    def set_consent(self, household: str, consent: ConsentSet, retention_days: int,
                    now: datetime) -> None:
        with self._lock, self._c:
            self._c.execute("INSERT OR REPLACE INTO consent VALUES (?, ?, ?, ?)",
                            (household, consent.model_dump_json(), retention_days,
                             now.astimezone(UTC).isoformat()))

    def consent_of(self, household: str) -> tuple[ConsentSet | None, int]:
        """The household's last consent (None: none received yet) and its retention days."""
        with self._lock:
            row = self._c.execute("SELECT consent, retention_days FROM consent WHERE household = ?",
                                  (household,)).fetchone()
        if row is None:
            return None, RETENTION_DAYS
        return ConsentSet.model_validate_json(row[0]), int(row[1])

    def prune(self, household: str, retention_days: int, now: datetime) -> int:
        cutoff = (now - timedelta(days=retention_days)).astimezone(UTC).isoformat()
        with self._lock, self._c:
            return self._c.execute("DELETE FROM summaries WHERE household = ? AND ts < ?",
                                   (household, cutoff)).rowcount

    # -- who may see what -------------------------------------------------------------------
    def assign(self, worker: str, household: str) -> None:
        with self._lock, self._c:
            self._c.execute("INSERT OR IGNORE INTO assignments VALUES (?, ?)", (worker, household))

    def unassign(self, worker: str, household: str) -> None:
        with self._lock, self._c:
            self._c.execute("DELETE FROM assignments WHERE worker = ? AND household = ?",
                            (worker, household))

    def households_for(self, worker: str) -> list[str]:
        with self._lock:
            rows = self._c.execute("SELECT household FROM assignments WHERE worker = ? "
                                   "ORDER BY household", (worker,)).fetchall()
        return [h for (h,) in rows]

    def may_read(self, worker: str, household: str) -> bool:
        return household in self.households_for(worker)

    # -- the access log (R6) ----------------------------------------------------------------
    def log_access(self, worker: str, household: str, action: str, allowed: bool,
                   now: datetime) -> Access:
        entry = Access(now.astimezone(UTC), worker, household, action, allowed)
        with self._lock, self._c:
            self._c.execute("INSERT INTO access (ts, worker, household, action, allowed) "
                            "VALUES (?, ?, ?, ?, ?)",
                            (entry.ts.isoformat(), worker, household, action, int(allowed)))
        return entry

    def access_log(self, household: str) -> list[Access]:
        with self._lock:
            rows = self._c.execute("SELECT ts, worker, household, action, allowed FROM access "
                                   "WHERE household = ? ORDER BY seq", (household,)).fetchall()
        return [Access(datetime.fromisoformat(ts), w, h, a, bool(ok)) for ts, w, h, a, ok in rows]


    def unmirrored(self, limit: int = 100) -> list[tuple[int, Access]]:
        """Access-log entries not yet told to their household (org/service.py), oldest first;
        whichever process wrote them (the web page, the service)."""
        with self._lock:
            row = self._c.execute("SELECT seq FROM mirrored").fetchone()
            rows = self._c.execute("SELECT seq, ts, worker, household, action, allowed FROM access "
                                   "WHERE seq > ? ORDER BY seq LIMIT ?",
                                   (row[0] if row else 0, limit)).fetchall()
        return [(seq, Access(datetime.fromisoformat(ts), w, h, a, bool(ok)))
                for seq, ts, w, h, a, ok in rows]

    def mark_mirrored(self, seq: int) -> None:
        with self._lock, self._c:
            self._c.execute("INSERT OR REPLACE INTO mirrored VALUES (1, ?)", (seq,))


__all__ = ["Access", "OrgStore", "Summary"]
