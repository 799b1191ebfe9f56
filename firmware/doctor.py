"""`timeout-hub doctor`: what the installer checks at the end of an installation and on every
visit. One line per check, pass / warn / fail, with the fix. Everything it knows about the
running services it reads from the broker, with the installer's own read-only `doctor` role
(mqtt/contract.py): each service's retained `<service>/available` and `<service>/health`, and the
hub's `sensor/sound` levels. It never publishes and never changes a file."""
from __future__ import annotations

import datetime as dt
import json
import shutil
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from core.errors import ConfigError
from mqtt import schemas
from mqtt.broker_config import Credentials
from mqtt.errors import BrokerConfigError

Status = Literal["pass", "warn", "fail"]
SERVICES = ("hub", "panel", "caller")     # what runs on every hub; wearables and bridge are optional
DISK_FAIL_BYTES = 100 * 2**20             # below this the hub cannot save its log
DISK_WARN_FRACTION = 0.10


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str
    fix: str = ""

    def line(self) -> str:
        fix = f" -> {self.fix}" if self.fix and self.status != "pass" else ""
        return f"{self.status.upper():<4}  {self.name}: {self.detail}{fix}"


@dataclass
class BusView:
    """What the broker holds for the household, as the doctor role sees it."""

    connected: bool = False
    refused: str = ""
    available: dict[str, str] = field(default_factory=dict)
    health: dict[str, list[schemas.Fault]] = field(default_factory=dict)
    bad_health: dict[str, str] = field(default_factory=dict)
    sound: list[schemas.Sound] = field(default_factory=list)


def read_bus(household: str, creds: Credentials, *, host: str = "127.0.0.1", port: int = 1883,
             listen_s: float = 3.0) -> BusView:
    """Connect as `doctor`, take the retained availability and health, and listen `listen_s` for
    sound levels (the hub sends about one a second while its microphone works)."""
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion
    view = BusView()
    pre = f"timeout/{household}/"
    done = threading.Event()
    subscribed = threading.Event()
    lock = threading.Lock()

    def on_connect(client, userdata, flags, rc, props=None):   # type: ignore[no-untyped-def]
        if rc.is_failure:
            view.refused = str(rc)
            done.set()
            return
        view.connected = True
        client.subscribe([(pre + "+/available", 1), (pre + "+/health", 1),
                          (pre + "sensor/sound", 0)])

    def on_subscribe(client, userdata, mid, rcs, props=None):   # type: ignore[no-untyped-def]
        subscribed.set()

    def on_message(client, userdata, msg):   # type: ignore[no-untyped-def]
        rel = msg.topic[len(pre):]
        with lock:
            if rel.endswith("/available"):
                view.available[rel.split("/")[0]] = msg.payload.decode(errors="replace")
            elif rel.endswith("/health"):
                svc = rel.split("/")[0]
                try:
                    view.health[svc] = list(schemas.Health.model_validate_json(msg.payload).faults)
                except ValueError as e:
                    view.bad_health[svc] = str(e).splitlines()[0]
            elif rel == "sensor/sound":
                try:
                    view.sound.append(schemas.Sound.model_validate_json(msg.payload))
                except ValueError:
                    pass

    c = paho.Client(CallbackAPIVersion.VERSION2, client_id="doctor", protocol=paho.MQTTv5)
    c.username_pw_set(creds.username, creds.password)
    c.on_connect, c.on_subscribe, c.on_message = on_connect, on_subscribe, on_message
    try:
        c.connect(host, port, keepalive=10)
    except OSError as e:
        view.refused = f"no broker at {host}:{port} ({e.strerror or e})"
        return view
    c.loop_start()
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not (subscribed.is_set() or done.is_set()):
            time.sleep(0.02)
        if subscribed.is_set():
            # retained messages follow the SUBACK at once; sound arrives about once a second
            end = time.monotonic() + listen_s
            while time.monotonic() < end:
                time.sleep(0.05)
        elif not view.refused:
            view.refused = "the broker did not answer"
    finally:
        c.disconnect()
        c.loop_stop()
    return view


def _faults(view: BusView, prefix: str) -> list[schemas.Fault]:
    return [f for faults in view.health.values() for f in faults if f.code.startswith(prefix)]


def check_services(view: BusView) -> list[Check]:
    out = []
    for s in SERVICES:
        fix = f"systemctl restart timeout-hub-{s}; journalctl -u timeout-hub-{s}"
        said = view.available.get(s)
        if said != "online":
            why = "has never connected" if said is None else f"is {said}"
            out.append(Check(f"service {s}", "fail", f"{s} {why}", fix))
        elif s in view.bad_health:
            out.append(Check(f"service {s}", "fail", f"{s} is online but its health message is "
                             f"not valid ({view.bad_health[s]})", fix))
        else:   # a service publishes its health when it has something to say (faults change)
            n = len(view.health.get(s, []))
            out.append(Check(f"service {s}", "pass", f"online, {n} fault(s) reported"))
    return out


def check_broker(view: BusView) -> Check:
    if view.connected:
        return Check("broker authentication", "pass", "the broker accepts the doctor's password "
                     "and refuses none of its reads")
    return Check("broker authentication", "fail", view.refused or "no connection",
                 "systemctl status mosquitto; run `timeout-hub broker-config` again and restart "
                 "mosquitto")


def _fault_check(name: str, faults: list[schemas.Fault], ok: str, fix: str,
                 warn_codes: tuple[str, ...] = ()) -> Check:
    if not faults:
        return Check(name, "pass", ok)
    worst: Status = "warn" if all(f.code.startswith(warn_codes) for f in faults) else "fail"
    return Check(name, worst, "; ".join(f"{f.code}: {f.reason}" for f in faults), fix)


def check_from_health(view: BusView) -> list[Check]:
    """Modem, clock, microphone, BLE, tags and doors, from the services' own retained faults."""
    out: list[Check] = []
    if "caller" in view.health:
        out.append(_fault_check("modem, SIM, network, signal", _faults(view, "modem."),
                                "the caller reports no modem fault",
                                "check the SIM card, the antenna and the place of the hub; "
                                "`timeout-hub call-test` for a test call",
                                warn_codes=("modem.weak_signal",)))
    else:
        out.append(Check("modem, SIM, network, signal", "warn", "the caller has not reported "
                         "its modem's health yet", "run doctor again after the caller's health "
                         "interval (health_every_seconds)"))
    clock = _faults(view, "clock.")
    out.append(Check("clock synchronised", "warn", "; ".join(f.reason for f in clock),
                     "check the network or the GNSS antenna (gpsd)") if clock else
               Check("clock synchronised", "pass", "no service reports an unsynchronised clock"))
    hub = view.available.get("hub") == "online"
    mic = _faults(view, "mic.")
    if not hub:
        out.append(Check("microphone", "fail", "the hub is not online", "start the hub"))
    elif mic:
        out.append(_fault_check("microphone", mic, "", "check the microphone's cable; "
                                "`timeout-hub calibrate` when it is replaced"))
    elif not view.sound:
        out.append(Check("microphone", "warn", "no sound levels heard from the hub",
                         "start the hub with --sensors /etc/timeout-hub/sensors.toml"))
    else:
        levels = [s.level_db for s in view.sound]
        unit = view.sound[-1].unit
        lo, hi = (20.0, 110.0) if unit == "dBA" else (-95.0, -1.0)
        if all(lo <= v <= hi for v in levels):
            out.append(Check("microphone", "pass", f"present, level {levels[-1]:.0f} {unit}"))
        else:
            out.append(Check("microphone", "warn", f"level {levels[-1]:.0f} {unit} is outside "
                             f"{lo:.0f}..{hi:.0f} (a dead or clipping microphone?)",
                             "check the microphone and run `timeout-hub calibrate`"))
    if hub:
        ble = [f for f in _faults(view, "ble.") if not f.code.startswith("ble.tag_missing.")]
        out.append(_fault_check("BLE adapter", ble, "the hub reports no Bluetooth fault",
                                "check `bluetoothctl show` and the adapter in sensors.toml"))
        out.append(_fault_check("tags and door sensors heard recently",
                                _faults(view, "ble.tag_missing.") + _faults(view, "door."),
                                "every tag and door sensor was heard",
                                "replace the battery, or bring the tag or sensor in range "
                                "(walk test)", warn_codes=("door.battery_low.",)))
    return out


def check_files(plan_path: Path, caller_path: Path | None, today: dt.date) -> list[Check]:
    from firmware.caller.config import load_caller_file
    from firmware.config_check import mismatches
    from firmware.hub.plan import date_findings, load_plan
    out: list[Check] = []
    try:
        plan = load_plan(plan_path)
    except ConfigError as e:
        first = "; ".join(f"{w}: {s}" for w, s in e.problems[:3])
        return [Check("household plan", "fail", first,
                      f"timeout-hub check-config {plan_path} lists every problem")]
    findings = date_findings(plan, today)
    out.append(Check("household plan", "warn" if findings else "pass",
                     "; ".join(f.sentence for f in findings) if findings else
                     f"valid for household {plan.household}; the hub starts with it",
                     "plan the next evaluation with both partners"))
    if caller_path is None:
        return out
    try:
        caller = load_caller_file(caller_path)
    except ConfigError as e:
        return [*out, Check("caller file", "fail", "; ".join(s for _, s in e.problems[:3]),
                            f"timeout-hub check-config {plan_path} --caller {caller_path}")]
    found = mismatches(plan, caller)
    out.append(Check("plan and caller file consistent", "fail" if found else "pass",
                     "; ".join(found) if found else "same household, contacts and SMS numbers",
                     "correct the caller file (numbers) or the plan (counts), then restart the "
                     "caller"))
    return out


def check_permissions(etc: Path, broker_dir: Path | None = None) -> Check:
    """Secrets (the caller's numbers, broker passwords, the installer code) must be private to
    their owner; nothing in the folder may be writable by everyone."""
    if not etc.is_dir():
        return Check("file permissions", "fail", f"{etc} does not exist", "sudo make install")
    creds = (broker_dir or etc / "broker") / "credentials"
    secret = [etc / "caller.toml", etc / "installer-code", *sorted(creds.glob("*.json"))]
    bad = []
    for p in secret:
        try:
            mode = p.stat().st_mode
        except OSError:
            continue
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            bad.append(f"{p} is readable by others (mode {stat.S_IMODE(mode):o})")
    for p in [etc, *etc.rglob("*")]:
        try:
            mode = p.lstat().st_mode
        except OSError:
            continue
        if mode & stat.S_IWOTH and not stat.S_ISLNK(mode):
            bad.append(f"{p} is writable by everyone")
    if bad:
        return Check("file permissions", "fail", "; ".join(bad[:4]),
                     "chmod 600 the secret files, chmod o-w the rest (sudo make install does it)")
    return Check("file permissions", "pass", f"secrets in {etc} are private, nothing is "
                 "writable by everyone")


def check_disk(path: Path) -> Check:
    try:
        u = shutil.disk_usage(path)
    except OSError as e:
        return Check("disk space", "fail", f"{path}: {e.strerror or e}", "check the SD card")
    free_mb = u.free // 2**20
    if u.free < DISK_FAIL_BYTES:
        return Check("disk space", "fail", f"{free_mb} MB free on {path}",
                     "free space (old journal: journalctl --vacuum-size=50M)")
    if u.free < DISK_WARN_FRACTION * u.total:
        return Check("disk space", "warn", f"only {free_mb} MB ({100 * u.free // u.total}%) free",
                     "free space (journalctl --vacuum-size=50M)")
    return Check("disk space", "pass", f"{free_mb} MB free on {path}")


@dataclass(frozen=True)
class Where:
    etc: Path = Path("/etc/timeout-hub")
    state: Path = Path("/var/lib/timeout-hub")
    host: str = "127.0.0.1"
    port: int = 1883
    broker_dir: Path | None = None     # default: etc/broker
    plan_file: Path | None = None      # default: etc/household.toml
    caller_file: Path | None = None    # default: etc/caller.toml

    @property
    def plan(self) -> Path:
        return self.plan_file or self.etc / "household.toml"

    @property
    def caller(self) -> Path:
        return self.caller_file or self.etc / "caller.toml"

    @property
    def doctor_creds(self) -> Path:
        return (self.broker_dir or self.etc / "broker") / "credentials" / "doctor.json"


def run_checks(where: Where, *, today: dt.date | None = None, listen_s: float = 3.0,
               read: Callable[..., BusView] = read_bus) -> list[Check]:
    today = today or dt.date.today()
    checks = check_files(where.plan, where.caller if where.caller.exists() else None, today)
    household = None
    try:
        from firmware.hub.plan import load_plan
        household = load_plan(where.plan).household
    except ConfigError:
        pass
    try:
        creds = Credentials.load(where.doctor_creds)
    except BrokerConfigError as e:
        checks.append(Check("broker authentication", "fail", str(e),
                            "run `timeout-hub broker-config` again (it keeps existing passwords)"))
        creds = None
    if creds is not None and household is not None:
        view = read(household, creds, host=where.host, port=where.port, listen_s=listen_s)
        checks.append(check_broker(view))
        if view.connected:
            checks += check_services(view) + check_from_health(view)
    checks.append(check_permissions(where.etc, where.broker_dir))
    disk = where.state
    while not disk.exists() and disk != disk.parent:
        disk = disk.parent
    checks.append(check_disk(disk))
    return checks


def report(checks: list[Check], as_json: bool) -> tuple[str, int]:
    """The text to print and the exit code: 1 when any check failed, else 0."""
    code = 1 if any(c.status == "fail" for c in checks) else 0
    if as_json:
        return json.dumps({"ok": code == 0, "checks": [asdict(c) for c in checks]}, indent=1), code
    lines = [c.line() for c in checks]
    n = {s: sum(c.status == s for c in checks) for s in ("pass", "warn", "fail")}
    lines.append(f"{n['pass']} pass, {n['warn']} warn, {n['fail']} fail"
                 + ("" if code == 0 else ": fix the failures above"))
    return "\n".join(lines), code

