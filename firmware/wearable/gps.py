"""Reading gpsd: its JSON reports (what `gpspipe -w` prints) turned into fixes for the geofence.

The same function reads the live stream and a recorded log (`timeout-hub apart-replay`), so a
replay is exactly what the wearable would have decided. Only TPV reports are used; a TPV with
mode 2 or 3 and a position is a fix, mode 0/1 is "no fix". The position is handed to the
geofence and dropped: nothing here stores or logs it (R4).

Why not gpsd-py3 here (the caller keeps it for the clock): its `GpsResponse` drops `eph`, the one
error estimate gpsd gives when the receiver sends no satellite positions (GSV), so every fix would
look exact; it polls, so a fix can be counted twice; and it raises a bare `Exception`,
`IndexError` or `UserWarning` on a missing fix. gpsd's own WATCH stream is one JSON object per
line and needs nothing but a socket.
"""
from __future__ import annotations

import json
import logging
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from firmware.wearable.geofence import Fix

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Report:
    """One TPV: when (gpsd's time, if it gave one) and the fix (None: no fix)."""

    time: datetime | None
    fix: Fix | None


def _number(v: object) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def report(obj: object) -> Report | None:
    """A gpsd JSON object -> Report for a TPV, None for anything else (SKY, DEVICE, ...)."""
    if not isinstance(obj, dict) or obj.get("class") != "TPV":
        return None
    when = None
    if isinstance(obj.get("time"), str):
        try:
            when = datetime.fromisoformat(obj["time"].replace("Z", "+00:00"))
        except ValueError:
            when = None
    mode = obj.get("mode")
    lat, lon = _number(obj.get("lat")), _number(obj.get("lon"))
    if not isinstance(mode, int) or mode < 2 or lat is None or lon is None:
        return Report(when, None)
    errs = [e for e in (_number(obj.get("epx")), _number(obj.get("epy"))) if e is not None]
    err = max(errs) if errs else _number(obj.get("eph"))
    return Report(when, Fix(lat, lon, err))


def parse_line(line: str) -> Report | None:
    """One line of gpsd output; None for a line that is not a TPV (or not JSON at all)."""
    try:
        return report(json.loads(line))
    except (ValueError, RecursionError):
        return None


class GpsdStream:
    """A live connection to gpsd. While it is open gpsd keeps the receiver on; closing it lets
    gpsd power the receiver down (gpsd runs without -n): that is how the wearable switches its
    GNSS off outside a time-out."""

    def __init__(self, host: str = "127.0.0.1", port: int = 2947, timeout: float = 5.0):
        self.host, self.port, self.timeout = host, port, timeout
        self._sock: socket.socket | None = None
        self._buf = b""

    def open(self) -> None:
        self.close()
        s = socket.create_connection((self.host, self.port), timeout=self.timeout)
        s.sendall(b'?WATCH={"enable":true,"json":true}\n')
        self._sock, self._buf = s, b""

    def close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.sendall(b'?WATCH={"enable":false}\n')
            except OSError:
                pass
            self._sock.close()
            self._sock = None

    @property
    def is_open(self) -> bool:
        return self._sock is not None

    def reports(self) -> Iterator[Report]:
        """TPV reports until nothing comes for `timeout` seconds (then it returns, so the caller
        can note the silence) or the connection fails (OSError)."""
        if self._sock is None:
            raise OSError("gpsd is not connected")
        while True:
            while b"\n" not in self._buf:
                try:
                    chunk = self._sock.recv(65536)
                except TimeoutError:
                    return
                if not chunk:
                    raise OSError("gpsd closed the connection")
                self._buf += chunk
                if len(self._buf) > 1 << 20:   # no line is this long: not gpsd
                    raise OSError("gpsd sent an overlong line")
            line, self._buf = self._buf.split(b"\n", 1)
            r = parse_line(line.decode("utf-8", "replace"))
            if r is not None:
                yield r
