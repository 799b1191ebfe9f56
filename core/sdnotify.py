"""sd_notify without a library: READY=1 when a service is up, WATCHDOG=1 while it is healthy
(the units use Type=notify and WatchdogSec=, so a hung service is restarted)."""
from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


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


_stop = threading.Event()


def stop_on_signals() -> threading.Event:
    """From now on SIGTERM/SIGINT set the returned event instead of killing the process. A service
    calls it before it starts anything (firmware/cli.py does for every service), so a stop that
    comes during start-up is a clean stop too."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _on_signal)
    return _stop


def _on_signal(signum: int, frame: object) -> None:
    # A Python signal handler runs in the main thread between two bytecodes, possibly while that
    # thread holds `_stop`'s own lock (entering or leaving `_stop.wait()` in `run_until_stopped`):
    # setting it here would wait for that lock forever. A thread of its own sets it as soon as
    # the main thread lets go (a SIGTERM left a service hanging 20 s and more in CI).
    threading.Thread(target=_stop.set, name="stop-signal", daemon=True).start()


def run_until_stopped(alive: Callable[[], bool], banner: str) -> None:
    """The main thread of every service: READY=1, then WATCHDOG=1 only while `alive()` says the
    service's own threads work, until SIGTERM/SIGINT (also one that came during start-up)."""
    stop = stop_on_signals()
    notify("READY=1")
    print(banner, flush=True)
    every = watchdog_interval()
    while not stop.wait(every or 3600):
        if alive():
            notify("WATCHDOG=1")
        else:
            log.error("service not healthy: the watchdog is not fed, systemd will restart it")


def watchdog_interval() -> float | None:
    """Half of WatchdogSec, in seconds, or None when no watchdog is asked for."""
    usec = os.environ.get("WATCHDOG_USEC")
    try:
        return int(usec) / 2e6 if usec else None
    except ValueError:
        return None
