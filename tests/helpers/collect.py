"""A thread-safe handler that keeps what it was given (bus callbacks run on paho's thread)."""
from __future__ import annotations

import threading

from mqtt.client import Message


class Collect(list):
    def __init__(self, payloads: bool = False):
        super().__init__()
        self.lock = threading.Lock()
        self.payloads = payloads

    def __call__(self, m: Message) -> None:
        with self.lock:
            self.append(m.payload if self.payloads else m)

    def words(self, topic: str) -> list:
        with self.lock:
            return [m.payload for m in self if m.topic == topic]
