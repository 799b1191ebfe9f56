"""Injectable clocks. The procedure measures durations on a monotonic clock: the Pi has no
real-time clock and may set its wall clock late or jump it. The wall clock gives the events their
times; only when it is trusted does it credit the time the hub was down (firmware/hub/procedure.py)
or prune the event log (firmware/hub/service.py)."""
from __future__ import annotations

import os
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def monotonic(self) -> float: ...
    def wall(self) -> datetime: ...
    def trusted(self) -> bool:
        """The wall clock was set from a time source: NTP or the modem's GNSS."""
        ...
    def boot(self) -> str:
        """Which boot the monotonic clock belongs to: two readings compare only within one
        (a service restart keeps it, a power cut does not)."""
        ...


BOOT_ID = "/proc/sys/kernel/random/boot_id"


def _system_boot() -> str:
    try:
        with open(BOOT_ID) as f:
            return f.read().strip()
    except OSError:      # not Linux: every start counts as a new boot (the wall clock decides)
        return f"process-{os.getpid()}-{time.time_ns()}"


# Written by the caller once it set the clock from the modem's GNSS (firmware/caller/gnss_clock.py).
GNSS_FLAG = "/run/timeout-hub/clock-from-gnss"


class SystemClock:
    """The Pi's clocks. The wall clock is trusted once systemd-timesyncd has synchronised it
    (it creates /run/systemd/timesync/synchronized) or the caller has set it from the modem's GNSS
    (firmware/caller/gnss_clock.py creates GNSS_FLAG); `trusted` given here overrides both flags."""

    SYNC_FLAG = "/run/systemd/timesync/synchronized"

    def __init__(self, trusted: bool | None = None):
        self._trusted = trusted

    def monotonic(self) -> float:
        return time.monotonic()

    def wall(self) -> datetime:
        return datetime.now(UTC)

    def trusted(self) -> bool:
        if self._trusted is not None:
            return self._trusted
        return os.path.exists(self.SYNC_FLAG) or os.path.exists(GNSS_FLAG)

    def boot(self) -> str:
        return _system_boot()


class ScaledClock:
    """Real time sped up by `factor`: the demo's 120 runs a 20-minute time-out in 10 seconds;
    `timeout-hub hub --speed` (tests and bench) uses it too. Its wall clock starts at `start`
    (default now) and is always trusted. Its monotonic clock is the system's, scaled, so a
    restarted service on the same boot continues it, as on a Pi."""

    def __init__(self, factor: float, start: datetime | None = None):
        self.factor = factor
        self._m0 = time.monotonic()
        self._w0 = start or datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic() * self.factor

    def wall(self) -> datetime:
        return self._w0 + timedelta(seconds=(time.monotonic() - self._m0) * self.factor)

    def trusted(self) -> bool:
        return True

    def boot(self) -> str:
        return _system_boot()


class ManualClock:
    """Advanced by hand in tests; `jump_wall` moves only the wall clock (an NTP correction)."""

    def __init__(self, start: datetime | None = None, trusted: bool = True):
        self._lock = threading.Lock()
        self._mono = 1000.0
        self._wall = start or datetime(2026, 11, 21, 19, 0, tzinfo=UTC)
        self._trusted = trusted
        self._boot = 1

    def monotonic(self) -> float:
        with self._lock:
            return self._mono

    def boot(self) -> str:
        with self._lock:
            return f"manual-boot-{self._boot}"

    def wall(self) -> datetime:
        with self._lock:
            return self._wall

    def trusted(self) -> bool:
        return self._trusted

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._mono += seconds
            self._wall += timedelta(seconds=seconds)

    def jump_wall(self, seconds: float) -> None:
        with self._lock:
            self._wall += timedelta(seconds=seconds)

    def reboot(self, down_seconds: float, trusted: bool) -> None:
        """A power cut: the monotonic clock starts again, the wall clock has moved on by
        `down_seconds`, and `trusted` says whether it is believed after the restart."""
        with self._lock:
            self._mono = 5.0
            self._boot += 1
            self._wall += timedelta(seconds=down_seconds)
            self._trusted = trusted

    def restart(self, down_seconds: float, wall_step: float = 0.0) -> None:
        """A service restart on the same boot: both clocks move on by `down_seconds`, and the
        wall clock also by `wall_step` (an NTP step while the service was down)."""
        with self._lock:
            self._mono += down_seconds
            self._wall += timedelta(seconds=down_seconds + wall_step)
