"""The services as systemd runs them: READY=1 on start, WATCHDOG=1 while healthy; the unit files
are accepted by systemd-analyze."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_hub_service_notifies_ready_and_feeds_the_watchdog(broker, tmp_path):
    lines = (ROOT / "examples" / "household.toml").read_text().replace(
        'household = "hh-0042"', f'household = "{broker.household}"')
    (tmp_path / "plan.toml").write_text(lines)
    sock_path = tmp_path / "notify.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(str(sock_path))
    s.settimeout(15)
    env = {**os.environ, "NOTIFY_SOCKET": str(sock_path), "WATCHDOG_USEC": "2000000",
           "PYTHONPATH": str(ROOT)}
    p = subprocess.Popen([sys.executable, "-m", "firmware.cli", "hub", "--plan", str(tmp_path / "plan.toml"),
                          "--broker-dir", str(broker.directory), "--state-dir", str(tmp_path / "hub"),
                          "--port", str(broker.port)], cwd=ROOT, env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        got = set()
        while not {"READY=1", "WATCHDOG=1"} <= got:
            got.add(s.recv(256).decode())
    finally:
        p.send_signal(signal.SIGTERM)
        assert p.wait(15) == 0, p.stderr.read()
        s.close()


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze not installed")
def test_unit_files_parse():
    units = sorted((ROOT / "systemd").glob("*.service"))
    assert len(units) >= 4      # hub, panel, caller, wearable (and whatever install adds)
    r = subprocess.run(["systemd-analyze", "verify", "--man=no", *map(str, units)],
                       capture_output=True, text=True)
    # The ExecStart paths exist only on an installed hub; everything else must be clean.
    problems = [l for l in (r.stdout + r.stderr).splitlines()
                if l.strip() and "/opt/timeout-hub" not in l and "Command " not in l
                and "not executable" not in l and "No such file" not in l]
    assert not problems, "\n".join(problems)


def test_hub_with_sensors_that_fail_shows_their_faults_and_keeps_its_watchdog(broker, bus, tmp_path):
    """--sensors wires the microphone and BLE into the hub: a microphone that is not there and a
    machine without BlueZ become faults on the panel's state, while the procedure runs on."""
    from tests.conftest import wait_until
    from tests.helpers.collect import Collect
    lines = (ROOT / "examples" / "household.toml").read_text().replace(
        'household = "hh-0042"', f'household = "{broker.household}"')
    (tmp_path / "plan.toml").write_text(lines)
    (tmp_path / "sensors.toml").write_text('[microphone]\ndevice = "no-such-microphone"\n'
                                           '[ble]\nadapter = "hci7"\n')
    states = Collect(payloads=True)
    panel = bus("panel", start=False)
    panel.on("state", states)
    panel.start()
    sock_path = tmp_path / "notify.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(str(sock_path))
    s.settimeout(15)
    env = {**os.environ, "NOTIFY_SOCKET": str(sock_path), "WATCHDOG_USEC": "2000000",
           "PYTHONPATH": str(ROOT), "PULSE_SERVER": f"unix:{tmp_path}/no-pulse"}
    p = subprocess.Popen([sys.executable, "-m", "firmware.cli", "hub", "--plan", str(tmp_path / "plan.toml"),
                          "--broker-dir", str(broker.directory), "--state-dir", str(tmp_path / "hub"),
                          "--port", str(broker.port), "--sensors", str(tmp_path / "sensors.toml")],
                         cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def codes():
        return {f.code for st in list(states) for f in st.faults}
    try:
        assert wait_until(lambda: "mic.not_found" in codes() and any(c.startswith("ble.") for c in codes()),
                          timeout=30), codes()
        got = set()
        while not {"READY=1", "WATCHDOG=1"} <= got:
            got.add(s.recv(256).decode())
        assert states[-1].phase == "monitoring"
    finally:
        p.send_signal(signal.SIGTERM)
        assert p.wait(15) == 0, p.stderr.read()[-2000:]
        s.close()
