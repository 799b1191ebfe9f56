"""The wearable away from home (issue 17, links): real Mosquitto brokers, the household's and the
care organisation's, bridged as `broker-config --bridge` writes it; the real hub; the wearable
service on MockFactory. Home Wi-Fi going away is a relay between the wearable and the home broker
whose port stops listening."""
from __future__ import annotations

import socket
import threading
from pathlib import Path

from core.clock import ManualClock
from firmware.hub import procedure as P
from firmware.hub.service import Hub
from firmware.hub.wearable_watch import WearableWatch
from firmware.wearable.link import OrgLogin, WearableLink, reachable
from firmware.wearable.service import Wearable
from mqtt.bridge_config import write_bridge
from mqtt.broker_process import PrivateBroker, free_port
from mqtt.client import BusClient
from mqtt.org_broker import OrgBrokerProcess
from tests.conftest import wait_until
from tests.helpers.collect import Collect
from tests.test_wearable_service import PINS, PLAN, buzzes, client, config, press

H = PLAN.household


class HomeWifi:
    """A relay to the home broker; off() closes its port (the wearable is out of Wi-Fi range)."""

    def __init__(self, target: int):
        self.target, self.port = target, free_port()
        self.socks: list[socket.socket] = []
        self.server: socket.socket | None = None
        self.on()

    def on(self) -> None:
        self.server = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, args=(self.server,), daemon=True).start()

    def off(self) -> None:
        if self.server:
            try:
                self.server.shutdown(socket.SHUT_RDWR)   # wakes the accepting thread
            except OSError:
                pass
            self.server.close()
            self.server = None
        for s in self.socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.socks.clear()

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                a, _ = server.accept()
            except OSError:
                return
            b = socket.create_connection(("127.0.0.1", self.target))
            self.socks += [a, b]
            for x, y in ((a, b), (b, a)):
                threading.Thread(target=self._pipe, args=(x, y), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def test_a_wearable_away_answers_a_check_in_through_the_organisation_and_comes_back_home(tmp_path: Path):
    org = OrgBrokerProcess(tmp_path / "org", (H,)).start()
    home = PrivateBroker(tmp_path / "broker", H)
    write_bridge(home.directory, H, org.org_file(H))
    home.start()
    wifi = HomeWifi(home.port)
    try:
        assert wait_until(lambda: f"as {H} (" in org.log_path.read_text(errors="replace"), 15)
        clock = ManualClock()
        hub = Hub(PLAN, client(home, tmp_path, "hub"), clock, tmp_path / "hub", tick_seconds=0.02).start()
        watch = WearableWatch(hub, check_every_s=0.05).start()
        states = Collect(payloads=True)
        panel = client(home, tmp_path, "panel")
        panel.on("state", states)
        panel.start()

        cfg = config(home, tmp_path, free_port())
        login = OrgLogin.load(org.directory / "households" / H / "wearable-b.json", H, "b")
        state_dir = Path(cfg.state_dir)

        def at_home() -> BusClient:
            return BusClient("wearable-b", H, home.creds("wearable-b"), port=wifi.port,
                             state_dir=state_dir, reconnect_min=0.1, reconnect_max=0.5)

        def away() -> BusClient:
            return BusClient("wearable-b", H, org.creds(login.username), host=login.host,
                             port=login.port, tls_ca=login.cafile, topic_prefix=login.topic_prefix,
                             state_dir=state_dir, reconnect_min=0.1, reconnect_max=0.5)

        link = WearableLink("b", at_home, away, lambda: reachable("127.0.0.1", wifi.port, 0.5),
                            switch_after_s=1.0, probe_every_s=1.0)
        from gpiozero.pins.mock import MockFactory
        factory = MockFactory()
        w = Wearable(link, cfg, pin_factory=factory, battery=lambda: 80)
        link.on_connected = w.beat
        link.start()
        w.start()
        motor, led = factory.pin(PINS["motor"]), factory.pin(PINS["led"])
        assert wait_until(lambda: watch.link("b") == "home", 15)
        assert panel.wait_subscribed(5) and hub.bus.wait_subscribed(5)
        for p in "ab":
            hub.feed(P.PresenceSeen(p, "home"))

        # partner b announces a time-out on the wearable and leaves: out of Wi-Fi range
        factory.pin(PINS["button"]).drive_low()
        assert wait_until(lambda: states and states[-1].phase == "leaving", 10)
        factory.pin(PINS["button"]).drive_high()
        wifi.off()
        assert wait_until(lambda: link.link == "organisation" and link.connected.is_set(), 20)
        assert wait_until(lambda: watch.link("b") == "organisation", 15)   # the hub knows how
        hub.feed(P.ApartSeen("b", True))     # its GNSS verdict (tests/test_wearable_service.py)
        assert wait_until(lambda: hub.proc.public_state()["phase"] == "timeout", 20)

        # the end check-in reaches the away wearable through the organisation's broker
        motor.clear_states()
        clock.advance(PLAN.timeout.minimum_minutes * 60 + 1)
        hub.feed(None)
        assert wait_until(lambda: states[-1].phase == "checkin", 5)
        assert wait_until(lambda: "SSL" in buzzes(motor) and led.state, 20), buzzes(motor)
        press(factory, 1)

        def answers() -> list:
            return [e for e in hub.db.events() if e.type == "checkin_answered" and e.partner == "b"]
        assert wait_until(lambda: answers(), 20)
        # the hub's confirmation came back the same way: nothing left to send again
        assert wait_until(lambda: link.bus.outbox_size() == 0 and link.bus.unconfirmed() == 0, 20)
        assert len(answers()) == 1 and answers()[0].data.get("choice", 1) == 1

        # home again: the wearable goes back to the home broker, and the hub sees it
        wifi.on()
        assert wait_until(lambda: link.link == "home" and link.connected.is_set(), 20)
        assert wait_until(lambda: watch.link("b") == "home", 15)
        assert link.switches == 2
        assert len(answers()) == 1
        w.close()
        link.stop()
        panel.stop()
        watch.stop()
        hub.stop()
    finally:
        wifi.off()
        home.kill()
        org.kill()
