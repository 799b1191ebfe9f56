"""Issue 20, harm 2: a plan that expires. Once the plan's evaluation date had passed, `hub`
refused to start ("is in the past"), so the next power cut or update left the household without a
hub. A date is a rule for the installer: check-config refuses or warns, doctor warns, the hub
starts and logs a warning."""
from __future__ import annotations

import datetime as dt
import signal
import subprocess
import sys
from pathlib import Path

from core.clock import ManualClock
from firmware.hub.plan import date_findings, load_plan
from firmware.hub.service import Hub
from mqtt.client import BusClient
from tests.conftest import wait_until
from tests.helpers.collect import Collect

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "household.toml"
TODAY = dt.date.today()


def plan_file(tmp_path: Path, dates: list[dt.date], household: str = "hh-0042") -> Path:
    text = EXAMPLE.read_text().replace("evaluation_dates = [2027-01-15, 2027-03-15]",
                                       f"evaluation_dates = [{', '.join(d.isoformat() for d in dates)}]")
    assert "evaluation_dates = [" + (dates[0].isoformat() if dates else "]") in text
    path = tmp_path / "plan.toml"
    path.write_text(text.replace('household = "hh-0042"', f'household = "{household}"'))
    return path


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "firmware.cli", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


def test_a_hub_whose_plan_date_has_passed_starts_and_warns(broker, bus, tmp_path):
    plan = plan_file(tmp_path, [TODAY - dt.timedelta(days=40), TODAY - dt.timedelta(days=1)],
                     household=broker.household)
    states = Collect(payloads=True)
    panel = bus("panel", start=False)
    panel.on("state", states)
    panel.start()
    assert panel.wait_subscribed(5)
    p = subprocess.Popen([sys.executable, "-m", "firmware.cli", "hub", "--plan", str(plan),
                          "--broker-dir", str(broker.directory), "--state-dir", str(tmp_path / "hub"),
                          "--port", str(broker.port)], cwd=ROOT,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        started = wait_until(lambda: bool(states) or p.poll() is not None, 20)
        assert started and p.poll() is None, f"the hub did not start: {p.stderr.read() if p.poll() is not None else ''}"
        assert states[-1].phase == "monitoring"
    finally:
        p.send_signal(signal.SIGTERM)
        code = p.wait(15)
    err = p.stderr.read()
    assert code == 0, err
    yesterday = (TODAY - dt.timedelta(days=1)).isoformat()
    assert f"evaluation_dates: {(TODAY - dt.timedelta(days=40)).isoformat()}, {yesterday} are in the past" in err
    assert "the hub runs on" in err and "Traceback" not in err


def test_a_date_that_passes_during_the_run_does_not_stop_the_next_start(tmp_path, broker):
    """The installer checked the plan with its evaluation on the day itself; the day after, the
    hub restarts (a power cut) with the same plan and the same saved state."""
    TODAY = dt.date.today()     # now, not at import: `check-config` asks the clock (a suite can cross midnight)
    path = plan_file(tmp_path, [TODAY], household=broker.household)
    assert date_findings(load_plan(path, today=TODAY), TODAY) == []
    assert cli("check-config", str(path)).returncode == 0
    tomorrow = TODAY + dt.timedelta(days=1)
    plan = load_plan(path, today=tomorrow)        # before issue 20: PlanError, "is in the past"
    [finding] = date_findings(plan, tomorrow)
    assert finding.install and "no evaluation is planned ahead" in finding.sentence
    bus = BusClient("hub", plan.household, broker.creds("hub"), port=broker.port,
                    state_dir=tmp_path / "hub", reconnect_min=0.1, reconnect_max=0.5)
    hub = Hub(plan, bus, ManualClock(), tmp_path / "hub", tick_seconds=0.02).start()
    try:
        assert wait_until(hub.alive, 5)
        assert hub.public_state()["phase"] == "monitoring"
    finally:
        hub.stop()


def test_check_config_warns_for_held_evaluations_and_refuses_without_one_ahead(tmp_path):
    past, ahead = TODAY - dt.timedelta(days=3), TODAY + dt.timedelta(days=60)
    r = cli("check-config", str(plan_file(tmp_path, [past, ahead])))
    assert r.returncode == 0, r.stderr
    assert "is valid" in r.stdout
    assert f"warning: evaluation_dates: {past.isoformat()} is in the past" in r.stdout
    r = cli("check-config", str(plan_file(tmp_path, [past])))
    assert r.returncode == 2
    assert (f"  - evaluation_dates: {past.isoformat()} is in the past and no evaluation is planned "
            "ahead; plan the next evaluation with both partners") in r.stderr
    assert "Traceback" not in r.stderr


def test_doctor_warns_about_a_passed_date_and_says_the_hub_runs(tmp_path):
    """The plan's line of `doctor` (the other checks need an installed hub: tests/test_doctor.py)."""
    past = TODAY - dt.timedelta(days=3)
    r = cli("doctor", "--etc", str(tmp_path), "--plan", str(plan_file(tmp_path, [past])))
    assert f"WARN  household plan: {past.isoformat()} is in the past" in r.stdout, r.stdout
    r = cli("doctor", "--etc", str(tmp_path), "--plan",
            str(plan_file(tmp_path, [TODAY + dt.timedelta(days=9)])))
    assert "PASS  household plan: valid for household" in r.stdout
    assert "the hub starts with it" in r.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text(EXAMPLE.read_text().replace("minimum_minutes = 20", "minimum_minutes = 10"))
    r = cli("doctor", "--etc", str(tmp_path), "--plan", str(bad))
    assert r.returncode == 1 and "FAIL  household plan: timeout.minimum_minutes" in r.stdout
    assert "Traceback" not in r.stderr
