"""`timeout-hub report`: the evaluation report of this hub's event log, as the care worker would
see it (docs/care.md, "The evaluation report").

The log is read read-only (never a write to the hub's state), only the shareable categories are
taken, the plan's consent is applied through mqtt.shared.summarise (what the organisation would
receive is exactly what this report shows), and the page is rendered by report.render_html. Each
run is recorded in the household's access log (R6).
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import sqlite3
import sys
import uuid
from pathlib import Path

from pydantic import ValidationError

from core.errors import ConfigError
from mqtt.schemas import Event
from mqtt.shared import CATEGORIES, ConsentSet, summarise

EXIT_USAGE = 2


class ReportInputError(ValueError):
    """Bad input for the report: the message is one sentence."""


def parse_day(option: str, text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise ReportInputError(f"{option} {text!r} is not a date like 2026-11-01") from None


def local_midnight_utc(day: dt.date) -> dt.datetime:
    """The start of `day` on this hub's clock, in UTC: the log's times are UTC strings, compared
    as text, so the bound must be written the same way."""
    return dt.datetime.combine(day, dt.time()).astimezone().astimezone(dt.UTC)


def read_events(state_dir: Path, since: dt.date) -> tuple[list[Event], int]:
    """The log's shareable events from `since` on, as bus events; and how many could not be read
    as one (left out, and said)."""
    from firmware.hub.eventlog import HubDatabase
    db_path = Path(state_dir) / "hub.sqlite3"
    if not db_path.is_file():
        raise ReportInputError(f"there is no event log at {db_path} (is --state-dir right?)")
    try:
        db = HubDatabase(db_path, read_only=True)
        try:
            logged = db.events(since=local_midnight_utc(since))
        finally:
            db.close()
    except (sqlite3.Error, ValueError, OSError) as err:
        raise ReportInputError(f"{db_path} cannot be read as the hub's event log ({err})") from None
    events, unreadable = [], 0
    for e in logged:
        if e.category not in CATEGORIES:
            continue          # faults, access and service events are never in a report
        # The call ladder's request id is a uuid string, and about one in eight uuids has a
        # digit run the bus's phone-number guard refuses; the report never needs it.
        data = {k: v for k, v in e.data.items() if k != "request_id"}
        try:
            events.append(Event(
                id=uuid.UUID(e.id), ts=e.ts if e.ts.tzinfo else e.ts.replace(tzinfo=dt.UTC),
                type=e.type, category=e.category, partner=e.partner,
                timeout_id=uuid.UUID(e.timeout_id) if e.timeout_id else None, data=data))
        except (ValidationError, ValueError):
            unreadable += 1
    return events, unreadable


def write_private(path: Path, text: str) -> None:
    """The report holds the household's data: readable by the one who made it only."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)


def record_access(share_state: Path, since: dt.date, until: dt.date) -> None:
    """R6: the report is in the household's access log (which both partners can read by SMS).
    A share state that cannot be written is one sentence; the report was made all the same."""
    from firmware.share import access_log
    try:
        access_log.record(share_state, "installer", "report", f"{since}:{until}")
    except (OSError, ValueError) as e:
        print(f"timeout-hub report: the access log in {share_state} cannot be written ({e}); "
              "note by hand that this report was made.", file=sys.stderr)


def current_consent(plan_consent: ConsentSet, share_state: Path) -> ConsentSet:
    """The consent now: the plan's, then the partners' withdrawals and the installer's changes
    kept by the consent filter (docs/care.md); the plan's alone where there is no share state."""
    from firmware.share import consent_state
    from firmware.share.state import DB_NAME, connect
    if not (Path(share_state) / DB_NAME).exists():
        return plan_consent
    conn = connect(share_state)
    try:
        return consent_state.current(conn, plan_consent)
    finally:
        conn.close()


def run(args: argparse.Namespace) -> int:
    from firmware.hub.plan import load_plan
    try:
        since = parse_day("--since", args.since)
        until = parse_day("--until", args.until) if args.until else dt.date.today()
        if until < since:
            raise ReportInputError(f"--until {until} is before --since {since}")
        if not Path(args.state_dir).is_dir():
            raise ReportInputError(f"the state folder {args.state_dir} does not exist "
                                   "(is --state-dir right?)")
        plan = load_plan(args.plan)
        events, unreadable = read_events(Path(args.state_dir), since)
    except ConfigError as e:
        from core.config import refuse
        return refuse("report", e)
    except ReportInputError as e:
        print(f"timeout-hub report: {e}.", file=sys.stderr)
        return EXIT_USAGE
    from report import render_html  # matplotlib: seconds on a Pi, so only for a good request
    from report.pdf import PdfError, print_pdf
    # R9: the consent now (the plan's, minus withdrawals), as the consent filter applies it
    try:
        consent = current_consent(
            ConsentSet.from_flags({p: c.model_dump() for p, c in plan.consent.items()}),
            Path(args.share_state))
    except (OSError, ValueError) as e:   # StorageError is both
        print(f"timeout-hub report: the consent kept in {args.share_state} cannot be read ({e}).",
              file=sys.stderr)
        return EXIT_USAGE
    items = summarise(plan.household, events, consent)
    page = render_html(plan.household, items, since, until, args.lang)
    out = Path(args.out)
    try:
        write_private(out, page)
    except OSError as e:
        print(f"timeout-hub report: cannot write {out} ({e.strerror}).", file=sys.stderr)
        return EXIT_USAGE
    record_access(Path(args.share_state), since, until)
    shown = sum(1 for i in items if i.kind == "timeout"
                and since <= i.ts.astimezone().date() <= until)
    print(f"report for {plan.household}, {since} to {until}: {shown} time-out(s), written to "
          f"{out.resolve()}")
    if unreadable:
        print(f"  {unreadable} logged event(s) could not be read and are left out")
    if args.pdf:
        try:
            print_pdf(out, Path(args.pdf))
        except PdfError as e:
            print(f"timeout-hub report: {e}.", file=sys.stderr)
            return 1
        print(f"  PDF written to {Path(args.pdf).resolve()}")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    r = sub.add_parser("report", help="the evaluation report (HTML, optionally PDF) of the "
                       "consented data, as the care worker sees it",
                       description="Reads the hub's event log (read-only), applies the plan's "
                                   "consent and writes one HTML page; --pdf also prints it "
                                   "through headless Chromium (docs/care.md).")
    r.add_argument("--since", required=True, metavar="DATE", help="first day, e.g. 2026-11-01")
    r.add_argument("--until", metavar="DATE", help="last day (default: today)")
    r.add_argument("--lang", choices=["nl", "en"], default="nl")
    r.add_argument("--out", required=True, type=Path, metavar="FILE.html")
    r.add_argument("--pdf", type=Path, metavar="FILE.pdf", help="also print it to PDF")
    r.add_argument("--state-dir", type=Path, default=Path("/var/lib/timeout-hub/hub"),
                   help="the hub's state folder (default /var/lib/timeout-hub/hub)")
    r.add_argument("--plan", type=Path, default=Path("/etc/timeout-hub/household.toml"),
                   help="the household plan (default /etc/timeout-hub/household.toml)")
    r.add_argument("--share-state", type=Path, default=Path("/var/lib/timeout-hub/share"),
                   help="the consent filter's state: the consent now and the access log "
                        "(default /var/lib/timeout-hub/share)")
    r.set_defaults(func=run)
