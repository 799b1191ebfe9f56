"""A bare paho client for probing the broker from outside the wrapper (ACL tests, fuzzing)."""
from __future__ import annotations

import threading
import time

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion


class Raw:
    def __init__(self, port: int, username: str | None, password: str | None, client_id: str):
        self.received: list[tuple[str, bytes]] = []
        self.connack = None
        self.acks: dict[int, object] = {}
        self._lock = threading.Lock()
        self._connected = threading.Event()
        c = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5)
        if username is not None:
            c.username_pw_set(username, password)
        c.on_connect = self._on_connect
        c.on_message = self._on_message
        c.on_publish = self._on_publish
        c.on_subscribe = self._on_subscribe
        self.subacks: dict[int, object] = {}
        c.connect("127.0.0.1", port)
        c.loop_start()
        self.c = c

    def _on_connect(self, client, userdata, flags, rc, props):
        self.connack = rc
        self._connected.set()

    def _on_message(self, client, userdata, msg):
        with self._lock:
            self.received.append((msg.topic, msg.payload))

    def _on_publish(self, client, userdata, mid, rc, props):
        with self._lock:
            self.acks[mid] = rc

    def _on_subscribe(self, client, userdata, mid, rcs, props):
        with self._lock:
            self.subacks[mid] = rcs

    def subscribe_and_ack(self, topic: str, timeout: float = 5.0):
        _, mid = self.c.subscribe(topic, qos=1)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if mid in self.subacks:
                    return self.subacks.pop(mid)
            time.sleep(0.002)
        raise TimeoutError(f"no SUBACK for {topic}")

    def wait_connack(self, timeout: float = 5.0):
        self._connected.wait(timeout)
        return self.connack

    def publish_and_ack(self, topic: str, payload: bytes, timeout: float = 5.0, retain=False):
        """Publish at QoS 1 and return the broker's PUBACK reason code."""
        info = self.c.publish(topic, payload, qos=1, retain=retain)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if info.mid in self.acks:
                    return self.acks.pop(info.mid)
            time.sleep(0.002)
        raise TimeoutError(f"no PUBACK for {topic}")

    def topics(self) -> set[str]:
        with self._lock:
            return {t for t, _ in self.received}

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()
