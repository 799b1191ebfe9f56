"""`make demo` runs the scripted evening end to end (a demo that hangs is stopped after 2 minutes
and fails)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_demo_evening_runs_end_to_end():
    r = subprocess.run([sys.executable, "-m", "firmware.cli", "demo"], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    out = r.stdout
    for line in ("the microphone hears the evening", "shouting 1.00", "tags are heard at home",
                 "suggestion: take a break", "holds the time-out button", "button ●",
                 "time-out ●", "partner a's tag is gone",
                 "contacts (early_return)", "dial -> acknowledged", "replies by SMS", "time-out extended",
                 "Jullie mogen elkaar weer zien", "You may meet again", "looking back together",
                 "back to monitoring"):
        assert line in out, f"{line!r} missing from the demo's timeline"
    # the front door's contact: the leaver is seen gone within seconds of the door, not minutes
    import re
    [seen] = [int(x) for x in re.findall(r"partner a has left, seen (\d+) s after the door opened", out)]
    assert seen <= 45, out
    assert "leave_overdue" not in out
    # the thermometer cools after the shouting (it is never frozen at its peak all evening)
    heat = [int(x) for x in re.findall(r"thermometer (\d+)/10", out)]
    peak = heat.index(max(heat))
    assert max(heat) >= 8 and min(heat[peak:]) <= 4, heat
