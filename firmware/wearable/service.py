"""The wearable service (`timeout-hub wearable --config WEARABLE.toml`), on the partner's own
Pi Zero 2 W: one button, a vibration motor, a status LED, a GNSS receiver read through gpsd.

- A long press (>= 2 s) announces a time-out with this partner as P1 (`partner/<p>/input`,
  through the bus client's durable outbox: kept until the hub confirms it).
- Questions from the hub (check-in, evaluation) are answered by pressing 1, 2 or 3 times; after
  `answer_window` seconds without a press the count is sent and felt back as that many buzzes.
- Prompts are vibration patterns (firmware/wearable/patterns.py), one per kind.
- During a time-out (the hub's retained `state`) it keeps gpsd open, so the receiver is on, and
  publishes `partner/<p>/apart` only when the verdict changes; outside one it closes gpsd (the
  receiver sleeps) and says "unknown". Coordinates stay in this process (R4).
- A heartbeat every `heartbeat_seconds` with the battery level; a low battery is a fault in
  `wearable-<p>/health`.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from gpiozero import LED, Button, DigitalOutputDevice
from pydantic import Field

from core.config import StrictConfig, load_config
from core.errors import ConfigError
from firmware.wearable import patterns
from firmware.wearable.geofence import Geofence, Home
from firmware.wearable.gps import GpsdStream
from firmware.wearable.link import OrgLogin, WearableLink, reachable
from mqtt import schemas
from mqtt.client import BusClient, Message

log = logging.getLogger(__name__)

GNSS_PHASES = ("leaving", "timeout", "extended", "checkin")
QUESTION_OPEN_S = 10 * 60.0     # the hub asks again (3 prompts over 5 minutes) within this
GPSD_RETRY_S = 5.0


class WearableConfigError(ConfigError):
    """The wearable's configuration file is not valid."""


class WearablePins(StrictConfig):
    """BCM GPIO numbers (hardware/wearable.md has the wiring)."""

    button: int = 17
    motor: int = 18          # through an NPN transistor / MOSFET, never straight from the pin
    led: int = 27


class BatteryConfig(StrictConfig):
    # a file holding the charge in percent (a fuel gauge's sysfs `capacity`); none: not measured
    capacity_file: str | None = None
    low_percent: int = Field(25, ge=5, le=60,
                             description="about 6 hours of use left at 25 % (docs/wearable.md)")


class AwayConfig(StrictConfig):
    """Away from home: the care organisation's broker, bridged to the hub (docs/fleet.md)."""

    org: str = Field(description="wearable-<p>.json from `timeout-hub org-broker-config`")
    switch_after_seconds: float = Field(30.0, ge=5.0, le=600.0,
                                        description="home broker unreachable this long: go away")
    probe_every_seconds: float = Field(60.0, ge=5.0, le=600.0,
                                       description="away: how often to try the home broker")


class WearableConfig(StrictConfig):
    """The wearable's own configuration (examples/wearable.toml); the only place the home
    position is stored (R4)."""

    household: str
    partner: Literal["a", "b"]
    credentials: str
    state_dir: str = "/var/lib/timeout-hub/wearable"
    host: str = "127.0.0.1"
    port: int = Field(1883, ge=1, le=65535)
    tls_ca: str | None = None
    home: tuple[float, float] = Field(strict=False, description="LAT, LON of the front door")
    gpsd_host: str = "127.0.0.1"
    gpsd_port: int = Field(2947, ge=1, le=65535)
    long_press_seconds: float = Field(2.0, ge=2.0, le=10.0)
    answer_window_seconds: float = Field(3.0, ge=1.0, le=10.0)
    heartbeat_seconds: float = Field(600.0, ge=10.0, le=1800.0)
    bounce_ms: int = Field(30, ge=5, le=200)
    pins: WearablePins = WearablePins()
    battery: BatteryConfig = BatteryConfig()
    away: AwayConfig | None = None


def load(path: str | Path) -> WearableConfig:
    cfg = load_config(path, WearableConfig, WearableConfigError)
    try:
        Home.of(*cfg.home)
    except ValueError as e:
        raise WearableConfigError([("home", str(e))], str(path)) from None
    return cfg


class Wearable:
    def __init__(self, bus: BusClient | WearableLink, cfg: WearableConfig, *, pin_factory=None,
                 monotonic: Callable[[], float] = time.monotonic,
                 battery: Callable[[], int | None] | None = None):
        self.bus, self.cfg = bus, cfg
        self.partner = cfg.partner
        self.monotonic = monotonic
        f = pin_factory
        p = cfg.pins
        self.button = Button(p.button, hold_time=cfg.long_press_seconds,
                             bounce_time=cfg.bounce_ms / 1000, pin_factory=f)
        self.motor = DigitalOutputDevice(p.motor, pin_factory=f)
        self.led = LED(p.led, pin_factory=f)
        self.fence = Geofence(Home.of(*cfg.home))
        self.gps = GpsdStream(cfg.gpsd_host, cfg.gpsd_port, timeout=2.0)
        self.battery = battery or self._battery_file
        self.phase: str | None = None
        self.question: schemas.PartnerPrompt | None = None
        self._question_at = 0.0
        self._presses = 0
        self._held = False
        self._answer_timer: threading.Timer | None = None
        self._lock = threading.RLock()
        self._buzz: queue.Queue[patterns.Pattern | None] = queue.Queue()
        self._stop = threading.Event()
        self._gnss_wanted = threading.Event()
        self._battery_low = False
        self.button.when_held = self._long_press
        self.button.when_released = self._released
        bus.on(f"partner/{self.partner}/prompt", self._prompt)
        bus.on("state", self._state)
        self._threads = [threading.Thread(target=t, name=n, daemon=True) for t, n in (
            (self._vibrate, "wearable-motor"), (self._gnss, "wearable-gnss"),
            (self._heartbeat, "wearable-heartbeat"))]

    def start(self) -> Wearable:
        for t in self._threads:
            t.start()
        return self

    def close(self) -> None:
        self._stop.set()
        self._gnss_wanted.set()        # wake the GNSS thread so it sees the stop
        self._buzz.put(None)
        for t in self._threads:
            t.join(5)
        with self._lock:
            if self._answer_timer:
                self._answer_timer.cancel()
        for dev in (self.button, self.motor, self.led):
            dev.close()

    # -- the button ---------------------------------------------------------------------------
    def _long_press(self) -> None:
        with self._lock:
            self._held = True
            self._presses = 0
        self.bus.publish(f"partner/{self.partner}/input", self.bus.make(
            schemas.PartnerInput, kind="button", via="wearable"))
        log.info("long press: time-out announced")
        self.buzz(patterns.PATTERNS["started"])

    def _released(self) -> None:
        with self._lock:
            if self._held:          # the end of a long press, not a short one
                self._held = False
                return
            if self.question is None or self.monotonic() - self._question_at > QUESTION_OPEN_S:
                log.info("short press without an open question: ignored")
                return
            self._presses += 1
            if self._answer_timer:
                self._answer_timer.cancel()
            self._answer_timer = threading.Timer(self.cfg.answer_window_seconds, self._answer)
            self._answer_timer.daemon = True
            self._answer_timer.start()

    def _answer(self) -> None:
        with self._lock:
            q, n = self.question, self._presses
            self._presses = 0
            if q is None or n == 0:
                return
            if n > q.options:
                log.info("%d presses for a question with %d answers: asked again", n, q.options)
                self.buzz(patterns.PATTERNS["retry"])
                self.buzz(patterns.PATTERNS[patterns.for_prompt(q.kind, q.key)])
                return
            self.question = None
            self.led.off()
        self.bus.publish(f"partner/{self.partner}/input", self.bus.make(
            schemas.PartnerInput, kind="answer", via="wearable", question_id=q.question_id, choice=n))
        log.info("answer %d sent for %s", n, q.key)
        self.buzz(patterns.confirm(n))

    # -- from the hub --------------------------------------------------------------------------
    def _prompt(self, m: Message) -> None:
        p: schemas.PartnerPrompt = m.payload     # type: ignore[assignment]
        name = patterns.for_prompt(p.kind, p.key)
        log.info("prompt %s (%s)", p.key, name)
        if p.kind in ("checkin", "evaluation") and p.options:
            with self._lock:
                # the hub asks again (same question) while the partner may be pressing: the
                # presses made so far still count
                if self.question is None or self.question.question_id != p.question_id:
                    self._presses = 0
                self.question, self._question_at = p, self.monotonic()
                self.led.on()                    # a question is open: answer with presses
        self.buzz(patterns.PATTERNS[name])

    def _state(self, m: Message) -> None:
        s: schemas.State = m.payload             # type: ignore[assignment]
        self.phase = str(s.phase)
        if s.phase in GNSS_PHASES:
            self._gnss_wanted.set()
        else:
            self._gnss_wanted.clear()
            with self._lock:
                if s.phase == "monitoring" and self.question is not None:
                    self.question = None         # the time-out is over: nothing to answer
                    self.led.off()

    # -- the motor -----------------------------------------------------------------------------
    def buzz(self, pattern: patterns.Pattern) -> None:
        self._buzz.put(pattern)

    def _vibrate(self) -> None:
        while True:
            pat = self._buzz.get()
            if pat is None:
                return
            for i, seconds in enumerate(pat):
                if i % 2 == 0 and seconds > 0:
                    self.motor.on()
                if self._stop.wait(seconds):
                    self.motor.off()
                    return
                self.motor.off()
            self._stop.wait(patterns.BETWEEN)    # patterns never run into each other

    # -- GNSS and the verdict ------------------------------------------------------------------
    def _publish_verdict(self, verdict: str) -> None:
        apart = {"yes": True, "no": False}.get(verdict)
        self.bus.publish(f"partner/{self.partner}/apart", self.bus.make(
            schemas.Apart, apart=apart, fix=self.fence.based_on_fix))
        log.info("apart: %s", verdict)           # the verdict only, never a position (R4)

    def _gnss(self) -> None:
        warned = False
        while not self._stop.is_set():
            if not self._gnss_wanted.wait(1.0):
                if self.gps.is_open:             # the time-out is over: the receiver may sleep
                    self.gps.close()
                    if self.fence.reset() is not None:
                        self._publish_verdict("unknown")
                continue
            if self._stop.is_set():
                break
            try:
                if not self.gps.is_open:
                    self.gps.open()
                    warned = False
                for r in self.gps.reports():
                    v = self.fence.observe(self.monotonic(), r.fix, r.time)
                    if v is not None:
                        self._publish_verdict(v)
                    if self._stop.is_set() or not self._gnss_wanted.is_set():
                        break
                v = self.fence.tick(self.monotonic())    # gpsd quiet: time still passes
                if v is not None:
                    self._publish_verdict(v)
            except OSError as e:
                self.gps.close()
                if not warned:
                    log.warning("gnss: gpsd at %s:%d not usable (%s); the verdict is unknown "
                                "until it is", self.cfg.gpsd_host, self.cfg.gpsd_port, e)
                    warned = True
                v = self.fence.tick(self.monotonic())
                if v is not None:
                    self._publish_verdict(v)
                self._stop.wait(GPSD_RETRY_S)
        self.gps.close()

    # -- supervision and power ------------------------------------------------------------------
    def _battery_file(self) -> int | None:
        path = self.cfg.battery.capacity_file
        if not path:
            return None
        try:
            return max(0, min(100, int(Path(path).read_text().strip())))
        except (OSError, ValueError):
            return None

    def beat(self) -> None:
        level = self.battery()
        self.bus.publish(f"partner/{self.partner}/heartbeat", self.bus.make(
            schemas.Heartbeat, battery=level, gnss=self.gps.is_open,
            link=getattr(self.bus, "link", "home")))
        low = level is not None and level <= self.cfg.battery.low_percent
        if low != self._battery_low:
            self._battery_low = low
            service = f"wearable-{self.partner}"
            faults = [schemas.Fault(code="wearable.battery_low", service=service,  # type: ignore[arg-type]
                                    since=self.bus.clock(),
                                    reason=f"battery at {level} %; charge the wearable")] if low else []
            self.bus.publish(f"{service}/health", self.bus.make(schemas.Health, faults=faults))

    def _heartbeat(self) -> None:
        self.bus.wait_connected(10)
        while True:
            try:
                self.beat()
            except Exception:        # a heartbeat that failed once must not end them all
                log.exception("heartbeat failed")
            if self._stop.wait(self.cfg.heartbeat_seconds):
                return


def link_for(cfg: WearableConfig) -> WearableLink:
    """The home broker, and the organisation's when `[away]` is configured (firmware/wearable/link.py)."""
    from mqtt.broker_config import Credentials

    service, state_dir = f"wearable-{cfg.partner}", Path(cfg.state_dir)

    def home() -> BusClient:
        return BusClient(service, cfg.household, Credentials.load(Path(cfg.credentials)),
                         host=cfg.host, port=cfg.port,
                         tls_ca=Path(cfg.tls_ca) if cfg.tls_ca else None, state_dir=state_dir)

    away = None
    if cfg.away is not None:
        org = OrgLogin.load(Path(cfg.away.org), cfg.household, cfg.partner)

        def away() -> BusClient:
            return BusClient(service, cfg.household, Credentials(org.username, org.password or ""),
                             host=org.host, port=org.port, tls_ca=org.cafile, tls_cert=org.cert,
                             topic_prefix=org.topic_prefix, state_dir=state_dir)

    return WearableLink(cfg.partner, home, away, lambda: reachable(cfg.host, cfg.port),
                        switch_after_s=cfg.away.switch_after_seconds if cfg.away else 30.0,
                        probe_every_s=cfg.away.probe_every_seconds if cfg.away else 60.0)


def serve(config_path: str, *, mock: bool = False) -> int:
    """`timeout-hub wearable`: run until SIGTERM/SIGINT."""
    from core.sdnotify import run_until_stopped

    cfg = load(config_path)
    factory = None
    if mock:
        from gpiozero.pins.mock import MockFactory
        factory = MockFactory()
    bus = link_for(cfg)
    w = Wearable(bus, cfg, pin_factory=factory)
    bus.on_connected = w.beat
    bus.start()
    w.start()
    run_until_stopped(bus.alive, f"wearable of partner {cfg.partner} running")
    w.close()
    bus.stop()
    return 0

