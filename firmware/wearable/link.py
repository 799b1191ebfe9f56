"""The wearable's two ways to its hub (docs/wearable.md, "Links"): the home broker over home
Wi-Fi, and the care organisation's broker (bridged to the hub, docs/fleet.md) over its own
cellular link when the home broker cannot be reached.

One link at a time, one outbox: both bus clients keep their outbox and the ids they have seen in
the same SQLite file under the household's own topics (mqtt/client.py puts them on the wire under
the link's prefix). What was waiting when one link went goes out over the other; a prompt that
reaches the wearable over both is felt once.

- Home -> organisation: the home broker has been unreachable for `switch_after_s` and a TCP
  connection to it fails as well.
- Organisation -> home: every `probe_every_s` a TCP connection to the home broker is tried; as soon
  as one succeeds the wearable goes home.
Away, the wearable reads only the contract's `away` topics (its prompts, the hub's confirmations of
its inputs, whether the hub is online), never the household's `state`.
"""
from __future__ import annotations

import json
import logging
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from mqtt import contract
from mqtt.client import BusClient, Handler, M
from mqtt.errors import BrokerConfigError

log = logging.getLogger(__name__)
Link = Literal["home", "organisation"]


@dataclass(frozen=True)
class OrgLogin:
    """The wearable's log-in on the organisation's broker: `wearable-<p>.json` as
    `timeout-hub org-broker-config` writes it (paths relative to that file)."""

    host: str
    port: int
    username: str
    topic_prefix: str
    cafile: Path
    password: str | None = field(default=None, repr=False)
    cert: tuple[Path, Path] | None = None

    @classmethod
    def load(cls, path: Path, household: str, partner: str) -> OrgLogin:
        path = Path(path)
        try:
            d = json.loads(path.read_text())
            base = path.parent
            cert = (base / d["certfile"], base / d["keyfile"]) if "certfile" in d else None
            login = cls(str(d["host"]), int(d["port"]), str(d["username"]), str(d["topic_prefix"]),
                        base / d["cafile"], d.get("password"), cert)
        except FileNotFoundError:
            raise BrokerConfigError(f"organisation log-in {path} does not exist") from None
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise BrokerConfigError(f"organisation log-in {path} is not the file org-broker-config "
                                    f"writes: {type(e).__name__} {e}") from None
        want = f"{household}.wearable-{partner}"
        if login.username != want:
            raise BrokerConfigError(f"organisation log-in {path} is for {login.username}, "
                                    f"not this wearable ({want})")
        if login.password is None and login.cert is None:
            raise BrokerConfigError(f"organisation log-in {path} has no password and no certificate")
        return login


def reachable(host: str, port: int, timeout: float = 2.0) -> bool:
    """A TCP connection to the broker succeeds (cheap: no TLS, no MQTT)."""
    try:
        socket.create_connection((host, port), timeout=timeout).close()
        return True
    except OSError:
        return False


class WearableLink:
    """Looks like one BusClient to the wearable; underneath, the home or the organisation's."""

    def __init__(self, partner: str, home: Callable[[], BusClient],
                 away: Callable[[], BusClient] | None, home_reachable: Callable[[], bool], *,
                 switch_after_s: float = 30.0, probe_every_s: float = 60.0,
                 monotonic: Callable[[], float] = time.monotonic,
                 on_connected: Callable[[], None] | None = None):
        self.partner = partner
        self._factories: dict[Link, Callable[[], BusClient] | None] = {"home": home, "organisation": away}
        self._home_reachable = home_reachable
        self.switch_after_s, self.probe_every_s = switch_after_s, probe_every_s
        self.monotonic = monotonic
        self.on_connected = on_connected
        self._away_topics = frozenset(contract.away_topics(partner))
        self._handlers: list[tuple[str, Handler]] = []
        self._lock = threading.RLock()
        self.link: Link = "home"
        self.bus = home()
        self.switches = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the BusClient face the wearable uses --------------------------------------------------
    @property
    def clock(self):
        return self.bus.clock

    @property
    def connected(self) -> threading.Event:
        return self.bus.connected

    def make(self, schema: type[M], **fields: object) -> M:
        return self.bus.make(schema, **fields)

    def on(self, pattern: str, handler: Handler) -> None:
        with self._lock:
            self._handlers.append((pattern, handler))
            self._subscribe(self.bus, pattern, handler)

    def publish(self, topic: str, payload: BaseModel) -> uuid.UUID:
        with self._lock:         # never into a client being stopped: its outbox is closing
            return self.bus.publish(topic, payload)

    def wait_connected(self, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.bus.wait_connected(min(0.5, max(0.0, deadline - time.monotonic()))):
                return True
        return False

    def alive(self) -> bool:
        return self.bus.alive() and self._thread is not None and self._thread.is_alive()

    def start(self) -> WearableLink:
        self.bus.start()
        self._thread = threading.Thread(target=self._run, name="wearable-link", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(5)
        with self._lock:
            self.bus.stop()

    # -- switching -----------------------------------------------------------------------------
    def _subscribe(self, bus: BusClient, pattern: str, handler: Handler) -> None:
        if bus.prefix != bus.home_prefix and not set(contract.expand_pattern(pattern)) <= self._away_topics:
            return      # away: the household's state and the like stay at home
        bus.on(pattern, handler)

    def switch(self, to: Link) -> None:
        factory = self._factories[to]
        if factory is None or to == self.link:
            return
        with self._lock:
            old = self.bus
            old.stop()
            new = factory()
            for pattern, handler in self._handlers:
                self._subscribe(new, pattern, handler)
            self.bus, self.link = new, to
            self.switches += 1
            new.start()
        log.info("link: now %s", "home" if to == "home" else "via the organisation")

    def _run(self) -> None:
        last_ok = last_probe = self.monotonic()
        was_connected = False
        while not self._stop.wait(0.5):
            try:
                now = self.monotonic()
                up = self.bus.connected.is_set()
                if up and not was_connected and self.on_connected:
                    self.on_connected()      # a heartbeat at once: the hub learns the link
                was_connected = up
                if self.link == "home":
                    if up:
                        last_ok = now
                    elif (now - last_ok >= self.switch_after_s and self._factories["organisation"]
                          and not self._home_reachable()):
                        self.switch("organisation")
                        was_connected, last_probe = False, now
                elif now - last_probe >= self.probe_every_s:
                    last_probe = now
                    if self._home_reachable():
                        self.switch("home")
                        was_connected, last_ok = False, now
            except Exception:      # the link keeper must outlive any one failure
                log.exception("link supervision step failed")
