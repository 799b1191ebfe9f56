"""Small defects seen on the way (issue 12, item 5): a section per defect, each with the tests
that fail without its fix."""
from __future__ import annotations

import ast
import itertools
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
import tomllib
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from firmware.caller.modem.errors import ModemError
from firmware.caller.service import Caller, CallerConfig, load_caller_config, write_caller_config
from firmware.hub.eventlog import HubDatabase, LoggedEvent
from mqtt import schemas
from mqtt.client import Message
from tests.conftest import wait_until
from tests.helpers.plans import write_plan

ROOT = Path(__file__).resolve().parents[1]


def cli(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "firmware.cli", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, **kw)


def one_sentence(stderr: str) -> bool:
    return len(stderr.strip().splitlines()) == 1 and "Traceback" not in stderr


# -- 1. the caller's file is written by tomli-w ----------------------------------------------

def test_caller_file_round_trips_a_newline_and_leaves_out_none(tmp_path):
    path = write_caller_config(tmp_path / "caller.toml", {
        "household": "test-home", "code_word": "Zonnebloem", "credentials": tmp_path / "c.json",
        "power_gpio": None, "state_dir": tmp_path / "caller\nnieuw \"x\" \\ y",
        "plan": write_plan(tmp_path / "household.toml", "test-home"),
        "partners": {"a": {"number": "+31630000001"}, "b": {"number": None}},
        "contacts": {"a": [{"number": "+31610000001"}]}})
    data = tomllib.loads(path.read_text())
    assert "power_gpio" not in data and "number" not in data["partners"]["b"]   # TOML has no null
    assert data["credentials"] == str(tmp_path / "c.json")
    assert data["state_dir"] == str(tmp_path / "caller\nnieuw \"x\" \\ y")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    cfg = load_caller_config(path)
    assert cfg.power_gpio is None and cfg.partners["b"].number is None
    assert cfg.state_dir == str(tmp_path / "caller\nnieuw \"x\" \\ y")


# -- 2. no modem: the SMS loop waits instead of spinning --------------------------------------

class _QuietBus:
    def publish(self, *a, **kw) -> None:
        pass


def _caller(tmp_path, open_modem) -> Caller:
    cfg = CallerConfig(household="test-home", code_word="Zonnebloem", credentials="unused",
                       state_dir=str(tmp_path / "caller"), gnss_port=0,
                       clock_flag=str(tmp_path / "clock-flag"))
    return Caller(cfg, _QuietBus(), open_modem=open_modem)


def test_without_a_modem_the_sms_loop_backs_off_instead_of_spinning(tmp_path):
    opens: list[float] = []

    def no_modem():
        opens.append(time.monotonic())
        raise ModemError("modem port /dev/ttyUSB2 is gone")

    c = _caller(tmp_path, no_modem)
    c.sms_retry_s = (0.05, 0.2)
    t = threading.Thread(target=c._sms_loop, daemon=True)
    try:
        c._queue_sms(3)                  # a text arrived, then the modem went away
        t0 = time.monotonic()
        t.start()
        assert wait_until(lambda: len(opens) >= 5, 10), opens
        # four waits between five tries: 0.05 + 0.1 + 0.2 + 0.2 s (a spinning loop: microseconds)
        assert opens[4] - t0 >= 0.5, [round(o - t0, 3) for o in opens]
        gaps = [b - a for a, b in itertools.pairwise(opens)]
        assert all(g >= 0.9 * w for g, w in zip(gaps, (0.05, 0.1, 0.2, 0.2), strict=False)), gaps   # it grows
        assert c._sms_indexes == [3], "the message stays queued for when the modem is back"
    finally:
        c._stop.set()
        t.join(5)
        c.queue.close()
    assert not t.is_alive(), "stop ends the wait at once"


# -- 3. the services log INFO --------------------------------------------------------------

_SETUP = ("import logging, sys\n"
          "from firmware import cli\n"
          "cli.configure_logging(cli.build_parser().parse_args(sys.argv[1:]))\n"
          "logging.getLogger('firmware.caller.service').info('a ladder step')\n"
          "logging.getLogger('firmware.caller.service').debug('a detail')\n")


@pytest.mark.parametrize("argv, info, debug", [
    (["caller", "--config", "caller.toml"], True, False),
    (["hub", "--plan", "p.toml", "--broker-dir", "b"], True, False),
    (["panel", "--config", "panel.toml"], True, False),
    (["-q", "caller", "--config", "caller.toml"], False, False),
    (["-v", "caller", "--config", "caller.toml"], True, True),
    (["log"], False, False),                       # a one-shot command prints its own output
])
def test_the_services_log_info_to_stderr_by_default(argv, info, debug):
    r = subprocess.run([sys.executable, "-c", _SETUP, *argv], cwd=ROOT, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert ("INFO firmware.caller.service: a ladder step" in r.stderr) == info, r.stderr
    assert ("DEBUG firmware.caller.service: a detail" in r.stderr) == debug, r.stderr


def test_the_hub_command_logs_its_connection_at_info(broker, tmp_path):
    (tmp_path / "plan.toml").write_text((ROOT / "examples" / "household.toml").read_text().replace(
        'household = "hh-0042"', f'household = "{broker.household}"'))
    p = subprocess.Popen([sys.executable, "-m", "firmware.cli", "hub", "--plan", str(tmp_path / "plan.toml"),
                          "--broker-dir", str(broker.directory), "--state-dir", str(tmp_path / "hub"),
                          "--port", str(broker.port)], cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)},
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    out: list[str] = []
    readers = [threading.Thread(target=lambda: lines.extend(p.stderr), daemon=True),
               threading.Thread(target=lambda: out.extend(p.stdout), daemon=True)]
    for t in readers:
        t.start()
    try:
        assert wait_until(lambda: any(" INFO " in l and "hub: connected to" in l for l in lines), 30), lines
        assert wait_until(lambda: any("running" in l for l in out), 30), out   # SIGTERM is handled now
    finally:
        p.send_signal(signal.SIGTERM)
        assert p.wait(15) == 0, lines
        for t in readers:
            t.join(5)


# -- 4. check-config given a folder: one sentence and exit 2 -------------------------------

def test_check_config_given_a_folder_says_so_in_one_sentence(tmp_path):
    r = cli("check-config", str(tmp_path))
    assert r.returncode == 2 and one_sentence(r.stderr), r.stderr
    assert "is a folder" in r.stderr and "household.toml" in r.stderr


@pytest.mark.parametrize("content, says", [(None, "does not exist"),
                                           ("household = ", "is not valid TOML"),
                                           (b"\xff\xfe", "is not UTF-8 text")])
def test_check_config_on_a_file_it_cannot_read_says_so_in_one_sentence(tmp_path, content, says):
    plan = tmp_path / "plan.toml"
    if isinstance(content, bytes):
        plan.write_bytes(content)
    elif content is not None:
        plan.write_text(content)
    r = cli("check-config", str(plan))
    assert r.returncode == 2 and one_sentence(r.stderr), r.stderr
    assert f"{plan} {says}" in r.stderr


# -- 5. `log` reads the hub's database without writing to it; one sentence when it cannot ----

@pytest.mark.parametrize("content", [b"not a database " * 400, b"", b"SQLite format 3\x00" + b"\xff" * 200])
def test_log_on_a_corrupt_database_says_so_in_one_sentence(tmp_path, content):
    (tmp_path / "hub.sqlite3").write_bytes(content)
    r = cli("log", "--state-dir", str(tmp_path))
    assert r.returncode == 2 and one_sentence(r.stderr), r.stderr
    assert "cannot be read as the hub's event log" in r.stderr
    assert sorted(os.listdir(tmp_path)) == ["hub.sqlite3"]


def _event(i: int) -> LoggedEvent:
    return LoggedEvent(str(uuid.uuid4()), datetime(2026, 11, 21, 19, i, tzinfo=UTC),
                       "started", "procedure", "a", None, {"n": i})


def _fingerprint(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file but the WAL index (-shm): SQLite's shared scratch for readers and writers."""
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(folder.iterdir()) if not p.name.endswith("-shm")}


def test_log_reads_after_a_crash_without_checkpointing_the_hub_s_wal(tmp_path):
    """The hub died with events only in its -wal: `log` lists them and changes nothing (a
    read-write connection would checkpoint the WAL into the database and delete it on close)."""
    live, crashed = tmp_path / "live", tmp_path / "crashed"
    db = HubDatabase(live / "hub.sqlite3")
    db.save_step({}, [_event(1), _event(2)])
    crashed.mkdir()
    for name in os.listdir(live):            # the files as a power cut leaves them
        shutil.copy2(live / name, crashed / name)
    db.close()
    assert (crashed / "hub.sqlite3-wal").stat().st_size > 0
    before = _fingerprint(crashed)
    names = sorted(os.listdir(crashed))
    r = cli("log", "--state-dir", str(crashed), "--json")
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.splitlines()) == 2
    assert sorted(os.listdir(crashed)) == names and _fingerprint(crashed) == before


def test_log_on_a_read_only_copy_creates_no_file(tmp_path):
    """A cleanly closed log (no -wal): read as immutable, no -wal or -shm appears beside it."""
    folder = tmp_path / "copy"
    db = HubDatabase(folder / "hub.sqlite3")
    db.save_step({}, [_event(1)])
    db.close()
    assert os.listdir(folder) == ["hub.sqlite3"]
    os.chmod(folder / "hub.sqlite3", 0o444)
    os.chmod(folder, 0o555)
    try:
        before = _fingerprint(folder)
        r = cli("log", "--state-dir", str(folder))
        assert r.returncode == 0, r.stderr
        assert "(1 events)" in r.stdout
        assert os.listdir(folder) == ["hub.sqlite3"] and _fingerprint(folder) == before
    finally:
        os.chmod(folder, 0o755)


def test_log_while_the_hub_writes(tmp_path):
    db = HubDatabase(tmp_path / "hub.sqlite3")
    try:
        db.save_step({}, [_event(1)])
        names = sorted(os.listdir(tmp_path))
        r = cli("log", "--state-dir", str(tmp_path), "--json")
        assert r.returncode == 0 and len(r.stdout.splitlines()) == 1, r.stderr
        assert sorted(os.listdir(tmp_path)) == names
        db.save_step({}, [_event(2)])          # the hub is not locked out of its own log
        assert len(db.events()) == 2
    finally:
        db.close()


def test_the_read_only_log_refuses_writes(tmp_path):
    db = HubDatabase(tmp_path / "hub.sqlite3")
    db.save_step({}, [_event(1)])
    db.close()
    ro = HubDatabase(tmp_path / "hub.sqlite3", read_only=True)
    try:
        assert len(ro.events()) == 1
        with pytest.raises(Exception, match="readonly"):
            ro.save_step({}, [_event(2)])
    finally:
        ro.close()


# -- 6. the README stays inside the repository ----------------------------------------------

def test_readme_and_examples_point_only_inside_the_repository():
    for doc in [ROOT / "README.md", *sorted((ROOT / "examples").iterdir())]:
        text = doc.read_text()
        outside = re.findall(r"\.\./[\w./-]+", text)
        assert not outside, f"{doc.name} points outside the repository: {outside}"


def test_readme_says_make_demo_needs_the_speech_packages():
    text = " ".join((ROOT / "README.md").read_text().split())
    said = re.search(r"the speech packages ([^)]*)\)", text)
    assert said and "make demo" in said.group(1), said and said.group(1)
    assert "make demo" in (ROOT / "scripts" / "bootstrap.sh").read_text().split(
        "fillets-ng-data-nl", 1)[1].splitlines()[0]


# -- 8. no assert as a check (gone under python -O) -------------------------------------------

def test_no_assert_statements_in_the_shipped_packages():
    found = [f"{f.relative_to(ROOT)}:{n.lineno}"
             for pkg in ("core", "firmware", "dsp", "ble", "mqtt", "org", "report")
             for f in sorted((ROOT / pkg).rglob("*.py"))
             for n in ast.walk(ast.parse(f.read_text())) if isinstance(n, ast.Assert)]
    assert not found, found


def test_a_handler_given_the_wrong_payload_raises_a_type_error(tmp_path):
    c = _caller(tmp_path, lambda: None)
    try:
        wrong = Message(topic="call/request", payload=schemas.Health(faults=[]), partner=None,
                        retained=False)
        with pytest.raises(TypeError, match="CallRequest"):
            c._on_request(wrong)
        with pytest.raises(TypeError, match="PartnerPrompt"):
            c._on_prompt(Message(topic="partner/a/prompt", payload="online", partner="a",
                                 retained=False))
    finally:
        c.queue.close()


def test_an_evaluation_that_keeps_a_topic_for_the_session_date_reaches_the_bus():
    """The evaluation outcome carries the next session's date ("2027-01-15"); the contract's
    phone-number guard took its eight digits for a number, so the hub's step raised and the
    outcome (and everything after it in that step) never left."""
    from firmware.hub import procedure as P
    from firmware.hub.service import Hub
    out = P.EventOut(str(uuid.uuid4()), "evaluation_outcome", "evaluation",
                     timeout_id=str(uuid.uuid4()),
                     data={"discuss": "next_session", "decided_by": "agreed",
                           "topics_for_session": 1, "session_date": "2027-01-15"})
    topic, message = Hub._message(out, datetime(2027, 1, 2, 20, tzinfo=UTC))
    assert topic == "events"
    again = schemas.Event.model_validate_json(message.model_dump_json())
    assert again.data["session_date"] == "2027-01-15"
    with pytest.raises(ValueError, match="phone number"):   # a real number is still refused
        schemas.Event(type="evaluation", category="evaluation", data={"code": "0612345678"})


def test_a_call_result_whose_request_id_is_mostly_digits_reaches_the_bus():
    """About one uuid4 in eight has 8+ digits between dashes; the phone guard refused those, so
    the hub's step raised and one call result in eight never reached the bus or the log."""
    from firmware.hub import procedure as P
    from firmware.hub.service import Hub
    request = "12345678-1234-4123-8123-123456789012"
    for type_ in ("call_step", "call_result"):
        out = P.EventOut(str(uuid.uuid4()), type_, "call", "b", str(uuid.uuid4()),
                         data={"outcome": "acknowledged", "request_id": request})
        _topic, message = Hub._message(out, datetime(2027, 1, 2, 20, tzinfo=UTC))
        assert schemas.Event.model_validate_json(message.model_dump_json()).data["request_id"] == request
    refused = sum(1 for _ in range(2000) if _refused(str(uuid.uuid4())))
    assert refused == 0


def _refused(text: str) -> bool:
    try:
        schemas.Event(type="call_result", category="call", partner="a", data={"request_id": text})
    except ValueError:
        return True
    return False
