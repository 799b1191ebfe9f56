"""Soak (issue 20): 50 inputs a second into the real hub (`timeout-hub hub`, its own process)
through the real broker, for 5 minutes in `make bench` and an hour in `make soak`
(`python -m bench.soak_bench --seconds N`). The hub's memory (RSS), open file descriptors,
threads and database size are sampled; each must level off: what it grew in the second half of
the run is compared with a target. At the end every input must have been applied exactly once
(the hub's saved count of short presses) and confirmed to the panel (its outbox empty)."""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from mqtt import schemas
from mqtt.broker_process import PrivateBroker
from mqtt.client import BusClient

ROOT = Path(__file__).resolve().parents[1]
PLAN = ROOT / "examples" / "household.toml"
RATE = 50.0
RSS_TARGET_MB = 80.0
RSS_GROWTH_MB = 5.0        # in the second half of the run
# The databases keep the id of every applied input for 14 days (mqtt/store.py: a resend must still
# be recognised), so they grow with the inputs until then; everything else must level off.
DB_BYTES_PER_INPUT = 256
WAL_TARGET_MB = 16.0       # SQLite checkpoints each WAL at ~4 MB and reuses it


@dataclass(frozen=True)
class Sample:
    t: float
    rss_mb: float
    fds: int
    threads: int
    db_mb: float
    wal_mb: float


def _sample(pid: int, state_dir: Path, t: float) -> Sample:
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                  if ":" in line)
    db = sum(f.stat().st_size for f in state_dir.glob("*.sqlite3"))
    wal = sum(f.stat().st_size for f in state_dir.glob("*.sqlite3-wal"))
    return Sample(t, int(status["VmRSS"].split()[0]) / 1024, len(os.listdir(f"/proc/{pid}/fd")),
                  int(status["Threads"]), db / 1e6, wal / 1e6)


def _applied(state_dir: Path) -> int:
    from firmware.hub.eventlog import HubDatabase
    db = HubDatabase(state_dir / "hub.sqlite3", read_only=True)
    try:
        snap = db.load_snapshot() or {}
    finally:
        db.close()
    return int(snap.get("short_presses", 0))


def run(seconds: float = 300.0) -> bool:
    from firmware.hub.plan import load_plan
    household = load_plan(PLAN).household
    with tempfile.TemporaryDirectory(prefix="bench-soak-") as d:
        tmp = Path(d)
        with PrivateBroker(tmp / "broker", household) as broker:
            hub = subprocess.Popen(
                [sys.executable, "-m", "firmware.cli", "-q", "hub", "--plan", str(PLAN),
                 "--broker-dir", str(tmp / "broker"), "--state-dir", str(tmp / "hub"),
                 "--port", str(broker.port)], cwd=ROOT, stdout=subprocess.DEVNULL,
                env={**os.environ, "PYTHONPATH": str(ROOT)})
            panel = BusClient("panel", household, broker.creds("panel"), port=broker.port,
                              state_dir=tmp / "panel")
            states: list[schemas.State] = []
            panel.on("state", lambda m: states.append(m.payload))   # type: ignore[arg-type]
            try:
                panel.start()
                if not panel.wait_subscribed(10):
                    raise RuntimeError("bench: the panel did not connect")
                deadline = time.monotonic() + 30
                while not states and time.monotonic() < deadline:
                    time.sleep(0.05)
                if not states:
                    raise RuntimeError("bench: the hub published no state")
                samples: list[Sample] = []
                sent = 0
                t0 = time.monotonic()
                every = max(1.0, seconds / 20)
                next_sample = t0
                while (now := time.monotonic()) - t0 < seconds:
                    if now >= next_sample:
                        samples.append(_sample(hub.pid, tmp / "hub", now - t0))
                        next_sample += every
                    # short presses: applied and saved as a step each, changing nothing else
                    panel.publish("panel/press", schemas.PanelPress(
                        id=uuid.uuid4(), press="short", held_s=0.3))
                    sent += 1
                    time.sleep(max(0.0, t0 + sent / RATE - time.monotonic()))
                drain = time.monotonic()
                while panel.outbox_size() and time.monotonic() - drain < 60:
                    time.sleep(0.1)
                samples.append(_sample(hub.pid, tmp / "hub", time.monotonic() - t0))
                left = panel.outbox_size()
            finally:
                panel.stop()
                hub.terminate()
                hub.wait(15)
            applied = _applied(tmp / "hub")
    return _report(seconds, sent, applied, left, samples)


def _report(seconds: float, sent: int, applied: int, left: int, samples: list[Sample]) -> bool:
    first, last = samples[0], samples[-1]
    half = next(s for s in samples if s.t >= last.t / 2)
    rss_ok = last.rss_mb <= RSS_TARGET_MB and last.rss_mb - half.rss_mb <= RSS_GROWTH_MB
    fds_ok = last.fds <= half.fds or last.fds <= first.fds
    thr_ok = last.threads <= half.threads
    inputs_2nd = max(1, round(sent * (last.t - half.t) / max(last.t, 1e-9)))
    per_input = (last.db_mb - half.db_mb) * 1e6 / inputs_2nd
    db_ok = per_input <= DB_BYTES_PER_INPUT
    wal_ok = last.wal_mb <= WAL_TARGET_MB
    exact = applied == sent and left == 0

    def row(name: str, a: str, b: str, mid: str, target: str, ok: bool) -> None:
        print(f"  {name:<22}{a:>9}{mid:>10}{b:>9}   {target:<44} {'OK' if ok else 'MISSED'}")

    print(f"\nSoak (issue 20) — {RATE:.0f} inputs/s for {seconds:.0f} s into `timeout-hub hub` "
          f"through the broker ({sent} inputs)")
    print(f"  {'':<22}{'start':>9}{'half':>10}{'end':>9}")
    row("memory (RSS, MB)", f"{first.rss_mb:.1f}", f"{last.rss_mb:.1f}", f"{half.rss_mb:.1f}",
        f"<= {RSS_TARGET_MB:.0f} MB, 2nd half +<= {RSS_GROWTH_MB:.0f} MB", rss_ok)
    row("open file descriptors", str(first.fds), str(last.fds), str(half.fds),
        "level: no more at the end than at half", fds_ok)
    row("threads", str(first.threads), str(last.threads), str(half.threads),
        "level: no more at the end than at half", thr_ok)
    row("databases (MB)", f"{first.db_mb:.2f}", f"{last.db_mb:.2f}", f"{half.db_mb:.2f}",
        f"2nd half {per_input:.0f} B/input <= {DB_BYTES_PER_INPUT} (ids, 14 d)", db_ok)
    row("write-ahead logs (MB)", f"{first.wal_mb:.2f}", f"{last.wal_mb:.2f}", f"{half.wal_mb:.2f}",
        f"<= {WAL_TARGET_MB:.0f} MB (checkpointed)", wal_ok)
    print(f"  applied exactly once: {applied} of {sent}, {left} unconfirmed at the end   "
          f"{'OK' if exact else 'MISSED'}")
    return rss_ok and fds_ok and thr_ok and db_ok and wal_ok and exact


def main() -> int:
    a = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    a.add_argument("--seconds", type=float, default=300.0, help="how long (default 300: 5 minutes)")
    args = a.parse_args()
    if args.seconds < 10:
        print("soak_bench: --seconds must be at least 10", file=sys.stderr)
        return 2
    return 0 if run(args.seconds) else 1


if __name__ == "__main__":
    sys.exit(main())
