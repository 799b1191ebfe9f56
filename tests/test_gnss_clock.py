"""The modem's GNSS sets the clock through the real gpsd, fed by gpsfake with NMEA made here."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from datetime import UTC, datetime

import pytest

from firmware.caller.gnss_clock import ClockSync, gnss_time
from mqtt.broker_process import free_port


def nmea(lines: list[str]) -> str:
    def ck(body: str) -> str:
        c = 0
        for ch in body:
            c ^= ord(ch)
        return f"${body}*{c:02X}"
    return "\r\n".join(ck(l) for l in lines) + "\r\n"


def fix_track(valid: bool) -> str:
    out = []
    for i in range(40):
        t = f"2000{i:02d}"
        if valid:
            out += [f"GPRMC,{t}.00,A,5222.0000,N,00454.0000,E,0.0,0.0,211126,,,A",
                    f"GPGGA,{t}.00,5222.0000,N,00454.0000,E,1,08,1.0,0.0,M,0.0,M,,"]
        else:   # receiver on, no fix yet
            out += [f"GPRMC,{t}.00,V,,,,,,,211126,,,N", f"GPGGA,{t}.00,,,,,0,00,99.9,,,,,,"]
    return nmea(out)


@pytest.fixture
def gpsfake(tmp_path):
    procs = []

    def start(track: str) -> int:
        if not shutil.which("gpsfake"):
            pytest.fail("gpsfake is not installed (gpsd-clients): run `make test`")
        f = tmp_path / f"track{len(procs)}.nmea"
        f.write_text(track)
        port = free_port()
        p = subprocess.Popen(["gpsfake", "-q", "-1", "-P", str(port), "-c", "0.1", str(f)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)   # gpsfake starts gpsd: stop both
        procs.append(p)
        # ready once gpsd (started by gpsfake) takes connections on the port
        import socket
        deadline = time.monotonic() + 30
        while True:
            if p.poll() is not None:
                pytest.fail(f"gpsfake exited ({p.returncode}) before gpsd was listening")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return port
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"gpsd did not listen on port {port} within 30 s")
                time.sleep(0.05)
    yield start
    for p in procs:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(p.pid, sig)
                p.wait(3)
                break
            except subprocess.TimeoutExpired:
                continue
            except ProcessLookupError:
                break


def gpsd_mode(port: int, timeout: float = 20.0) -> int:
    """The fix mode gpsd reports once it has the receiver's data (1: no fix, 2-3: a fix); 0 if
    it never has any within `timeout`."""
    import gpsd
    gpsd.connect(host="127.0.0.1", port=port)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            mode = gpsd.get_current().mode
        except UserWarning:              # "GPS not active": nothing from the receiver yet
            mode = 0
        if mode:
            return mode
        time.sleep(0.1)
    return 0


def test_a_fix_sets_the_clock_and_marks_it_trusted(gpsfake, tmp_path):
    port = gpsfake(fix_track(valid=True))
    set_to = []
    sync = ClockSync(gnss=("127.0.0.1", port), flag=str(tmp_path / "flag"),
                     ntp_flag=str(tmp_path / "no-ntp"), set_clock=set_to.append)
    assert sync.check() == "gnss"
    assert set_to and set_to[0].date() == datetime(2026, 11, 21).date()
    assert set_to[0].tzinfo == UTC and set_to[0].hour == 20
    assert (tmp_path / "flag").exists()


def test_gps_without_a_fix_never_sets_the_clock(gpsfake, tmp_path):
    port = gpsfake(fix_track(valid=False))
    # first the proof that gpsd hears the receiver, and that it has no fix: only then does
    # "no time" mean "no fix" rather than "no gpsd yet"
    assert gpsd_mode(port) == 1
    assert gnss_time("127.0.0.1", port, timeout=3) is None
    set_to = []
    sync = ClockSync(gnss=("127.0.0.1", port), flag=str(tmp_path / "flag"),
                     ntp_flag=str(tmp_path / "no-ntp"), set_clock=set_to.append)
    sync.gnss = ("127.0.0.1", port)
    assert sync.check() == "none" and not set_to and not (tmp_path / "flag").exists()


def test_no_gpsd_is_no_time_and_ntp_wins(tmp_path):
    assert gnss_time("127.0.0.1", free_port(), timeout=1) is None
    (tmp_path / "ntp").write_text("")
    sync = ClockSync(gnss=None, flag=str(tmp_path / "flag"), ntp_flag=str(tmp_path / "ntp"),
                     set_clock=lambda t: pytest.fail("NTP is synchronised: GNSS must not set it"))
    assert sync.check() == "ntp"
