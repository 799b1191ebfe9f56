"""A hub-like publisher in its own process, so a test can kill -9 it mid-stream.
Prints each sequence number once publish() has returned (the event is then in the outbox)."""
from __future__ import annotations

import argparse
import sys
import time
import uuid
from pathlib import Path

from mqtt import schemas
from mqtt.broker_config import Credentials
from mqtt.client import BusClient

NS = uuid.UUID("6f1c1d2e-0000-4000-8000-000000000001")


def event_id(i: int) -> uuid.UUID:
    return uuid.uuid5(NS, f"event-{i}")


def main() -> int:
    a = argparse.ArgumentParser()
    a.add_argument("--port", type=int, required=True)
    a.add_argument("--household", required=True)
    a.add_argument("--credentials", type=Path, required=True)
    a.add_argument("--state-dir", type=Path, required=True)
    a.add_argument("--start", type=int, default=0)
    a.add_argument("--count", type=int, default=1000)
    a.add_argument("--interval", type=float, default=0.002)
    args = a.parse_args()
    bus = BusClient("hub", args.household, Credentials.load(args.credentials),
                    state_dir=args.state_dir, port=args.port, reconnect_min=0.1, reconnect_max=0.5)
    bus.start()
    for i in range(args.start, args.count):
        # The same event gets the same id if it is published again after a restart.
        bus.publish("events", schemas.Event(id=event_id(i), type="service", category="service",
                                            data={"seq": i}))
        print(i, flush=True)
        time.sleep(args.interval)
    deadline = time.monotonic() + 30
    while bus.outbox_size() and time.monotonic() < deadline:
        time.sleep(0.05)
    print("drained" if not bus.outbox_size() else f"undrained {bus.outbox_size()}", flush=True)
    bus.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
