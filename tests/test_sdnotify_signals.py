"""A stop signal must stop a service even when it lands while the main thread holds the stop
event's own lock (the handler runs in the main thread, between two bytecodes)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

_SCRIPT = """
import signal
from core import sdnotify
stop = sdnotify.stop_on_signals()
handler = signal.getsignal(signal.SIGTERM)
with stop._cond:                  # where `stop.wait()` holds it, entering or leaving the wait
    handler(signal.SIGTERM, None)  # what Python runs when SIGTERM lands at that moment
print("stopped" if stop.wait(10) else "not stopped")
"""


def test_a_stop_signal_while_the_main_thread_holds_the_events_lock_stops_the_service():
    root = Path(__file__).resolve().parents[1]
    try:
        out = subprocess.run([sys.executable, "-c", _SCRIPT], cwd=root, capture_output=True, text=True,
                             timeout=30)
    except subprocess.TimeoutExpired:
        raise AssertionError("the signal handler waited for a lock its own thread holds") from None
    assert out.stdout.strip() == "stopped", out.stderr
