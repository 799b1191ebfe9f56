"""The household's consent now (R9): the plan's consent, then every change in order (a partner's
withdrawal by SMS, the installer giving it again). Kept in the share database, so it survives a
restart and the running filter sees a change made by `timeout-hub consent` at its next send."""
from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from datetime import datetime

from mqtt.schemas import Partner, now_utc
from mqtt.shared import CATEGORIES, Category, ConsentSet


def current(conn: sqlite3.Connection, base: ConsentSet) -> ConsentSet:
    sets: dict[str, set[str]] = {"a": set(base.a), "b": set(base.b)}
    for partner, category, allowed in conn.execute(
            "SELECT partner, category, allowed FROM consent_change ORDER BY seq"):
        (sets[partner].add if allowed else sets[partner].discard)(category)
    return ConsentSet.model_validate({"a": sets["a"], "b": sets["b"]})


def change(conn: sqlite3.Connection, partner: Partner, categories: Iterable[str], *,
           allowed: bool, who: str, at: datetime | None = None) -> list[Category]:
    """Withdraw (allowed=False) or give `categories` for `partner`; the categories, checked."""
    cats = [c for c in CATEGORIES if c in set(categories)]
    unknown = sorted(set(categories) - set(CATEGORIES))
    if unknown:
        raise ValueError(f"{unknown[0]!r} is not a category (one of {', '.join(CATEGORIES)})")
    ts = (at or now_utc()).isoformat()
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.executemany(
            "INSERT INTO consent_change (ts, partner, category, allowed, who) VALUES (?,?,?,?,?)",
            [(ts, partner, c, int(allowed), who) for c in cats])
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return cats
