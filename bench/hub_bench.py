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
                # both partners answer on their own device (the example plan): a by SMS through
                # the caller, b on the wearable; their questions come as prompts
                asked: dict[str, list] = {"a": [], "b": []}
                checkins: list = []        # (ts, question id) of partner a's check-in prompts
                asked_cond = threading.Condition()

                def on_prompt(partner):
                    def got(m):
                        with asked_cond:
                            if m.payload.kind == "evaluation":
                                asked[partner].append(m.payload.question_id)
                            elif m.payload.kind == "checkin" and partner == "a":
                                checkins.append((m.payload.ts, m.payload.question_id))
                            asked_cond.notify_all()
                    return got

                def end_question(since):
                    """The end check-in's question: the first check-in prompt sent when the
                    phase became "checkin" (the periodic ones came before it)."""
                    with asked_cond:
                        if not asked_cond.wait_for(lambda: any(ts >= since for ts, _ in checkins), 20):
                            raise RuntimeError("bench: no end check-in question")
                        return next(q for ts, q in checkins if ts >= since)
                caller.on("partner/a/prompt", on_prompt("a"))
                wb.on("partner/b/prompt", on_prompt("b"))

                def next_question(partner, seen):
                    with asked_cond:
                        if not asked_cond.wait_for(lambda: len(asked[partner]) > seen, 20):
                            raise RuntimeError(f"bench: no evaluation question for {partner}")
                        return asked[partner][seen]
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
                    watch.wait(lambda s: s.phase == "checkin", start=watch.mark() - 1)
                    q = end_question(watch.state.since)
                    with asked_cond:   # before the answers: the first questions follow at once
                        seen = {p: len(asked[p]) for p in asked}
                    caller.publish("partner/a/input", schemas.PartnerInput(
                        kind="answer", via="sms", question_id=q, choice=1))
                    timed(lambda q=q: wb.publish("partner/b/input", schemas.PartnerInput(
                        kind="answer", via="wearable", question_id=q, choice=1)),
                        lambda s: s.phase == "evaluation")
                    for step in range(3):
                        qa, qb = next_question("a", seen["a"] + step), next_question("b", seen["b"] + step)
                        if watch.state.phase != "evaluation":
                            raise RuntimeError("bench: evaluation ended early")
                        caller.publish("partner/a/input", schemas.PartnerInput(
                            kind="answer", via="sms", question_id=qa, choice=1))
                        send_b = lambda qb=qb: wb.publish("partner/b/input", schemas.PartnerInput(
                            kind="answer", via="wearable", question_id=qb, choice=1))
                        if step < 2:
                            send_b()
                        else:   # the last answer ends the time-out: a state change to time
                            timed(send_b, lambda s: s.phase == "monitoring")
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
