"""`timeout-hub reset` (R15): only the installer, on the device, wipes a household from the hub.

Two things are needed, and a partner has at most one of them (docs/reset.md):
- the organisation's installer code, typed at the prompt (never an argument: it would stay in
  the shell history). Only a PBKDF2 hash of it is kept, in a root-only file
  (`/etc/timeout-hub/installer-code`); a code file others can read is refused;
- proof of presence at the panel: the command shows a number from 3 to 6 it has just drawn, and
  the time-out button must be pressed briefly exactly that many times within a minute. The
  presses are read from `panel/press` on the bus with the installer's read-only `doctor` role,
  so someone logged in from elsewhere cannot do it alone either.

Then the services and the broker are stopped and the household's data and credentials are
removed: the plan, the caller's file (the phone numbers), the broker's passwords, ACL and its
stored messages, and every service's state (hub state and event log, the caller's calls
database, the bus outboxes). Nothing is left that lets anyone, a partner included, control the
hub: without a plan the hub does not start, and without passwords nobody connects, until the
installer provisions it again. What stays is the hardware setup (panel.toml, sensors.toml), the
installer code, and one line with the date of the reset (`reset-record`, root-only).
"""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import os
import secrets
import shutil
import stat
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from mqtt.broker_config import Credentials

ITERATIONS = 200_000
MIN_CODE_LENGTH = 8
UNITS = ("timeout-hub-hub", "timeout-hub-panel", "timeout-hub-caller", "mosquitto")
# in the configuration folder: what belongs to the household (everything else is the device's)
HOUSEHOLD_FILES = ("household.toml", "caller.toml", "broker")
RECORD = "reset-record"


class ResetRefused(Exception):
    """One sentence: why nothing was wiped."""


def _digest(code: str, salt: bytes, iterations: int) -> bytes:
    return hashlib.pbkdf2_hmac("sha256", code.encode(), salt, iterations)


def write_code(path: Path, code: str) -> None:
    """Keep only a salted hash of the installer code, in a file only its owner can read."""
    if len(code) < MIN_CODE_LENGTH:
        raise ResetRefused(f"the installer code needs at least {MIN_CODE_LENGTH} characters")
    salt = secrets.token_bytes(16)
    text = json.dumps({"pbkdf2_sha256": ITERATIONS, "salt": base64.b64encode(salt).decode(),
                       "hash": base64.b64encode(_digest(code, salt, ITERATIONS)).decode()})
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text + "\n")
    os.chmod(path, 0o600)


def check_code(path: Path, code: str) -> None:
    """ResetRefused unless `code` is the installer code whose hash `path` holds."""
    try:
        st = path.stat()
        data = json.loads(path.read_text())
        salt = base64.b64decode(data["salt"])
        want = base64.b64decode(data["hash"])
        iterations = int(data["pbkdf2_sha256"])
    except FileNotFoundError:
        raise ResetRefused(f"there is no installer code on this hub ({path}); the organisation "
                           "sets it with `timeout-hub reset --set-code`") from None
    except PermissionError:
        raise ResetRefused(f"{path} cannot be read: run the reset as root, on the hub") from None
    except (OSError, ValueError, KeyError, TypeError):
        raise ResetRefused(f"{path} is not an installer code file; set the code again") from None
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO) or st.st_uid != os.geteuid():
        raise ResetRefused(f"{path} must belong to {'root' if os.geteuid() == 0 else 'this user'} "
                           f"and be readable by nobody else: chmod 600 {path}")
    if not hmac.compare_digest(_digest(code, salt, iterations), want):
        raise ResetRefused("that is not the installer code; nothing was wiped")


@dataclass
class Presses:
    """Short presses of the panel's time-out button seen on the bus since the command started."""

    count: int = 0
    last: float = 0.0


def watch_presses(household: str, creds: Credentials, *, host: str = "127.0.0.1",
                  port: int = 1883) -> tuple[Presses, threading.Event, object]:
    """Count short presses from `panel/press` (read-only role); returns the counter, an event
    set once the subscription stands, and the client (to disconnect)."""
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    from mqtt import schemas
    topic = f"timeout/{household}/panel/press"
    seen, ready = Presses(), threading.Event()
    lock = threading.Lock()

    def on_connect(client, userdata, flags, rc, props=None):   # type: ignore[no-untyped-def]
        if not rc.is_failure:
            client.subscribe(topic, qos=1)

    def on_subscribe(client, userdata, mid, rcs, props=None):   # type: ignore[no-untyped-def]
        ready.set()

    def on_message(client, userdata, msg):   # type: ignore[no-untyped-def]
        if not ready.is_set():
            return
        try:
            press = schemas.PanelPress.model_validate_json(msg.payload)
        except ValueError:
            return
        if press.press == "short" and not press.queued:
            with lock:
                seen.count += 1
                seen.last = time.monotonic()

    c = paho.Client(CallbackAPIVersion.VERSION2, client_id="doctor", protocol=paho.MQTTv5)
    c.username_pw_set(creds.username, creds.password)
    c.on_connect, c.on_subscribe, c.on_message = on_connect, on_subscribe, on_message
    try:
        c.connect(host, port, keepalive=10, clean_start=True)   # no presses from before
    except OSError as e:
        raise ResetRefused(f"the broker at {host}:{port} cannot be reached ({e.strerror or e}): "
                           "the presses on the panel cannot be seen") from None
    c.loop_start()
    return seen, ready, c


def await_presence(seen: Presses, wanted: int, *, within_s: float, settle_s: float = 3.0) -> None:
    """ResetRefused unless exactly `wanted` short presses came within `within_s`, and then no
    more for `settle_s` (a hand pressing on and on is not an answer to the number shown)."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline and seen.count < wanted:
        time.sleep(0.05)
    if seen.count < wanted:
        raise ResetRefused(f"the time-out button was pressed {seen.count} of {wanted} times "
                           f"within {within_s:.0f} s; nothing was wiped")
    while time.monotonic() - seen.last < settle_s:
        time.sleep(0.05)
    if seen.count != wanted:
        raise ResetRefused(f"the time-out button was pressed {seen.count} times, not {wanted}; "
                           "nothing was wiped")


def stop_services(run: bool) -> list[str]:
    """Stop the services and the broker (the broker writes its stored messages when it stops,
    so it must be down before its data is removed). Only as root on a systemd machine."""
    if not run or os.geteuid() != 0 or not shutil.which("systemctl"):
        return []
    subprocess.run(["systemctl", "stop", *UNITS], check=False, timeout=120)
    return list(UNITS)


def wipe(etc: Path, state: Path, broker_dir: Path | None = None) -> list[Path]:
    """Remove the household's files; returns what was removed."""
    removed: list[Path] = []
    targets = [etc / name for name in HOUSEHOLD_FILES]
    if broker_dir is not None:
        targets.append(broker_dir)
    if state.is_dir():
        targets += [p for p in state.iterdir() if p.name != RECORD]
    for p in targets:
        if p.is_symlink() or p.is_file():
            p.unlink()
        elif p.is_dir():
            shutil.rmtree(p)
        else:
            continue
        removed.append(p)
    return removed


def record(state: Path, today: dt.date) -> Path:
    """The one trace of a reset: its date, nothing else, readable by root only."""
    state.mkdir(parents=True, exist_ok=True)
    path = state / RECORD
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a") as f:
        f.write(f"reset {today.isoformat()}\n")
    os.chmod(path, 0o600)
    return path
