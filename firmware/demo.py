"""`timeout-hub demo` (run by `make demo`).

The procedure, detector, presence, panel and caller are later issues; until they exist the demo
shows the foundation they stand on: a private Mosquitto with the generated passwords and ACL, each
service connecting with its own credentials, the ACL refusing a wearable that writes for the other
partner, and a long press made while the broker is down arriving once it is back.
"""
from __future__ import annotations

import logging
import tempfile
import time
from datetime import datetime
from pathlib import Path

from mqtt import schemas
from mqtt.broker_process import PrivateBroker
from mqtt.client import BusClient, Message
from mqtt.errors import NotPermitted

HOUSEHOLD = "demo-home"


def _say(start: float, text: str) -> None:
    print(f"[{time.monotonic() - start:6.2f}s] {text}", flush=True)


def run_demo(speed: float = 1.0) -> int:
    t0 = time.monotonic()
    # The reconnect warnings during the broker restart are expected here; the timeline says it.
    logging.getLogger("mqtt").setLevel(logging.ERROR)

    def pause(s: float) -> None:
        time.sleep(s * speed)

    with tempfile.TemporaryDirectory(prefix="timeout-hub-demo-") as tmp:
        tmp_path = Path(tmp)
        broker = PrivateBroker(tmp_path / "broker", HOUSEHOLD).start()
        _say(t0, f"broker: Mosquitto on 127.0.0.1:{broker.port}, no anonymous access, "
                 f"ACL for {len(schemas.SERVICES)} services")
        clients: dict[str, BusClient] = {}
        try:
            def make(service: str) -> BusClient:
                c = BusClient(service, HOUSEHOLD, broker.creds(service),
                              state_dir=tmp_path / service, port=broker.port, reconnect_max=1.0)
                clients[service] = c
                return c

            hub = make("hub")

            last: dict[str, object] = {}

            def availability(m: Message) -> None:
                # after a broker restart the retained values come again: show changes only
                if m.topic != "hub/available" and last.get(m.topic) != m.payload:
                    last[m.topic] = m.payload
                    _say(t0, f"hub sees {m.topic.split('/')[0]:<10} {m.payload}")

            def press(m: Message) -> None:
                p = m.payload
                assert isinstance(p, schemas.PanelPress)
                _say(t0, f"hub received panel/press: {p.press} press, held {p.held_s:.1f}s"
                         + (" (sent after the broker came back)" if p.queued else ""))

            hub.on("{service}/available", availability)
            hub.on("panel/press", press)
            hub.start().wait_connected(10)
            _say(t0, "hub connected (available = online)")
            for service in ("panel", "caller", "wearable-a", "wearable-b", "bridge"):
                make(service).start().wait_connected(10)
                pause(0.3)

            pause(0.5)
            _say(t0, "panel: long press (2.4 s) on the time-out button")
            clients["panel"].publish("panel/press",
                                     clients["panel"].make(schemas.PanelPress, press="long", held_s=2.4))
            pause(0.5)
            try:
                clients["wearable-a"].publish("partner/b/input", schemas.PartnerInput(kind="button", via="wearable"))
            except NotPermitted as e:
                _say(t0, f"wearable-a tries to write for partner b: refused ({e})")

            _say(t0, "broker: stopped (as in a restart)")
            broker.stop()
            pause(0.5)
            clients["panel"].publish("panel/press", clients["panel"].make(
                schemas.PanelPress, press="long", held_s=3.1, queued=True))
            _say(t0, f"panel: long press while the broker is down -> kept in its outbox "
                     f"({clients['panel'].outbox_size()} waiting)")
            pause(1.0)
            broker.start()
            _say(t0, "broker: running again; services reconnect")
            deadline = time.monotonic() + 15
            while clients["panel"].outbox_size() and time.monotonic() < deadline:
                time.sleep(0.1)
            pause(1.0)
            _say(t0, "the procedure itself (phases, panel lights, calls) is not built yet: issue 3 and on")
        finally:
            for name in reversed(list(clients)):
                clients[name].stop()
                if name != "hub":
                    time.sleep(0.05)
            broker.stop()
        _say(t0, f"demo finished at {datetime.now().strftime('%H:%M:%S')}")
    return 0
