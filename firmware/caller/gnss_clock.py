"""The Pi has no real-time clock. When NTP has not synchronised it (no internet), the modem's
GNSS, read through gpsd with gpsd-py3, sets it; a flag file then tells the hub that the wall
clock can be believed (core.clock.SystemClock). Without a fix there is no time: GPS without a
fix never sets the clock."""
from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from core.clock import GNSS_FLAG

log = logging.getLogger(__name__)



def gnss_time(host: str = "127.0.0.1", port: int = 2947, timeout: float = 10.0) -> datetime | None:
    """UTC from gpsd when it has a 2D or 3D fix, else None (no fix, no gpsd, garbled reply)."""
    import gpsd
    try:
        gpsd.connect(host=host, port=port)
    except (OSError, ConnectionError) as e:
        log.warning("gnss: gpsd not reachable at %s:%d: %s", host, port, e)
        return None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            packet = gpsd.get_current()
        except UserWarning:           # "GPS not active": gpsd has no device data yet
            time.sleep(0.2)
            continue
        except (OSError, ValueError, KeyError) as e:
            log.warning("gnss: bad answer from gpsd: %s", e)
            return None
        if packet.mode >= 2:
            try:
                return packet.get_time().replace(tzinfo=UTC)
            except (ValueError, AttributeError):
                return None
        time.sleep(0.2)
    return None


def set_system_clock(when: datetime) -> None:
    """Needs CAP_SYS_TIME (the caller's unit grants it)."""
    time.clock_settime(time.CLOCK_REALTIME, when.timestamp())


class ClockSync:
    def __init__(self, *, gnss: tuple[str, int] | None, flag: str = GNSS_FLAG,
                 ntp_flag: str = "/run/systemd/timesync/synchronized",
                 set_clock: Callable[[datetime], None] = set_system_clock):
        self.gnss = gnss
        self.flag = Path(flag)
        self.ntp_flag = Path(ntp_flag)
        self.set_clock = set_clock

    def check(self) -> str:
        """'ntp', 'gnss' (set now or before) or 'none'."""
        if self.ntp_flag.exists():
            return "ntp"
        if self.gnss is None:
            return "gnss" if self.flag.exists() else "none"
        t = gnss_time(*self.gnss)
        if t is None:
            return "gnss" if self.flag.exists() else "none"
        self.set_clock(t)
        self.flag.parent.mkdir(parents=True, exist_ok=True)
        self.flag.write_text(t.isoformat() + "\n")
        os.chmod(self.flag, 0o644)
        log.info("clock set from GNSS: %s", t.isoformat())
        return "gnss"
