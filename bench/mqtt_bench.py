"""MQTT layer: publish-to-receive latency through the real broker, and outbox throughput.
Baseline: a bare paho client at QoS 1 on the same broker, without outbox, validation or dedup."""
from __future__ import annotations

import statistics
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from bench.stats import percentile
from mqtt import schemas
from mqtt.broker_process import PrivateBroker
from mqtt.client import BusClient

HOUSEHOLD = "bench-home"
N_LATENCY = 1000
N_THROUGHPUT = 3000
OUTBOX_TARGET = 500.0



class _Raw:
    def __init__(self, port: int, user: str, password: str, cid: str):
        self.c = paho.Client(CallbackAPIVersion.VERSION2, client_id=cid, protocol=paho.MQTTv5)
        self.c.username_pw_set(user, password)
        self.connected = threading.Event()
        self.c.on_connect = lambda *a: self.connected.set()
        self.c.max_inflight_messages_set(100)
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()
        self.connected.wait(5)

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()


def _latency_bus(broker: PrivateBroker, tmp: Path) -> list[float]:
    arrived = threading.Event()
    hub = BusClient("hub", HOUSEHOLD, broker.creds("hub"), port=broker.port, state_dir=tmp / "hub")
    hub.on("panel/press", lambda m: arrived.set())
    hub.start().wait_subscribed(10)
    panel = BusClient("panel", HOUSEHOLD, broker.creds("panel"), port=broker.port,
                      state_dir=tmp / "panel").start()
    panel.wait_connected(10)
    lat = []
    for _ in range(N_LATENCY):
        arrived.clear()
        t = time.perf_counter()
        panel.publish("panel/press", schemas.PanelPress(press="long", held_s=2.0))
        if not arrived.wait(5):
            raise RuntimeError("bench: a message did not arrive")
        lat.append((time.perf_counter() - t) * 1000)
    panel.stop()
    hub.stop()
    return lat


def _latency_raw(broker: PrivateBroker) -> list[float]:
    arrived = threading.Event()
    sub = _Raw(broker.port, "hub", broker.creds("hub").password, "raw-hub")
    sub.c.on_message = lambda *a: arrived.set()
    sub.c.subscribe(f"timeout/{HOUSEHOLD}/panel/press", qos=1)
    time.sleep(0.2)
    pub = _Raw(broker.port, "panel", broker.creds("panel").password, "raw-panel")
    payload = schemas.PanelPress(press="long", held_s=2.0).model_dump_json().encode()
    lat = []
    for _ in range(N_LATENCY):
        arrived.clear()
        t = time.perf_counter()
        pub.c.publish(f"timeout/{HOUSEHOLD}/panel/press", payload, qos=1)
        if not arrived.wait(5):
            raise RuntimeError("bench: a baseline message did not arrive")
        lat.append((time.perf_counter() - t) * 1000)
    pub.close()
    sub.close()
    return lat


def _throughput_bus(broker: PrivateBroker, tmp: Path) -> tuple[float, float]:
    hub = BusClient("hub", HOUSEHOLD, broker.creds("hub"), port=broker.port, state_dir=tmp / "hub2")
    hub.start().wait_connected(10)
    events = [schemas.Event(type="service", category="service", data={"seq": i})
              for i in range(N_THROUGHPUT)]
    t = time.perf_counter()
    for e in events:
        hub.publish("events", e)
    enq = time.perf_counter() - t
    deadline = time.monotonic() + 120
    while hub.outbox_size():
        if time.monotonic() > deadline:
            raise RuntimeError(f"bench: outbox did not drain ({hub.outbox_size()} left)")
        time.sleep(0.002)
    total = time.perf_counter() - t
    hub.stop()
    return N_THROUGHPUT / total, N_THROUGHPUT / enq


def _throughput_raw(broker: PrivateBroker) -> float:
    pub = _Raw(broker.port, "hub", broker.creds("hub").password, "raw-hub-2")
    payload = schemas.Event(type="service", category="service").model_dump_json().encode()
    acked = [0]
    done = threading.Event()

    def on_pub(*a):
        acked[0] += 1
        if acked[0] == N_THROUGHPUT:
            done.set()
    pub.c.on_publish = on_pub
    t = time.perf_counter()
    for _ in range(N_THROUGHPUT):
        pub.c.publish(f"timeout/{HOUSEHOLD}/events", payload, qos=1)
    if not done.wait(60):
        raise RuntimeError("bench: baseline publishes were not all acknowledged")
    total = time.perf_counter() - t
    pub.close()
    return N_THROUGHPUT / total


BARE_MEDIAN_MS: float | None = None


def run() -> bool:
    global BARE_MEDIAN_MS
    with tempfile.TemporaryDirectory(prefix="bench-mqtt-") as d:
        tmp = Path(d)
        with PrivateBroker(tmp / "broker", HOUSEHOLD) as broker:
            bus_lat = _latency_bus(broker, tmp)
            raw_lat = _latency_raw(broker)
            rate, enqueue_rate = _throughput_bus(broker, tmp)
            raw_rate = _throughput_raw(broker)
    med, p99 = statistics.median(bus_lat), percentile(bus_lat, 99)
    rmed, rp99 = statistics.median(raw_lat), percentile(raw_lat, 99)
    BARE_MEDIAN_MS = rmed
    ok = rate >= OUTBOX_TARGET
    print("MQTT (issue 2) — real Mosquitto on localhost")
    print(f"  publish -> application, {N_LATENCY} events, QoS 1 via outbox + validation:")
    print(f"      median {med:6.2f} ms   p99 {p99:6.2f} ms")
    print(f"    baseline bare paho QoS 1: median {rmed:6.2f} ms   p99 {rp99:6.2f} ms"
          f"   (ratio median {med / rmed:4.1f}x, p99 {p99 / rp99:4.1f}x)")
    print(f"  outbox throughput, {N_THROUGHPUT} events until all PUBACKed: {rate:7.0f} events/s"
          f"   target >= {OUTBOX_TARGET:.0f}   {'OK' if ok else 'MISSED'}")
    print(f"    enqueue (fsync'd insert + send): {enqueue_rate:7.0f} events/s;"
          f" baseline bare paho QoS 1 (no disk): {raw_rate:7.0f} events/s"
          f" (ratio {rate / raw_rate:4.2f})")
    return ok
