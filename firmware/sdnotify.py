"""sd_notify without a library: READY=1 when a service is up, WATCHDOG=1 while it is healthy
(the units use Type=notify and WatchdogSec=, so a hung service is restarted)."""
from __future__ import annotations

import os
import socket


def notify(message: str) -> bool:
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr:
        return False          # not started by systemd
    if addr.startswith("@"):
        addr = "\0" + addr[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.connect(addr)
            s.sendall(message.encode())
        return True
    except OSError:
        return False


def watchdog_interval() -> float | None:
    """Half of WatchdogSec, in seconds, or None when no watchdog is asked for."""
    usec = os.environ.get("WATCHDOG_USEC")
    try:
        return int(usec) / 2e6 if usec else None
    except ValueError:
        return None
