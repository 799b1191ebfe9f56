"""Issue 15 item 4, `timeout-hub doctor`: on a real private broker with the hub, the panel
(MockFactory) and the caller (simulated SIM7600) running, everything passes (warnings allowed);
then one broken thing at a time gives that check a fail line with its fix, and exit 1."""
from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from core.clock import SystemClock
from firmware.caller.config import load_caller_config, write_caller_config
from firmware.hub.plan import load_plan
from firmware.hub.service import Hub
from firmware.panel.service import Panel
from mqtt import schemas
from sim.modem import SimulatedSIM7600
from tests.conftest import HOUSEHOLD, wait_until
from tests.helpers.plans import write_plan

ROOT = Path(__file__).resolve().parents[1]


def write_caller(etc: Path, broker, modem_port: str, tmp_path: Path) -> Path:
    return write_caller_config(etc / "caller.toml", {
        "household": HOUSEHOLD, "code_word": "Zonnebloem",
        "credentials": f"{broker.directory}/credentials/caller.json", "plan": etc / "household.toml",
        "state_dir": tmp_path / "caller", "port": broker.port, "modem_port": modem_port,
        "health_every_seconds": 1, "gnss_port": 0, "clock_flag": tmp_path / "clock-flag",
        "time_scale": 0.05, "partners": {"a": {"number": "+31600000101"}},
        "contacts": {"a": [{"number": "+31600000201"}, {"number": "+31600000202"}],
                     "b": [{"number": "+31600000301", "language": "en"}]}})


class Home:
    """An installed, running household: etc/ with the plan and the caller's file, the services
    connected to the real broker."""

    def __init__(self, broker, bus, tmp_path: Path):
        from firmware.caller.service import Caller
        self.broker, self.tmp = broker, tmp_path
        self.etc = tmp_path / "etc"
        self.etc.mkdir(mode=0o755)
        write_plan(self.etc / "household.toml", HOUSEHOLD)
        self.sim = SimulatedSIM7600(time_scale=0.05)
        write_caller(self.etc, broker, self.sim.port, tmp_path)
        hub_bus = bus("hub", start=False)
        self.hub = Hub(load_plan(self.etc / "household.toml"), hub_bus, SystemClock(),
                       tmp_path / "hub", tick_seconds=0.05).start()
        panel_bus = bus("panel", start=False)
        self.panel = Panel(panel_bus, pin_factory=MockFactory())
        panel_bus.start()
        self.caller = Caller(load_caller_config(self.etc / "caller.toml"),
                             bus("caller", start=False)).start()
        for b in (hub_bus, panel_bus, self.caller.bus):
            assert b.wait_connected(10)

    def doctor(self, *extra: str) -> dict:
        r = subprocess.run([sys.executable, "-m", "firmware.cli", "doctor", "--json",
                            "--etc", str(self.etc), "--state", str(self.tmp),
                            "--broker-dir", str(self.broker.directory),
                            "--port", str(self.broker.port), "--listen", "0.5", *extra],
                           cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert "Traceback" not in r.stderr, r.stderr
        out = json.loads(r.stdout)
        out["code"] = r.returncode
        out["by_name"] = {c["name"]: c for c in out["checks"]}
        return out

    def close(self) -> None:
        self.caller.stop()
        self.panel.close()
        self.hub.stop()
        self.sim.close()


@pytest.fixture
def home(broker, bus, tmp_path):
    h = Home(broker, bus, tmp_path)
    # the caller checks its modem once a second: wait for that report, not for a fixed time
    assert wait_until(lambda: h.doctor()["by_name"]["modem, SIM, network, signal"]["status"]
                      == "pass", timeout=30)
    yield h
    h.close()


def test_a_running_household_passes_with_one_line_per_check(home):
    out = home.doctor()
    assert out["code"] == 0 and out["ok"], out["checks"]
    names = set(out["by_name"])
    for name in ("household plan", "plan and caller file consistent", "broker authentication",
                 "service hub", "service panel", "service caller", "modem, SIM, network, signal",
                 "clock synchronised", "microphone", "BLE adapter",
                 "tags and door sensors heard recently", "file permissions", "disk space"):
        assert name in names, name
    assert not [c for c in out["checks"] if c["status"] == "fail"]
    # the plain output: one line per check and a summary
    r = subprocess.run([sys.executable, "-m", "firmware.cli", "doctor", "--etc", str(home.etc),
                        "--state", str(home.tmp), "--broker-dir", str(home.broker.directory),
                        "--port", str(home.broker.port), "--listen", "0.5"],
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0
    assert "PASS  service caller: online" in r.stdout and " 0 fail" in r.stdout


def _failed(out: dict) -> dict[str, dict]:
    return {c["name"]: c for c in out["checks"] if c["status"] == "fail"}


def test_a_stopped_service_fails_with_the_restart_fix(home):
    home.caller.stop()
    out = home.doctor()
    failed = _failed(out)
    assert out["code"] == 1 and list(failed) == ["service caller"], out["checks"]
    assert "caller is stopped" in failed["service caller"]["detail"]
    assert "systemctl restart timeout-hub-caller" in failed["service caller"]["fix"]


def test_a_wrong_broker_password_fails_broker_authentication(home, tmp_path):
    broker_dir = tmp_path / "copied-broker"
    (broker_dir / "credentials").mkdir(parents=True)
    (broker_dir / "credentials" / "doctor.json").write_text(
        json.dumps({"username": "doctor", "password": "not-the-password"}))
    os.chmod(broker_dir / "credentials" / "doctor.json", 0o600)
    out = home.doctor("--broker-dir", str(broker_dir))
    failed = _failed(out)
    assert out["code"] == 1 and list(failed) == ["broker authentication"], out["checks"]
    assert "broker-config" in failed["broker authentication"]["fix"]


def test_a_caller_file_others_can_read_fails_the_permissions(home):
    os.chmod(home.etc / "caller.toml", 0o644)
    out = home.doctor()
    failed = _failed(out)
    assert out["code"] == 1 and "file permissions" in failed, out["checks"]
    assert "caller.toml is readable by others" in failed["file permissions"]["detail"]


def test_a_plan_that_does_not_fit_the_caller_file_fails(home):
    write_plan(home.etc / "household.toml", HOUSEHOLD, b={"contacts": 3})
    out = home.doctor()
    failed = _failed(out)
    assert out["code"] == 1 and list(failed) == ["plan and caller file consistent"], out["checks"]
    assert "the plan gives b 3 contacts, the caller file 1" in failed[
        "plan and caller file consistent"]["detail"]


def test_a_passed_evaluation_date_is_a_warning_not_a_failure(home):
    past = dt.date.today() - dt.timedelta(days=3)
    future = dt.date.today() + dt.timedelta(days=30)
    plan = (home.etc / "household.toml")
    text = plan.read_text()
    import tomllib

    import tomli_w
    data = tomllib.loads(text)
    data["evaluation_dates"] = [past, future]
    plan.write_text(tomli_w.dumps(data))
    out = home.doctor()
    assert out["code"] == 0, out["checks"]
    assert out["by_name"]["household plan"]["status"] == "warn"
    assert past.isoformat() in out["by_name"]["household plan"]["detail"]


def test_a_modem_without_sim_fails_the_modem_check(home):
    home.sim.sim_present = False
    assert wait_until(lambda: home.doctor()["by_name"]["modem, SIM, network, signal"]["status"]
                      == "fail", timeout=30)
    out = home.doctor()
    failed = _failed(out)
    assert out["code"] == 1 and list(failed) == ["modem, SIM, network, signal"], out["checks"]
    assert "modem.no_sim" in failed["modem, SIM, network, signal"]["detail"]


def test_a_missing_microphone_and_a_silent_tag_fail_their_checks(home):
    now = dt.datetime.now(dt.UTC)
    home.hub.sensor_faults("mic", [schemas.Fault(code="mic.not_found", service="hub", since=now,
                                                 reason="no microphone 'hw:1'")])
    out = home.doctor()
    failed = _failed(out)
    assert out["code"] == 1 and list(failed) == ["microphone"], out["checks"]
    home.hub.sensor_faults("mic", [])
    home.hub.sensor_faults("ble", [schemas.Fault(code="ble.tag_missing.a.1", service="hub",
                                                 since=now, reason="tag a 1 not heard for a day")])
    failed = _failed(home.doctor())
    assert list(failed) == ["tags and door sensors heard recently"]
    assert "ble.tag_missing.a.1" in failed["tags and door sensors heard recently"]["detail"]


def test_without_a_broker_or_files_doctor_says_so_without_a_traceback(tmp_path):
    r = subprocess.run([sys.executable, "-m", "firmware.cli", "doctor", "--etc",
                        str(tmp_path / "nothing"), "--state", str(tmp_path)],
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert "FAIL  household plan:" in r.stdout and "check-config" in r.stdout
