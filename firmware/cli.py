"""`timeout-hub` command line. Sub-commands that are not built yet are not listed."""
from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
from pathlib import Path

from core.config import refuse
from firmware.hub.plan import HouseholdPlan, PlanError
from mqtt.broker_config import TlsListener, write_broker_config
from mqtt.errors import BrokerConfigError, BrokerStartError
from mqtt.shared import CATEGORIES, ConsentSet

EXIT_USAGE = 2
# the long-running services: their INFO lines (every ladder step, every connection) belong in the
# journal; the one-shot commands print their own output and log only warnings
SERVICES = ("hub", "panel", "caller", "share-status", "wearable")
SHARE_STATE = Path("/var/lib/timeout-hub/share")
CATEGORY_CHOICES = CATEGORIES


def _broker_config(args: argparse.Namespace) -> int:
    tls = None
    if args.tls_port:
        if not args.tls_bind:
            # opt-in per address: the panel's network only, never every interface by default
            raise BrokerConfigError("--tls-port needs --tls-bind ADDRESS: the hub's address on the "
                                    "home network where the panel is")
        tls = TlsListener(args.tls_port, bind=args.tls_bind, certfile=args.tls_cert,
                          keyfile=args.tls_key, names=tuple(args.tls_name or ()))
    elif args.tls_cert or args.tls_key:
        raise BrokerConfigError("--tls-cert/--tls-key need --tls-port")
    if args.bridge:   # a wrong organisation file stops before anything is written
        from mqtt.bridge_config import load_org
        if load_org(args.bridge).household != args.household:
            raise BrokerConfigError(f"{args.bridge} is for household "
                                    f"{load_org(args.bridge).household!r}, not {args.household!r}")
    creds = write_broker_config(Path(args.out), args.household, port=args.port, rotate=args.rotate,
                                tls=tls, broker_user=args.broker_user, rotate_tls=args.rotate_tls)
    out = Path(args.out).resolve()
    print(f"broker configuration for household {args.household} written to {out}")
    print(f"  mosquitto.conf  listener 127.0.0.1:{args.port}"
          + (f", TLS {args.tls_bind}:{args.tls_port}" if tls else ""))
    print(f"  passwd, acl     {len(creds)} services: {', '.join(creds)}")
    print("  credentials/    one JSON file per service (mode 0600)"
          + ("; new passwords" if args.rotate else "; existing passwords kept"))
    if tls and not args.tls_cert:
        print("  tls/ca.crt      copy this to a panel on another device")
    if args.bridge:
        import os

        from mqtt.bridge_config import write_bridge
        from mqtt.broker_config import _broker_uid_gid
        # as root, the files go to the broker's user: it rereads them on a reload (SIGHUP)
        owner = _broker_uid_gid(args.broker_user or "mosquitto") if os.geteuid() == 0 else None
        link = write_bridge(out, args.household, args.bridge, owner)
        _log_access(args.share_state, "bridge")
        print(f"  conf.d/bridge.conf  bridge to {link.host}:{link.port} (TLS) as "
              f"{link.username}: out share/, in the wearables' inputs (docs/fleet.md)")
    print(f"start it with: mosquitto -c {out / 'mosquitto.conf'}")
    return 0


def _org_broker_config(args: argparse.Namespace) -> int:
    from mqtt.org_broker import OrgTls, write_org_broker_config
    cfg = write_org_broker_config(
        Path(args.out), port=args.port, bind=args.bind, host=args.host,
        add=tuple(args.add or ()), remove=tuple(args.remove or ()), rotate=tuple(args.rotate or ()),
        tls=OrgTls(args.tls_cert, args.tls_key, args.tls_ca, tuple(args.tls_name or ())),
        client_certificates=args.client_certificates, broker_user=args.broker_user,
        age_recipient=args.age_recipient)
    print(f"organisation broker configuration written to {cfg.out}")
    print(f"  mosquitto.conf  TLS listener {cfg.bind}:{cfg.port}; households connect to {cfg.host}")
    print(f"  households      {len(cfg.households)}: {', '.join(cfg.households) or '(none)'}")
    print("  households/ID/  org.toml and ca.crt for that hub's `broker-config --bridge`, "
          "wearable-a.json and wearable-b.json for its wearables (mode 0600)")
    print(f"start it with: mosquitto -c {cfg.out / 'mosquitto.conf'} (after a change: kill -HUP)")
    return 0


def _share_status(args: argparse.Namespace) -> int:
    from core.sdnotify import run_until_stopped
    from firmware.share.filter import ConsentFilter, load_key
    from firmware.share.status import ShareStatusPublisher
    from mqtt.bridge_config import AGE_FILE
    from mqtt.broker_config import Credentials
    from mqtt.client import BusClient
    plan = _share_plan(args)
    if plan is None:
        return EXIT_USAGE
    # the unit (systemd/timeout-hub-share.service) names no household: the plan's is the one
    household = args.household or plan.household
    if household != plan.household:
        print(f"timeout-hub share-status: --household {household} is not the plan's household "
              f"({plan.household} in {args.plan})", file=sys.stderr)
        return EXIT_USAGE
    creds = Credentials.load(Path(args.broker_dir) / "credentials" / "bridge.json")
    bus = BusClient("bridge", household, creds, host=args.host, port=args.port,
                    state_dir=args.state_dir)
    key, problem = load_key(args.org_key or Path(args.broker_dir) / "bridge" / AGE_FILE)
    # one `bridge` connection for both (the broker takes the user name as client id)
    filt = ConsentFilter(bus, args.state_dir, base=_plan_consent(plan),
                         retention_days=plan.retention_days, key=key, key_problem=problem).start()
    pub = ShareStatusPublisher(bus).start()
    run_until_stopped(lambda: bus.alive() and filt.alive(),
                      f"share status and consent filter for {household} running")
    pub.stop()
    filt.stop()
    return 0


def _share_plan(args: argparse.Namespace) -> HouseholdPlan | None:
    from firmware.hub.plan import load_plan
    try:
        return load_plan(args.plan)
    except PlanError as e:
        _print_plan_problems(args.command, e)
        return None


def _plan_consent(plan: HouseholdPlan) -> ConsentSet:
    return ConsentSet.from_flags({p: c.model_dump() for p, c in plan.consent.items()})


def _consent(args: argparse.Namespace) -> int:
    """The installer shows the consent now, or gives a category again (logged, R6/R9)."""
    from core.errors import StorageError
    from firmware.share import access_log, consent_state, outbox
    from firmware.share.state import connect
    from mqtt.shared import CATEGORIES, ConsentChange
    plan = _share_plan(args)
    if plan is None:
        return EXIT_USAGE
    base = _plan_consent(plan)
    try:
        db = connect(args.state_dir)
        if args.give:
            if not args.partner:
                print("timeout-hub consent: --give needs --partner a or b.", file=sys.stderr)
                return EXIT_USAGE
            cats = consent_state.change(db, args.partner, args.give, allowed=True, who="installer")
            access_log.record(db, "installer", "consent.give", f"{args.partner}:" + ",".join(cats))
            # the organisation learns the consent now; it does not bring back what it removed
            outbox.add_consent(db, ConsentChange(household=plan.household, partner=None,
                                                 consent=consent_state.current(db, base),
                                                 retention_days=plan.retention_days))
            print(f"partner {args.partner} gives consent again for: {', '.join(cats)} (logged)")
        now = consent_state.current(db, base)
        db.close()
    except StorageError as e:
        print(f"timeout-hub consent: {e}", file=sys.stderr)
        return EXIT_USAGE
    for p in ("a", "b"):
        print(f"partner {p}: " + (", ".join(c for c in CATEGORIES if c in now.of(p)) or "nothing"))
    return 0


def _access_log(args: argparse.Namespace) -> int:
    from core.errors import StorageError
    from firmware.share import access_log
    try:
        shown = access_log.entries(args.state_dir, last=args.last)
    except StorageError as e:
        print(f"timeout-hub access-log: {e}", file=sys.stderr)
        return EXIT_USAGE
    for entry in shown:
        print(access_log.line(entry))
    if not shown:
        print("the access log is empty")
    return 0


def _log_access(state_dir: Path, action: str) -> None:
    """An installer's change into the access log; a log that cannot be written is said, not hidden."""
    from core.errors import StorageError
    from firmware.share import access_log
    try:
        access_log.record(state_dir, "installer", action)
    except (StorageError, OSError) as e:
        print(f"warning: not in the access log ({state_dir}): {e}", file=sys.stderr)


def _print_plan_problems(command: str, e: PlanError) -> int:
    if [where for where, _ in e.problems] == ["(file)"]:   # the file itself: one sentence
        print(f"timeout-hub {command}: {e.problems[0][1]}.", file=sys.stderr)
        return EXIT_USAGE
    print(f"{e.source}: {len(e.problems)} problem(s) in the household plan:", file=sys.stderr)
    for path, sentence in e.problems:
        print(f"  - {path}: {sentence}", file=sys.stderr)
    return EXIT_USAGE


def _check_config(args: argparse.Namespace) -> int:
    """The installer's check before installing a plan: a date rule for installing refuses it."""
    from firmware.hub.plan import date_findings, load_plan
    try:
        plan = load_plan(args.plan)
    except PlanError as e:
        return _print_plan_problems("check-config", e)
    findings = date_findings(plan, dt.date.today())
    refused = [(f.path, f.sentence) for f in findings if f.install]
    if refused:
        return _print_plan_problems("check-config", PlanError(refused, str(args.plan)))
    t = plan.timeout
    print(f"{args.plan}: the household plan for {plan.household} is valid.")
    for f in findings:
        print(f"  warning: {f.path}: {f.sentence}")
    print(f"  time-out at least {t.minimum_minutes} min, {t.leave_grace_minutes} min to leave, "
          f"leaver: {t.leaver}; contacts: a {plan.partners['a'].contacts}, "
          f"b {plan.partners['b'].contacts}; children present: "
          f"{'yes' if plan.children.present else 'no'}")
    if args.caller is not None and _check_caller(args.plan, plan, args.caller):
        return EXIT_USAGE
    return 0


def _check_caller(plan_path: Path, plan: object, caller_path: Path) -> bool:
    """The caller file checked against the plan: True (and each problem printed) when they do
    not fit together."""
    from firmware.caller.config import CallerConfigError, load_caller_file
    from firmware.config_check import mismatches, names_other_plan
    try:
        caller = load_caller_file(caller_path)
    except CallerConfigError as e:
        refuse("check-config", e)
        return True
    found = mismatches(plan, caller)  # type: ignore[arg-type]
    if found:
        print(f"{caller_path}: {len(found)} mismatch(es) with the household plan {plan_path}:",
              file=sys.stderr)
        for sentence in found:
            print(f"  - {sentence}", file=sys.stderr)
        return True
    print(f"{caller_path}: the caller file fits the plan (household, contacts, SMS check-ins).")
    if names_other_plan(plan_path, caller):
        print(f"  note: the caller file reads its plan from {caller.plan}; install this plan "
              "there")
    return False


def _doctor(args: argparse.Namespace) -> int:
    """The installer's check of a running hub: one line per check with the fix; exit 0 when
    nothing failed (warnings allowed: a passed evaluation date never stops the hub), 1 otherwise."""
    from firmware.doctor import Where, report, run_checks
    where = Where(etc=args.etc, state=args.state, host=args.host, port=args.port,
                  broker_dir=args.broker_dir, plan_file=args.plan, caller_file=args.caller)
    text, code = report(run_checks(where, listen_s=args.listen), args.json)
    print(text)
    return code


def _read_code(prompt: str) -> str:
    """The installer code from the terminal (not echoed), or one line of stdin (tests, scripts);
    never from the command line, where it would stay in the shell history."""
    if sys.stdin.isatty():
        import getpass
        return getpass.getpass(prompt)
    return sys.stdin.readline().rstrip("\n")


def _reset(args: argparse.Namespace) -> int:
    """R15: the installer, on the device: the code and presses on the panel, then the wipe."""
    import secrets

    from core.config import read_toml
    from core.errors import ConfigError
    from firmware.reset import (
        ResetRefused,
        await_presence,
        check_code,
        record,
        stop_services,
        watch_presses,
        wipe,
        write_code,
    )
    from mqtt.broker_config import Credentials
    code_file = args.etc / "installer-code"
    broker_dir = args.broker_dir or args.etc / "broker"
    try:
        if args.set_code:
            if code_file.exists():
                check_code(code_file, _read_code("current installer code: "))
            new = _read_code("new installer code: ")
            if _read_code("new installer code again: ") != new:
                raise ResetRefused("the two codes differ; the code was not changed")
            write_code(code_file, new)
            print(f"the installer code's hash is in {code_file} (mode 0600)")
            return 0
        check_code(code_file, _read_code("installer code: "))
        household = args.household
        if household is None:
            try:
                household = str(read_toml(args.etc / "household.toml")["household"])
            except (ConfigError, KeyError):
                raise ResetRefused(f"no household plan in {args.etc}: give --household") from None
        try:
            creds = Credentials.load(broker_dir / "credentials" / "doctor.json")
        except BrokerConfigError as e:
            raise ResetRefused(f"{e}; the presses on the panel cannot be seen") from None
        seen, ready, client = watch_presses(household, creds, host=args.host, port=args.port)
        try:
            if not ready.wait(10):
                raise ResetRefused("the broker did not let the reset read the panel's presses "
                                   "(run `timeout-hub doctor`)")
            wanted = 3 + secrets.randbelow(4)
            print(f"Druk nu {wanted} keer kort op de time-out-knop van het paneel / "
                  f"Press the panel's time-out button briefly {wanted} times now "
                  f"(within {args.within:.0f} s).", flush=True)
            await_presence(seen, wanted, within_s=args.within)
        finally:
            client.disconnect()   # type: ignore[attr-defined]
            client.loop_stop()   # type: ignore[attr-defined]
    except ResetRefused as e:
        print(f"timeout-hub reset: {e}.", file=sys.stderr)
        return EXIT_USAGE
    stopped = stop_services(not args.no_stop)
    removed = wipe(args.etc, args.state, broker_dir)
    # The access log went with the household (R15): the reset's own record is reset-record,
    # a date only, so the next household's log does not start with the previous one's reset.
    kept = record(args.state, dt.date.today())
    if stopped:
        print(f"stopped: {', '.join(stopped)}")
    print(f"wiped: {', '.join(str(p) for p in removed) or 'nothing was there'}")
    print(f"the date of this reset is kept in {kept} (root only); provision the hub again "
          "before it is used")
    return 0


def _hub(args: argparse.Namespace) -> int:
    from firmware.hub.procedure import SnapshotError
    from firmware.hub.sensors import SensorsError
    from firmware.hub.service import serve
    try:
        return serve(args.plan, args.broker_dir, args.state_dir, host=args.host, port=args.port,
                     speed=args.speed, sensors_path=args.sensors)
    except (PlanError, SensorsError, SnapshotError) as e:
        return refuse("hub", e)
    except OSError as e:    # StorageError (the state cannot be opened), a credentials file
        return refuse("hub", e)




def _panel(args: argparse.Namespace) -> int:
    from firmware.panel.service import serve
    try:
        return serve(args.config, mock=args.mock, draw_lights=args.draw)
    except (OSError, ValueError) as e:   # ConfigError is a ValueError; a missing credentials file
        return refuse("panel", e)


def _wearable(args: argparse.Namespace) -> int:
    from firmware.wearable.service import serve
    try:
        return serve(args.config, mock=args.mock)
    except (OSError, ValueError) as e:   # ConfigError is a ValueError; a missing credentials file
        return refuse("wearable", e)


def _caller(args: argparse.Namespace) -> int:
    from core.sdnotify import run_until_stopped
    from firmware.caller.service import Caller, CallerConfigError, load_caller_config
    from mqtt.broker_config import Credentials
    from mqtt.client import BusClient
    try:
        cfg = load_caller_config(args.config)
        creds = Credentials.load(Path(cfg.credentials))
    except (CallerConfigError, BrokerConfigError) as e:
        return refuse("caller", e)
    bus = BusClient("caller", cfg.household, creds, host=cfg.host, port=cfg.port,
                    state_dir=Path(cfg.state_dir))
    caller = Caller(cfg, bus).start()
    run_until_stopped(caller.alive, f"caller for {cfg.household} running on {cfg.modem_port}")
    caller.stop()
    return 0


def _call_test(args: argparse.Namespace) -> int:
    import json
    import re

    from core.texts import CALL_MESSAGE
    from firmware.caller.modem.errors import ModemError
    from firmware.caller.modem.sim7600 import Modem
    if not re.fullmatch(r"\+[1-9]\d{6,14}", args.number):
        print(f"timeout-hub call-test: --number {args.number!r} is not an E.164 number like "
              "+31612345678", file=sys.stderr)
        return EXIT_USAGE
    try:
        modem = Modem(args.port)
        modem.init()
    except ModemError as e:
        out = {"outcome": "failed", "steps": {}, "error": str(e)}
        print(json.dumps(out) if args.json else f"failed: {e}")
        return 1
    try:
        report = modem.call(args.number, CALL_MESSAGE[args.lang].format(code=args.code_word),
                            ring_timeout=args.ring_seconds * args.time_scale)
    finally:
        modem.close()
    if args.json:
        print(json.dumps(report.as_dict()))
    else:
        print(f"outcome: {report.outcome}" + (f" ({report.error})" if report.error else ""))
        for name, t in report.steps.items():
            print(f"  {t:7.2f} s  {name}")
    return 0 if report.outcome == "acknowledged" else 1


def _log(args: argparse.Namespace) -> int:
    import datetime as dt

    from firmware.hub.eventlog import HubDatabase
    db_path = Path(args.state_dir) / "hub.sqlite3"
    if not db_path.exists():
        print(f"timeout-hub log: no event log at {db_path} (is --state-dir right?)", file=sys.stderr)
        return EXIT_USAGE
    since = None
    if args.since:
        try:
            since = dt.datetime.fromisoformat(args.since)
        except ValueError:
            print(f"timeout-hub log: --since {args.since!r} is not a date like 2026-11-21",
                  file=sys.stderr)
            return EXIT_USAGE
        if since.tzinfo is None:
            since = since.replace(tzinfo=dt.UTC)
    import sqlite3
    try:
        db = HubDatabase(db_path, read_only=True)   # reading the log never writes to the hub's state
        try:
            events = db.events(since=since, category=args.category)
        finally:
            db.close()
    except (sqlite3.Error, ValueError) as err:
        print(f"timeout-hub log: {db_path} cannot be read as the hub's event log ({err}).",
              file=sys.stderr)
        return EXIT_USAGE
    if args.json:
        import json
        for e in events:
            print(json.dumps({"id": e.id, "ts": e.ts.isoformat(), "type": e.type,
                              "category": e.category, "partner": e.partner,
                              "timeout_id": e.timeout_id, "data": e.data}))
        return 0
    for e in events:
        who = f"partner {e.partner}" if e.partner else ""
        details = ", ".join(f"{k}={v}" for k, v in sorted(e.data.items()))
        print(f"{e.ts.astimezone().strftime('%Y-%m-%d %H:%M:%S')}  {e.category:<10} "
              f"{e.type:<20} {who:<10} {details}".rstrip())
    print(f"({len(events)} events)")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from sim.demo import run_demo
    return run_demo(speed=args.speed)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="timeout-hub",
                                description="Home hub for the time-out procedure (see README.md).")
    p.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="log only warnings and errors (the services log INFO by default)")
    sub = p.add_subparsers(dest="command", required=True)

    b = sub.add_parser("broker-config", help="write the Mosquitto configuration, passwords and ACL",
                       description="Write DIR/mosquitto.conf, DIR/passwd, DIR/acl and "
                                   "DIR/credentials/<service>.json. Existing passwords are kept "
                                   "unless --rotate.")
    b.add_argument("--household", required=True, help="household id: 2-32 of a-z, 0-9, '-'")
    b.add_argument("--out", required=True, metavar="DIR", help="directory to write into")
    b.add_argument("--port", type=int, default=1883, help="localhost listener port (default 1883)")
    b.add_argument("--rotate", action="store_true", help="make new passwords for every service")
    b.add_argument("--tls-port", type=int, help="also listen with TLS on this port (remote panel)")
    b.add_argument("--tls-bind", help="the hub's address in the home for the TLS listener "
                   "(required with --tls-port)")
    b.add_argument("--tls-cert", type=Path, help="server certificate (default: generate one)")
    b.add_argument("--tls-key", type=Path, help="server key (default: generate one)")
    b.add_argument("--tls-name", action="append", help="host name or IP for a generated certificate")
    b.add_argument("--rotate-tls", action="store_true", help="generate a new CA and certificate")
    b.add_argument("--broker-user", help="user mosquitto runs as (default: mosquitto when root)")
    b.add_argument("--bridge", type=Path, metavar="ORG.toml",
                   help="also bridge to the care organisation's broker (docs/fleet.md)")
    b.add_argument("--share-state", type=Path, default=SHARE_STATE,
                   help="the share service's state folder, whose access log records a bridge "
                        "change (default /var/lib/timeout-hub/share)")
    b.set_defaults(func=_broker_config)

    ob = sub.add_parser("org-broker-config",
                        help="the care organisation's Mosquitto that households bridge to",
                        description="Write DIR/mosquitto.conf, passwd, acl (%%u patterns) and, per "
                                    "household, DIR/households/ID/ (docs/fleet.md).")
    ob.add_argument("--out", required=True, type=Path, metavar="DIR")
    ob.add_argument("--add", action="append", metavar="ID", help="add a household (repeatable)")
    ob.add_argument("--remove", action="append", metavar="ID",
                    help="remove a household: its passwords and files are deleted")
    ob.add_argument("--rotate", action="append", metavar="ID",
                    help="new passwords for a household's bridge and wearables")
    ob.add_argument("--port", type=int, default=8883, help="TLS port (default 8883)")
    ob.add_argument("--bind", default="0.0.0.0")
    ob.add_argument("--host", help="the name households connect to (default: this host's name)")
    ob.add_argument("--tls-cert", type=Path, help="server certificate (default: generate a CA and one)")
    ob.add_argument("--tls-key", type=Path)
    ob.add_argument("--tls-ca", type=Path, help="the CA that signed --tls-cert (given to households)")
    ob.add_argument("--tls-name", action="append", help="host name or IP for a generated certificate")
    ob.add_argument("--client-certificates", action="store_true",
                    help="households, wearables and the care reader log in with a certificate "
                         "from the organisation CA instead of a password (kept for later runs)")
    ob.add_argument("--broker-user", help="user mosquitto runs as (default: mosquitto when root)")
    ob.add_argument("--age-recipient", metavar="AGE1...",
                    help="the organisation's age public key (python -m org.keys prints it): each "
                         "household's consent filter seals what it shares to it (kept for later runs)")
    ob.set_defaults(func=_org_broker_config)

    ss = sub.add_parser("share-status", help="publish the equipment status the organisation sees "
                        "(share/status; docs/fleet.md)")
    ss.add_argument("--household", help="default: the plan's (a different one is refused)")
    ss.add_argument("--broker-dir", type=Path, required=True,
                    help="the broker-config directory (credentials/bridge.json)")
    ss.add_argument("--state-dir", type=Path, default=SHARE_STATE)
    ss.add_argument("--plan", type=Path, default=Path("/etc/timeout-hub/household.toml"),
                    help="the household plan: its consent and retention days")
    ss.add_argument("--org-key", type=Path, help="the organisation's age public key "
                    "(default BROKER_DIR/bridge/org-age.pub, from org.toml's age_recipient)")
    ss.add_argument("--host", default="127.0.0.1")
    ss.add_argument("--port", type=int, default=1883)
    ss.set_defaults(func=_share_status)

    co = sub.add_parser("consent", help="show the consent now, or give a category again for a "
                        "partner (the installer; logged)",
                        description="A partner withdraws by SMS from their own number (STOP "
                                    "DELEN / STOP SHARING); giving consent again goes through "
                                    "the installer (docs/care.md).")
    co.add_argument("--show", action="store_true", help="only show it (the default)")
    co.add_argument("--give", action="append", choices=CATEGORY_CHOICES, metavar="CATEGORY",
                    help=f"give consent again for this category ({', '.join(CATEGORY_CHOICES)})")
    co.add_argument("--partner", choices=("a", "b"))
    co.add_argument("--plan", type=Path, default=Path("/etc/timeout-hub/household.toml"))
    co.add_argument("--state-dir", type=Path, default=SHARE_STATE)
    co.set_defaults(func=_consent)

    al = sub.add_parser("access-log", help="the household's access log: who read, exported or "
                        "changed what, when (R6)")
    al.add_argument("--state-dir", type=Path, default=SHARE_STATE)
    al.add_argument("--last", type=int, metavar="N", help="only the newest N entries")
    al.set_defaults(func=_access_log)

    c = sub.add_parser("check-config", help="check a household plan (exit 0 valid, 2 not)",
                       description="Check a household plan TOML file; every problem is listed. "
                                   "Evaluation dates that have passed are a warning while a later "
                                   "one is planned, and refused when none is ahead.")
    c.add_argument("plan", type=Path, metavar="PLAN")
    c.add_argument("--caller", type=Path, metavar="CALLER.toml",
                   help="also check the caller's file and that it fits the plan (contacts, SMS)")
    c.set_defaults(func=_check_config)

    dr = sub.add_parser("doctor", help="check an installed hub: services, broker, files, modem, "
                        "clock, microphone, BLE, tags, disk (exit 0 no failure, 1 a failure)",
                        description="One line per check: pass, warn or fail, with the fix "
                                    "(docs/doctor.md). Exit 0 when nothing failed (warnings "
                                    "allowed), 1 on a failure.")
    dr.add_argument("--json", action="store_true", help="one JSON object with every check")
    dr.add_argument("--etc", type=Path, default=Path("/etc/timeout-hub"),
                    help="the configuration folder (default /etc/timeout-hub)")
    dr.add_argument("--state", type=Path, default=Path("/var/lib/timeout-hub"),
                    help="the state folder, for the disk space check (default /var/lib/timeout-hub)")
    dr.add_argument("--plan", type=Path, help="the household plan (default ETC/household.toml)")
    dr.add_argument("--caller", type=Path, help="the caller's file (default ETC/caller.toml)")
    dr.add_argument("--broker-dir", type=Path, help="the broker-config folder (default ETC/broker)")
    dr.add_argument("--host", default="127.0.0.1", help="the broker (default 127.0.0.1)")
    dr.add_argument("--port", type=int, default=1883)
    dr.add_argument("--listen", type=float, default=3.0, metavar="SECONDS",
                    help="how long to listen for the hub's sound levels (default 3)")
    dr.set_defaults(func=_doctor)

    rs = sub.add_parser("reset", help="the installer wipes the household from this hub (R15): "
                        "installer code and presses on the panel",
                        description="Asks for the installer code, then for a number of short "
                                    "presses on the panel's time-out button; then stops the "
                                    "services and removes the household's data and credentials, "
                                    "keeping only the date of the reset (docs/reset.md).")
    rs.add_argument("--etc", type=Path, default=Path("/etc/timeout-hub"))
    rs.add_argument("--state", type=Path, default=Path("/var/lib/timeout-hub"))
    rs.add_argument("--broker-dir", type=Path, help="the broker-config folder (default ETC/broker)")
    rs.add_argument("--household", help="the household id, when the plan is gone already")
    rs.add_argument("--host", default="127.0.0.1")
    rs.add_argument("--port", type=int, default=1883)
    rs.add_argument("--within", type=float, default=60.0, metavar="SECONDS",
                    help="time for the presses on the panel (default 60)")
    rs.add_argument("--no-stop", action="store_true",
                    help="do not stop the services first (they are stopped already)")
    rs.add_argument("--set-code", action="store_true",
                    help="set the organisation's installer code (asks for the current one first)")
    rs.set_defaults(func=_reset)

    h = sub.add_parser("hub", help="run the hub service (procedure and event log)")
    h.add_argument("--plan", type=Path, required=True, help="the household plan TOML")
    h.add_argument("--broker-dir", type=Path, required=True,
                   help="the broker-config directory (credentials/hub.json)")
    h.add_argument("--state-dir", type=Path, default=Path("/var/lib/timeout-hub/hub"))
    h.add_argument("--host", default="127.0.0.1")
    h.add_argument("--port", type=int, default=1883)
    h.add_argument("--sensors", type=Path, help="microphone and BLE settings (examples/sensors.toml); "
                   "without it the hub runs without its own sensors")
    h.add_argument("--speed", type=float, default=1.0, help=argparse.SUPPRESS)  # tests and bench
    h.set_defaults(func=_hub)

    pn = sub.add_parser("panel", help="run the button-and-LED panel service")
    pn.add_argument("--config", required=True, help="panel TOML (examples/panel.toml)")
    pn.add_argument("--mock", action="store_true", help="gpiozero MockFactory instead of real pins")
    pn.add_argument("--draw", action="store_true", help="draw the lights in the terminal")
    pn.set_defaults(func=_panel)

    wr = sub.add_parser("wearable", help="run a partner's wearable (button, vibration, apart verdict)")
    wr.add_argument("--config", required=True, help="wearable TOML (examples/wearable.toml)")
    wr.add_argument("--mock", action="store_true", help="gpiozero MockFactory instead of real pins")
    wr.set_defaults(func=_wearable)

    cl = sub.add_parser("caller", help="run the cellular caller service")
    cl.add_argument("--config", type=Path, required=True, help="caller TOML (mode 0600)")
    cl.set_defaults(func=_caller)

    ct = sub.add_parser("call-test", help="one real test call with the message; prints the outcome",
                        description="Exit 0 when the contact pressed 1, 1 otherwise, 2 on bad input.")
    ct.add_argument("--port", required=True, help="the modem's AT port, e.g. /dev/ttyUSB2")
    ct.add_argument("--number", required=True, help="E.164, e.g. +31612345678")
    ct.add_argument("--lang", choices=["nl", "en"], default="nl")
    ct.add_argument("--code-word", default="test", help="the household's code word in the message")
    ct.add_argument("--ring-seconds", type=float, default=35.0)
    ct.add_argument("--time-scale", type=float, default=1.0, help=argparse.SUPPRESS)
    ct.add_argument("--json", action="store_true", help="one JSON object with outcome and step times")
    ct.set_defaults(func=_call_test)

    lg = sub.add_parser("log", help="list the hub's event log readably")
    lg.add_argument("--state-dir", default="/var/lib/timeout-hub/hub", help="the hub's state directory")
    lg.add_argument("--since", help="only events from this date or time (ISO 8601)")
    lg.add_argument("--category", choices=["procedure", "checkin", "call", "sensing", "presence",
                                           "evaluation", "fault", "access", "service"])
    lg.add_argument("--json", action="store_true", help="one JSON object per line")
    lg.set_defaults(func=_log)

    from firmware.report_cli import add_parser as add_report_parser
    add_report_parser(sub)

    # these parse their own arguments (main() hands them over before this parser runs)
    sub.add_parser("detect", help="run the shouting detector on a WAV/OGG/FLAC file",
                   add_help=False)
    sub.add_parser("calibrate", help="the installer's microphone calibrations (level offset, "
                   "household baseline)", add_help=False)
    sub.add_parser("presence-replay", help="run the BLE presence engine on an advert trace",
                   add_help=False)
    sub.add_parser("procedure-replay", help="run the procedure on a scripted evening: what would "
                   "the hub have done?", add_help=False)
    sub.add_parser("wearable-home", help="the installer's home position for a wearable: "
                   "averaged fixes at the front door", add_help=False)
    sub.add_parser("apart-replay", help="run the wearable's geofence on a recorded gpsd log "
                   "(gpspipe -w)", add_help=False)
    sub.add_parser("provision", help="the installer's guided, resumable set-up of a household "
                   "(docs/provision.md)", add_help=False)

    d = sub.add_parser("demo", help="run the simulated household on a private broker")
    d.add_argument("--speed", type=float, default=1.0,
                   help="pause multiplier: 2 = twice as slow, 0.5 = twice as fast, "
                        "0 = the fastest (20 times)")
    d.set_defaults(func=_demo)
    return p


def configure_logging(args: argparse.Namespace) -> None:
    """To stderr (the journal, under systemd): DEBUG with --verbose, WARNING with --quiet,
    otherwise INFO for the services and WARNING for the one-shot commands."""
    if args.verbose:
        level = logging.DEBUG
    elif args.quiet or args.command not in SERVICES:
        level = logging.WARNING
    else:
        level = logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


OWN_PARSERS = {"detect": "dsp.detect_cli", "presence-replay": "ble.replay_cli",
               "calibrate": "firmware.hub.calibrate_cli",
               "procedure-replay": "firmware.hub.replay_cli",
               "apart-replay": "firmware.wearable.replay_cli",
               "wearable-home": "firmware.wearable.home_cli",
               "provision": "firmware.provision.wizard"}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in OWN_PARSERS:
        import importlib
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
        return importlib.import_module(OWN_PARSERS[argv[0]]).main(argv[1:])
    args = build_parser().parse_args(argv)
    configure_logging(args)
    if args.command in SERVICES:
        from core.sdnotify import stop_on_signals
        stop_on_signals()     # a SIGTERM while the service starts is a clean stop, not a kill
    try:
        return args.func(args)
    except (BrokerConfigError, BrokerStartError) as e:
        print(f"timeout-hub {args.command}: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
