"""Hub service (issue 3): input on the broker -> resulting state on the broker, and the hub
process's resident memory, idle and during time-outs. The hub runs as its own process
(`timeout-hub hub`) on a clock 1,000x faster (a 5-minute window is 0.3 s); the baseline is one bare
paho hop on the same broker."""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.stats import percentile
from mqtt import schemas
from mqtt.broker_process import PrivateBroker
from mqtt.client import BusClient, Message

ROOT = Path(__file__).resolve().parents[1]
PLAN = ROOT / "examples" / "household.toml"
CYCLES = 25
RSS_TARGET_MB = 80.0


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")



class StateWatch:
    """Every state the panel received, so a quick succession of states is not missed."""

    def __init__(self):
        self.cond = threading.Condition()
        self.seen: list[tuple[float, schemas.State]] = []

    def __call__(self, m: Message) -> None:
        with self.cond:
            self.seen.append((time.perf_counter(), m.payload))
            self.cond.notify_all()

    @property
    def state(self) -> schemas.State:
        with self.cond:
            return self.seen[-1][1]

    def mark(self) -> int:
        with self.cond:
            return len(self.seen)

    def wait(self, pred, timeout: float = 10.0, start: int = 0) -> float:
        """When the first state from index `start` on that satisfies pred arrived."""
        deadline = time.monotonic() + timeout
        with self.cond:
            i = start
            while True:
                while i < len(self.seen):
                    at, st = self.seen[i]
                    if pred(st):
                        return at
                    i += 1
                left = deadline - time.monotonic()
                if left <= 0:
                    last = self.seen[-1][1].phase if self.seen else None
                    raise RuntimeError(f"bench: state not reached (last: {last})")
                self.cond.wait(left)


def run(bare_median_ms: float | None = None) -> bool:
    from firmware.hub.plan import load_plan
    household = load_plan(PLAN).household
    with tempfile.TemporaryDirectory(prefix="bench-hub-") as d:
        tmp = Path(d)
        with PrivateBroker(tmp / "broker", household) as broker:
            hub = subprocess.Popen(
                [sys.executable, "-m", "firmware.cli", "hub", "--plan", str(PLAN), "--broker-dir",
                 str(tmp / "broker"), "--state-dir", str(tmp / "hub"), "--port", str(broker.port),
                 "--speed", "1000"], cwd=ROOT, stdout=subprocess.DEVNULL,
                env={**os.environ, "PYTHONPATH": str(ROOT)})
            clients = []
            try:
                def client(service):
                    c = BusClient(service, household, broker.creds(service), port=broker.port,
                                  state_dir=tmp / service)
                    clients.append(c)
                    return c
                watch = StateWatch()
                panel, wb, caller = client("panel"), client("wearable-b"), client("caller")
                panel.on("state", watch)
                for c in clients:
                    c.start()
                    c.wait_subscribed(10)
                watch.wait(lambda s: s.phase == "monitoring", 20)
                time.sleep(2)
                idle = _rss_mb(hub.pid)
                lat, active_rss = [], []

                def timed(send, pred):
                    start = watch.mark()
                    t = time.perf_counter()
                    send()
                    lat.append((watch.wait(pred, start=start) - t) * 1000)

                for _ in range(CYCLES):
                    timed(lambda: wb.publish("partner/b/input", schemas.PartnerInput(
                        kind="button", via="wearable")), lambda s: s.phase == "leaving")
                    timed(lambda: wb.publish("partner/b/apart", schemas.Apart(apart=True, fix=True)),
                          lambda s: s.phase == "timeout")
                    active_rss.append(_rss_mb(hub.pid))
                    watch.wait(lambda s: s.phase == "checkin" and s.question is not None,
                               start=watch.mark() - 1)
                    q = watch.state.question.id
                    caller.publish("partner/a/input", schemas.PartnerInput(
                        kind="answer", via="sms", question_id=q, choice=1))
                    timed(lambda q=q: wb.publish("partner/b/input", schemas.PartnerInput(
                        kind="answer", via="wearable", question_id=q, choice=1)),
                        lambda s: s.phase == "evaluation")
                    for _ in range(3):
                        q = watch.state.question.id
                        if watch.state.phase != "evaluation":
                            raise RuntimeError("bench: evaluation ended early")
                        timed(lambda q=q: panel.publish("panel/answer", schemas.PanelAnswer(
                            question_id=q, choice=1)),
                            lambda s, q=q: s.phase == "monitoring" or (s.question and s.question.id != q))
                    wb.publish("partner/b/apart", schemas.Apart(apart=False, fix=True))
                after = _rss_mb(hub.pid)
            finally:
                for c in clients:
                    c.stop()
                hub.terminate()
                hub.wait(10)
    med, p99 = statistics.median(lat), percentile(lat, 99)
    peak = max([*active_rss, after])
    ok = peak <= RSS_TARGET_MB and idle <= RSS_TARGET_MB
    print(f"\nHub service (issue 3) — `timeout-hub hub` in its own process, {CYCLES} time-outs")
    print(f"  input on the broker -> resulting state on the broker, {len(lat)} inputs:")
    line = f"      median {med:6.2f} ms   p99 {p99:6.2f} ms"
    if bare_median_ms:
        line += f"   (bare paho one hop median {bare_median_ms:.2f} ms: ratio {med / bare_median_ms:4.1f}x)"
    print(line)
    print(f"  hub resident memory: idle {idle:5.1f} MB, during time-outs up to {peak:5.1f} MB"
          f"   target <= {RSS_TARGET_MB:.0f} MB   {'OK' if ok else 'MISSED'}")
    return ok
