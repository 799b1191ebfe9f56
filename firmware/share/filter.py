"""The consent filter (issue 18, docs/care.md), run by the `bridge` role next to share/status.

It keeps the hub's `events` of recent time-outs in the share database. When a time-out ends (and
again when a later event of it arrives, such as its evaluation), the time-out goes into the
filter's own queue. While the bridge to the care organisation is up (`bridge/link`, the broker's
own notice), the queue is handed to the bus: each time-out is summarised with mqtt.shared under
the consent *of that moment*, sealed to the organisation's age key and published on
`share/summary`, which the bridge forwards. So a withdrawal covers what waits in the queue, and
nothing piles up in Mosquitto's bridge queue while the link is down.

A partner's own SMS (relayed by the caller on `partner/<p>/share-request`) withdraws that
partner's consent at once, or asks for the access log; the answer goes back to that partner only
(`partner/<p>/share-reply`). A withdrawal also sends a sealed `consent` message, so the
organisation removes what it holds of that partner's withdrawn categories. The organisation's
reads (`org/access`) go into the access log. Without the organisation's key nothing leaves: the
fault `share.no_key` says so, and no plaintext is ever published.
"""
from __future__ import annotations

import hashlib
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyrage

from core.errors import StorageError
from firmware.share import access_log, consent_state, outbox
from firmware.share.state import connect
from mqtt import schemas
from mqtt.client import BusClient, Message
from mqtt.schemas import Partner
from mqtt.seal import Kind, SealError, recipient, seal
from mqtt.shared import (
    CATEGORIES,
    Category,
    ConsentChange,
    ConsentSet,
    SharedTimeout,
    SharedTopics,
    summarise,
)

log = logging.getLogger(__name__)

Plain = SharedTimeout | SharedTopics | ConsentChange
# a time-out's thermometer starts with the suggestions of the hour before it
BEFORE_START = timedelta(hours=1)


def load_key(path: Path) -> tuple[pyrage.x25519.Recipient | None, str | None]:
    """The organisation's age public key from `path`, or (None, one sentence why not)."""
    try:
        text = Path(path).read_text().strip()
    except FileNotFoundError:
        return None, (f"no organisation key at {path}: nothing is shared until the installer "
                      "sets up the link (org.toml's age_recipient, docs/care.md)")
    except (OSError, UnicodeDecodeError) as e:
        return None, f"the organisation key {path} cannot be read: {e}"
    try:
        return recipient(text), None
    except SealError as e:
        return None, str(e)


def _digest(summary: SharedTimeout | SharedTopics) -> str:
    """Content without the message id and time: the same summary again is not sent again."""
    body = summary.model_dump_json(exclude={"id", "ts"})
    return hashlib.sha256(body.encode()).hexdigest()


def _nothing_shared(s: SharedTimeout) -> bool:
    return all(v is None for v in (s.started, s.minutes, s.rounds, s.outcome, s.early_returns,
                                   s.calls, s.evaluation, s.thermometer))


class ConsentFilter:
    def __init__(self, bus: BusClient, state_dir: Path, *, base: ConsentSet,
                 retention_days: int, key: pyrage.x25519.Recipient | None,
                 key_problem: str | None = None, poll_s: float = 5.0,
                 clock: Callable[[], datetime] | None = None):
        self.bus = bus
        self.household = bus.household
        self.base = base
        self.retention = timedelta(days=retention_days)
        self.retention_days = retention_days
        self.key = key
        self.key_problem = key_problem if key is None else None
        if key is None and self.key_problem is None:
            self.key_problem = "no organisation key: nothing is shared"
        self.clock = clock or bus.clock
        self.poll_s = poll_s
        self.link_up = threading.Event()
        self.sent = 0
        self._db = connect(state_dir)
        self._lock = threading.Lock()      # the one connection, and a send against a withdrawal
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- life cycle ----------------------------------------------------------------------------
    def start(self) -> ConsentFilter:
        self.bus.on("events", self._guard(self._on_event))
        self.bus.on("bridge/link", self._guard(self._on_link))
        self.bus.on("partner/{partner}/share-request", self._guard(self._on_request))
        self.bus.on("org/access", self._guard(self._on_access))
        self.bus.start()
        self._publish_health()
        self._thread = threading.Thread(target=self._pump_loop, name="share-filter", daemon=True)
        self._thread.start()
        return self

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(10)
        with self._lock:
            self._db.close()

    def consent(self) -> ConsentSet:
        with self._lock:
            return consent_state.current(self._db, self.base)

    def queued(self) -> int:
        with self._lock:
            return outbox.size(self._db)

    # -- inputs --------------------------------------------------------------------------------
    def _guard(self, handler: Callable[[Message], None]) -> Callable[[Message], None]:
        """A message the filter cannot use is logged with its reason; the service runs on. A
        failed save raises StorageError, so the bus holds the message and it comes again."""
        def run(m: Message) -> None:
            try:
                handler(m)
            except StorageError:
                raise
            except (ValueError, TypeError, sqlite3.Error) as e:
                log.warning("share: a message on %s was not used: %s", m.topic, str(e)[:200])
        return run

    def _on_event(self, m: Message) -> None:
        e = m.payload
        if not isinstance(e, schemas.Event):
            raise TypeError("events carry an Event")
        if e.type == "suggestion" and isinstance(e.data.get("thermometer"), int):
            tid = None
        elif e.timeout_id is None:
            return
        else:
            tid = str(e.timeout_id)
        with self._lock:
            self._db.execute("INSERT OR IGNORE INTO events (id, ts, timeout_id, type, json) "
                             "VALUES (?,?,?,?,?)", (str(e.id), e.ts.astimezone(UTC).isoformat(), tid, e.type,
                                                    e.model_dump_json()))
            if tid is not None and (e.type == "ended" or self._db.execute(
                    "SELECT 1 FROM events WHERE timeout_id=? AND type='ended'", (tid,)).fetchone()):
                outbox.add_timeout(self._db, tid)
                self._wake.set()
            if e.type == "ended":
                self._prune()

    def _on_link(self, m: Message) -> None:
        up = m.payload == "1"
        if up != self.link_up.is_set():
            log.info("share: the bridge to the organisation is %s", "up" if up else "down")
        (self.link_up.set if up else self.link_up.clear)()
        self._wake.set()

    def _on_request(self, m: Message) -> None:
        req = m.payload
        partner: Partner = "a" if m.partner == "a" else "b"    # the topic names it (contract)
        if not isinstance(req, schemas.ShareRequest) or m.partner not in schemas.PARTNERS:
            raise TypeError("a share request carries a ShareRequest on a partner's topic")
        if req.kind == "withdraw":
            cats = self.withdraw(partner, req.categories or list(CATEGORIES), who=partner)
            reply = self.bus.make(schemas.ShareReply, kind="withdrawn", categories=cats)
        else:
            with self._lock:
                shown = access_log.entries(self._db, last=10)
            reply = self.bus.make(schemas.ShareReply, kind="access_log", entries=shown)
            log.info("share: the access log was sent to partner %s", partner)
        self.bus.publish(f"partner/{partner}/share-reply", reply)

    def _on_access(self, m: Message) -> None:
        n = m.payload
        if not isinstance(n, schemas.AccessNotice):
            raise TypeError("org/access carries an AccessNotice")
        with self._lock:
            access_log.record(self._db, f"worker.{n.worker}", f"org.{n.action}",
                              allowed=n.allowed, at=n.ts)

    # -- consent -------------------------------------------------------------------------------
    def withdraw(self, partner: Partner, categories: Iterable[str], *, who: str) -> list[Category]:
        """At once: the consent, the log and a sealed notice to the organisation; what waits in
        the queue is summarised under the new consent when it is sent (or not at all)."""
        wanted = set(categories)
        cats = [c for c in CATEGORIES if c in wanted]
        with self._lock:
            # the log line first: a change that is not in the log must not happen (R6)
            access_log.record(self._db, who, "consent.withdraw", f"{partner}:" + ",".join(cats),
                              at=self.clock())
            consent_state.change(self._db, partner, cats, allowed=False, who=who, at=self.clock())
            outbox.add_consent(self._db, ConsentChange(
                ts=self.clock(), household=self.household, partner=partner,
                withdrawn=cats, consent=consent_state.current(self._db, self.base),
                retention_days=self.retention_days))
        log.info("share: partner %s withdrew consent for %s", partner, ", ".join(cats))
        self._wake.set()
        return cats

    # -- sending -------------------------------------------------------------------------------
    def _pump_loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.poll_s)   # the installer's `consent --give` queues from outside
            self._wake.clear()
            try:
                self.pump()
            except Exception:       # a bad row must not end the sender
                log.exception("share: sending the queue failed")

    def pump(self) -> int:
        """Hand what waits to the bus while the link is up; how many summaries went."""
        n = 0
        if self.key is None:
            return 0
        while not self._stop.is_set() and self.link_up.is_set() and self.bus.connected.is_set():
            with self._lock:
                rows = outbox.pending(self._db)[:1]
                if not rows:
                    return n
                row = rows[0]
                for kind, model, mark in self._build(row):
                    self.bus.publish("share/summary", seal(model, self.household, kind, self.key))
                    if mark:
                        self._db.execute("INSERT OR REPLACE INTO sent (key, digest) VALUES (?,?)",
                                         mark)
                    n += 1
                    self.sent += 1
                outbox.done(self._db, row)
        return n

    def _build(self, row: outbox.Row) -> list[tuple[Kind, Plain, tuple[str, str] | None]]:
        """(kind, plaintext, the mark that it went) for one queued row, under today's consent."""
        if row.kind == "consent":
            return [("consent", ConsentChange.model_validate_json(row.payload or ""), None)]
        tid = row.key.split(":", 1)[1]
        consent = consent_state.current(self._db, self.base)
        out: list[tuple[Kind, Plain, tuple[str, str] | None]] = []
        for s in summarise(self.household, self._events(tid), consent):
            if isinstance(s, SharedTimeout) and _nothing_shared(s):
                continue                       # not even that it happened leaves
            if isinstance(s, SharedTimeout) and s.started is None:
                s = s.model_copy(update={"ts": self.clock()})   # its start was not consented
            key, digest = f"{tid}:{s.kind}", _digest(s)
            if self._db.execute("SELECT 1 FROM sent WHERE key=? AND digest=?",
                                (key, digest)).fetchone():
                continue
            out.append((s.kind, s, (key, digest)))
        return out

    def _events(self, tid: str) -> list[schemas.Event]:
        rows = self._db.execute("SELECT json FROM events WHERE timeout_id=? ORDER BY ts",
                                (tid,)).fetchall()
        events = [schemas.Event.model_validate_json(r[0]) for r in rows]
        start = next((e.ts for e in events if e.type == "started"), None)
        if start is not None:
            before = self._db.execute(
                "SELECT json FROM events WHERE timeout_id IS NULL AND ts >= ? AND ts <= ? "
                "ORDER BY ts", ((start - BEFORE_START).astimezone(UTC).isoformat(),
                                start.astimezone(UTC).isoformat())).fetchall()
            events = [schemas.Event.model_validate_json(r[0]) for r in before] + events
        return sorted(events, key=lambda e: e.ts)

    def _prune(self) -> None:
        """Events older than the plan's retention leave the share database (R11)."""
        cutoff = (self.clock() - self.retention).astimezone(UTC).isoformat()
        self._db.execute("DELETE FROM events WHERE ts < ?", (cutoff,))

    def _publish_health(self) -> None:
        faults = [] if self.key_problem is None else [schemas.Fault(
            code="share.no_key", service="bridge", since=self.clock(), reason=self.key_problem[:150])]
        if faults:
            log.error("share: %s", self.key_problem)
        self.bus.publish("bridge/health", self.bus.make(schemas.Health, faults=faults))

