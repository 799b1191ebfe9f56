"""What a full or worn-out SD card and a wrong clock must not cost a household (issue 20, harms 1
and 7): the real `timeout-hub hub` whose writes fail (a file-size limit set on the running process,
RLIMIT_FSIZE) keeps the time-out going from memory, keeps both partners' answers, shows the fault
and stops feeding the watchdog; retention never erases the log on a clock that jumped."""
from __future__ import annotations

import datetime as dt
import os
import resource
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from core.clock import ManualClock
from firmware.hub.eventlog import HubDatabase, LoggedEvent
from firmware.hub.plan import load_plan
from firmware.hub.service import Hub
from mqtt import schemas
from tests.conftest import wait_until
from tests.helpers.collect import Collect

ROOT = Path(__file__).resolve().parents[1]
SPEED = 60.0        # a 20-minute time-out in 20 s, the 5-minute end check-in in 5 s


class Notify:
    """The systemd notify socket the hub writes READY=1 / WATCHDOG=1 to."""

    def __init__(self, path: Path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.5)
        self.count = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if self.sock.recv(256) == b"WATCHDOG=1":
                    self.count += 1
            except OSError:
                pass

    def close(self) -> None:
        self._stop.set()
        self._t.join(2)
        self.sock.close()


def _limit_writes(pid: int, limit: int) -> None:
    """Every write at or beyond `limit` bytes of any file fails (EFBIG; Python ignores SIGXFSZ):
    what a full or read-only card does to SQLite."""
    resource.prlimit(pid, resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))


@pytest.mark.parametrize("then", ["space_back", "killed_and_restarted"])
def test_calm_answers_given_while_storage_fails_are_kept_and_the_fault_shows(broker, bus, tmp_path, then):
    """`space_back`: the same hub saves, acknowledges and clears the fault. `killed_and_restarted`:
    the hub is killed while it cannot save (what systemd's watchdog leads to); the restarted hub
    resumes from the state saved before the answers, and the broker gives it the answers again
    because they were never acknowledged."""
    plan = (ROOT / "examples" / "household.toml").read_text().replace(
        'household = "hh-0042"', f'household = "{broker.household}"')
    (tmp_path / "plan.toml").write_text(plan)
    states, prompts, calls = Collect(payloads=True), Collect(payloads=True), Collect(payloads=True)
    panel = bus("panel", start=False)
    panel.on("state", states)
    panel.start()
    wearables = {}
    for p in "ab":
        w = bus(f"wearable-{p}", start=False)
        w.on(f"partner/{p}/prompt", prompts)
        w.start()
        wearables[p] = w
    caller = bus("caller", start=False)
    caller.on("call/request", calls)
    caller.start()
    for c in (panel, caller, *wearables.values()):
        assert c.wait_subscribed(5)
    notify = Notify(tmp_path / "notify.sock")
    env = {**os.environ, "NOTIFY_SOCKET": str(tmp_path / "notify.sock"), "WATCHDOG_USEC": "400000",
           "PYTHONPATH": str(ROOT)}
    err: list[str] = []     # a pipe, not a file: the file-size limit would stop a log file too

    def start_hub() -> tuple[subprocess.Popen, threading.Thread]:
        p = subprocess.Popen(
            [sys.executable, "-m", "firmware.cli", "hub", "--plan", str(tmp_path / "plan.toml"),
             "--broker-dir", str(broker.directory), "--state-dir", str(tmp_path / "hub"),
             "--port", str(broker.port), "--speed", str(SPEED)],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        t = threading.Thread(target=lambda: err.extend(iter(p.stderr.readline, "")), daemon=True)
        t.start()
        return p, t
    hub, reader = start_hub()

    def unfed() -> int:     # the hub's own line for each watchdog period it did not feed
        return sum("the watchdog is not fed" in line for line in list(err))

    def codes() -> set[str]:
        return {f.code for f in states[-1].faults} if states else set()
    try:
        assert wait_until(lambda: bool(states) and states[-1].phase == "monitoring", 20)
        assert wait_until(lambda: notify.count > 0, 10), "the watchdog was never fed"
        panel.publish("panel/press", schemas.PanelPress(press="long", held_s=2.5))
        # nobody's tag is heard: after the grace period the time-out runs (leaver asked to leave)
        # the periodic check-in at 10 minutes, then the end check-in at 20
        def checkin() -> list:
            return [q for q in list(prompts) if q.kind == "checkin"]
        assert wait_until(lambda: len({q.question_id for q in checkin()}) >= 2
                          and states[-1].phase == "checkin", 60), [s.phase for s in states]
        end_q = checkin()[-1].question_id

        _limit_writes(hub.pid, 1)                 # the card fails: no write goes through
        for p in "ab":                            # both partners answer calm while it fails
            wearables[p].publish(f"partner/{p}/input", schemas.PartnerInput(
                kind="answer", question_id=end_q, choice=1, via="wearable"))
        # the panel shows the fault, and the answers were used from memory: both calm
        assert wait_until(lambda: "storage.write_failed" in codes(), 15), codes()
        assert wait_until(lambda: states[-1].phase == "evaluation", 15), states[-1].phase
        assert states[-1].both_calm is True
        if then == "killed_and_restarted":
            hub.kill()                            # kill -9: nothing of the answers was saved
            hub.wait()
            reader.join(5)
            saved = HubDatabase(tmp_path / "hub" / "hub.sqlite3", read_only=True)
            assert "both_calm" not in [e.type for e in saved.events()]
            saved.close()
            seen, fed = len(states), notify.count
            hub, reader = start_hub()
            assert wait_until(lambda: len(states) > seen and "storage.write_failed" not in codes()
                              and states[-1].phase == "evaluation", 20), states[-1]
            assert wait_until(lambda: notify.count > fed, 10), "the restarted hub is not healthy"
            return
        assert wait_until(lambda: unfed() >= 1, 10), "the watchdog is fed while nothing can be saved"
        fed, seen = notify.count, unfed()
        assert wait_until(lambda: unfed() > seen, 10)     # one more watchdog period went by
        assert notify.count == fed, "the watchdog is fed while nothing can be saved"

        _limit_writes(hub.pid, resource.RLIM_INFINITY)   # space comes back
        assert wait_until(lambda: "storage.write_failed" not in codes(), 15), codes()
        assert wait_until(lambda: notify.count > fed, 10), "the watchdog stays unfed"
    finally:
        _finish(hub, reader, notify, err, calls, tmp_path, then == "space_back")


def _finish(hub, reader, notify, err, calls, tmp_path, fault_logged: bool) -> None:
    hub.send_signal(signal.SIGTERM)
    try:
        hub.wait(15)
    except subprocess.TimeoutExpired:
        hub.kill()
        hub.wait()
    notify.close()
    reader.join(5)
    log = "".join(err)
    assert hub.returncode == 0, log[-3000:]
    assert "Traceback" not in log, log[-3000:]
    assert not calls, "contacts were called although both partners answered calm"
    # what was applied while storage failed is in the log now, and nothing was extended
    db = HubDatabase(tmp_path / "hub" / "hub.sqlite3", read_only=True)
    types = [e.type for e in db.events()]
    db.close()
    assert "both_calm" in types and "extended" not in types and "checkin_unanswered" not in types
    if fault_logged:     # the fault and its clearing are events in the log
        assert "fault" in types and "fault_cleared" in types


PLAN = load_plan(ROOT / "examples" / "household.toml", today=dt.date(2026, 11, 21))


@pytest.mark.parametrize("when", ["at_start", "while_running"])
def test_a_clock_a_year_ahead_never_erases_the_event_log(tmp_path, when):
    """A trusted wall clock a year ahead (a wrong time source) at start-up, or one that jumps a
    year while the hub runs: the log is kept; only what is old by the log's own time goes."""
    from mqtt.broker_config import Credentials
    from mqtt.client import BusClient
    real_now = dt.datetime(2026, 11, 21, 19, 0, tzinfo=dt.UTC)
    db = HubDatabase(tmp_path / "hub" / "hub.sqlite3")
    days = PLAN.retention_days
    db.save_step({}, [
        LoggedEvent("ancient", real_now - dt.timedelta(days=days + 10), "started", "procedure", "a", None, {}),
        LoggedEvent("last-month", real_now - dt.timedelta(days=20), "started", "procedure", "a", None, {}),
        LoggedEvent("today", real_now - dt.timedelta(hours=1), "ended", "procedure", None, None, {})])
    db.close()
    year = 365 * 24 * 3600
    clock = ManualClock(start=real_now + dt.timedelta(seconds=year if when == "at_start" else 0))
    bus = BusClient("hub", PLAN.household, Credentials("hub", "x"), state_dir=tmp_path / "bus")
    hub = Hub(PLAN, bus, clock, tmp_path / "hub")
    if when == "while_running":
        hub._prune()
        clock.jump_wall(year)
    clock.advance(3600)
    hub._prune()                       # what start() and the daily pass do
    assert [e.id for e in hub.db.events()] == ["last-month", "today"]
    hub.db.close()
    bus.store.close()


def test_a_hub_whose_state_cannot_be_opened_says_so_in_one_sentence(broker, tmp_path):
    """A state folder that cannot be written (here: a file where the folder should be, as a
    read-only SD card also gives) stops the hub with one sentence naming the file and the cause,
    not a traceback; systemd starts it again and it runs once the storage is back."""
    blocked = tmp_path / "state"
    blocked.write_text("not a folder")
    r = subprocess.run([sys.executable, "-m", "firmware.cli", "hub", "--plan",
                        str(ROOT / "examples" / "household.toml"), "--broker-dir", str(broker.directory),
                        "--state-dir", str(blocked), "--port", str(broker.port)],
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    [line] = [x for x in r.stderr.splitlines() if x.startswith("timeout-hub hub:")]
    assert ".sqlite3: cannot open the database" in line and "is not a folder" in line
