"""Issue 15 item 5, `timeout-hub reset` (R15): only the installer, on the device. It needs the
installer code and short presses on the real panel (MockFactory pins, real broker); a partner at
the panel without the code, or someone with the code but not at the panel, wipes nothing. A reset
removes the household's data and credentials and keeps one line: the date."""
from __future__ import annotations

import datetime as dt
import os
import re
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from firmware.panel.service import Panel, PanelPins
from firmware.reset import write_code
from tests.conftest import HOUSEHOLD
from tests.helpers.plans import write_plan

ROOT = Path(__file__).resolve().parents[1]
CODE = "org-code-7431"


class Device:
    def __init__(self, broker, bus, tmp_path: Path):
        self.broker, self.etc, self.state = broker, tmp_path / "etc", tmp_path / "state"
        self.etc.mkdir()
        write_plan(self.etc / "household.toml", HOUSEHOLD)
        (self.etc / "caller.toml").write_text('household = "test-home"\n')   # the numbers' file
        (self.etc / "panel.toml").write_text("# the panel's pins: the device's, not the household's\n")
        write_code(self.etc / "installer-code", CODE)
        for service, name in (("hub", "hub.sqlite3"), ("caller", "calls.sqlite3"),
                              ("panel", "outbox.sqlite3")):
            (self.state / service).mkdir(parents=True)
            (self.state / service / name).write_text("household data")
        self.factory = MockFactory()
        panel_bus = bus("panel", start=False)
        self.panel = Panel(panel_bus, pin_factory=self.factory, bounce_s=0.01)
        panel_bus.start()
        assert panel_bus.wait_subscribed(5)

    def reset(self, code: str, *extra: str) -> subprocess.Popen:
        p = subprocess.Popen([sys.executable, "-m", "firmware.cli", "reset", "--etc", str(self.etc),
                              "--state", str(self.state), "--broker-dir", str(self.broker.directory),
                              "--port", str(self.broker.port), *extra],
                             cwd=ROOT, stdin=self._typed(code), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        return p

    def _typed(self, code: str):
        """What the installer types at the prompt (stdin is not a terminal here)."""
        path = self.etc.parent / "typed"
        path.write_text(code + "\n")
        return path.open()

    def asked_presses(self, p: subprocess.Popen) -> int:
        assert p.stdout is not None
        line = p.stdout.readline()
        m = re.search(r"briefly (\d) times", line)
        assert m, (line, p.stderr.read() if p.stderr else "")
        return int(m.group(1))

    def press(self, n: int) -> None:
        pin = self.factory.pin(PanelPins().timeout_button)
        for _ in range(n):
            pin.drive_low()
            time.sleep(0.15)
            pin.drive_high()
            time.sleep(0.25)

    def untouched(self) -> bool:
        return ((self.etc / "household.toml").exists() and (self.etc / "caller.toml").exists()
                and (self.state / "hub" / "hub.sqlite3").exists()
                and (self.broker.directory / "credentials" / "hub.json").exists()
                and not (self.state / "reset-record").exists())


@pytest.fixture
def device(broker, bus, tmp_path):
    d = Device(broker, bus, tmp_path)
    yield d
    d.panel.close()


def test_the_installer_with_code_and_presses_wipes_the_household_and_keeps_only_the_date(device):
    p = device.reset(CODE, "--no-stop")
    device.press(device.asked_presses(p))
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    # the household's data and credentials are gone: no plan (the hub does not start), no
    # numbers, no passwords (nobody connects, a partner's wearable neither), no state or outbox
    assert not (device.etc / "household.toml").exists()
    assert not (device.etc / "caller.toml").exists()
    assert not device.broker.directory.exists()
    assert sorted(p.name for p in device.state.iterdir()) == ["reset-record"]
    # the device's own setup and the organisation's code stay
    assert (device.etc / "panel.toml").exists() and (device.etc / "installer-code").exists()
    rec = device.state / "reset-record"
    assert rec.read_text() == f"reset {dt.date.today().isoformat()}\n"
    assert stat.S_IMODE(rec.stat().st_mode) == 0o600
    assert "provision the hub again" in out
    r = subprocess.run([sys.executable, "-m", "firmware.cli", "hub", "--plan",
                        str(device.etc / "household.toml"), "--broker-dir", str(device.etc / "broker")],
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "does not exist" in r.stderr   # nothing left to run with


def test_a_partner_at_the_panel_without_the_code_cannot_reset(device):
    p = device.reset("1234 5678 guess")
    out, err = p.communicate(timeout=60)
    device.press(4)
    assert p.returncode == 2 and "not the installer code" in err and "Traceback" not in err
    assert "times" not in out           # never got as far as the presses
    assert device.untouched()


def test_the_code_without_presses_on_the_panel_wipes_nothing(device):
    p = device.reset(CODE, "--no-stop", "--within", "2")
    device.asked_presses(p)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 2 and re.search(r"pressed 0 of \d times", err), err
    assert device.untouched()


def test_more_presses_than_asked_are_no_answer(device):
    p = device.reset(CODE, "--no-stop")
    device.press(device.asked_presses(p) + 1)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 2 and re.search(r"pressed \d times, not \d", err), err
    assert device.untouched()


def test_a_code_file_others_can_read_is_refused(device):
    os.chmod(device.etc / "installer-code", 0o644)
    p = device.reset(CODE)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 2 and "chmod 600" in err
    assert device.untouched()


def test_the_code_is_kept_only_as_a_hash(device):
    text = (device.etc / "installer-code").read_text()
    assert CODE not in text and "pbkdf2_sha256" in text
    assert stat.S_IMODE((device.etc / "installer-code").stat().st_mode) == 0o600
