"""The button-and-LED panel (gpiozero), its own service with its own broker credentials.

It shows the truth: every light is drawn from the retained `state` and `hub/available`, so after a
restart or a reconnect the panel is right at once. A time-out starts only with a long press
(>= 2 s) with the button's own light on while it is held; short presses are counted and sent as
such (the hub ignores them); mood buttons work only while a question is open; nothing on the
panel can end a time-out (the contract gives the panel no such message). A long press while the
hub is offline is kept in the panel's outbox and the button light blinks until the hub has it.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from gpiozero import LED, Button, Buzzer
from pydantic import Field, model_validator

from core.clock import SystemClock
from core.config import StrictConfig, load_config
from core.errors import ConfigError
from core.sdnotify import run_until_stopped
from firmware.panel.doors import PanelDoor, PanelDoors
from mqtt import schemas
from mqtt.client import BusClient, Message
from mqtt.faults import light_group, needs_action

log = logging.getLogger(__name__)

ACTIVE_PHASES = ("leaving", "timeout", "extended", "checkin")

# Fault LED pattern (on seconds, off seconds) per fault class: each distinct at a glance.
FAULT_PATTERNS: dict[str, tuple[float, float] | None] = {
    "hub_offline": (1.0, 1.0),   # slow even blink: the hub (or the panel's link to it) is gone
    "mic": (0.2, 1.8),           # short flash: microphone / sound sensing
    "ble": (1.8, 0.2),           # long on, short off: tag presence
    "modem": (0.2, 0.2),         # fast blink: calls cannot go out
    "other": None,               # steady on: any other fault
}


class PanelConfigError(ConfigError):
    """The panel's configuration file is not valid."""


class PanelPins(StrictConfig):
    """BCM GPIO numbers (hardware/panel.md has the wiring table)."""

    timeout_button: int = 17
    timeout_led: int = 27
    # strict=False on the tuples only: TOML has lists, not tuples
    mood_buttons: tuple[int, int, int] = Field((5, 13, 19), strict=False)  # calm, a bit tense, not calm
    question_led: int = 26
    bar: tuple[int, ...] = Field((12, 16, 20, 21, 22, 23, 24, 25), min_length=5, max_length=10,
                                 strict=False)
    sensing_led: int = 18
    suggestion_led: int = 7
    active_led: int = 8
    fault_led: int = 9
    buzzer: int | None = 10


class PanelConfig(StrictConfig):
    """The panel service's own configuration file (examples/panel.toml)."""

    household: str
    credentials: str
    state_dir: str = "/var/lib/timeout-hub/panel"
    host: str = "127.0.0.1"
    port: int = Field(1883, ge=1, le=65535)
    tls_ca: str | None = None
    long_press_seconds: float = Field(2.0, ge=2.0, le=10.0,
                                      description="at least 2 s: a child's tap never starts one")
    bounce_ms: int = Field(30, ge=5, le=200)
    pins: PanelPins = PanelPins()
    doors: list[PanelDoor] = Field(default_factory=list, max_length=2,
                                   description="exit-door reed contacts on this Pi (docs/ble.md)")
    tags_heard: bool = Field(False, description="scan for the household's tags as a second BLE "
                             "receiver and send `panel/tags_heard` (docs/ble.md)")
    tags_file: str = Field("/etc/timeout-hub/panel-tags.toml",
                           description="the plan's tag IDs, mode 0600, owned by the panel's user")
    ble_adapter: str = Field("hci0", pattern=r"^hci\d{1,2}$")

    @model_validator(mode="after")
    def _door_pins(self) -> PanelConfig:
        p = self.pins
        taken = {p.timeout_button, p.timeout_led, *p.mood_buttons, p.question_led, *p.bar,
                 p.sensing_led, p.suggestion_led, p.active_led, p.fault_led, p.buzzer}
        problems = [f"door {d.id}: pin {d.pin} is already one of the panel's buttons or lights"
                    for d in self.doors if d.pin in taken]
        for what, values in (("id", [d.id for d in self.doors]), ("pin", [d.pin for d in self.doors])):
            problems += [f"two doors have {what} {v}" for v in sorted({v for v in values
                                                                        if values.count(v) > 1})]
        if problems:
            raise ValueError("\n".join(problems))
        return self


def serve(config_path: str, *, mock: bool = False, draw_lights: bool = False) -> int:
    """`timeout-hub panel`: run the panel until SIGTERM/SIGINT."""
    from pathlib import Path

    from mqtt.broker_config import Credentials

    cfg = load_config(config_path, PanelConfig, PanelConfigError)
    factory = None
    if mock:
        from gpiozero.pins.mock import MockFactory
        factory = MockFactory()
    bus = BusClient("panel", cfg.household, Credentials.load(Path(cfg.credentials)), host=cfg.host,
                    port=cfg.port, tls_ca=Path(cfg.tls_ca) if cfg.tls_ca else None,
                    state_dir=Path(cfg.state_dir))
    last = [""]

    def show(p: Panel) -> None:
        line = draw(p)
        if draw_lights and line != last[0]:
            last[0] = line
            print(line, flush=True)
    panel = Panel(bus, cfg.pins, long_press_s=cfg.long_press_seconds,
                  bounce_s=cfg.bounce_ms / 1000, pin_factory=factory, on_render=show)
    clock = SystemClock()
    doors = PanelDoors(bus, cfg.doors, clock, pin_factory=factory)
    # the tags file is checked before anything starts: a bad one is one sentence, not a half panel
    tags, heard_service = None, None
    if cfg.tags_heard:
        try:   # bleak and cryptography: only a panel that scans needs them (its own extra does not)
            from firmware.panel.tags_heard import TagsHeardService, load_tags
        except ImportError as e:
            raise PanelConfigError([("tags_heard", f"needs the Bluetooth packages ({e.name} is not "
                                     "installed): install them on the panel's Pi, or set "
                                     "tags_heard = false")], config_path) from None
        tags, heard_service = load_tags(cfg.tags_file), TagsHeardService
    if factory is not None:
        for d in cfg.doors:   # a mock panel starts with its doors shut (the magnet at the contact)
            factory.pin(d.pin).drive_low()
    bus.start()
    doors.start()
    # a radio that fails is `scanning: false` on the bus and retried, never a stop of the panel
    heard = (heard_service(bus, tags, clock, backend_kwargs={"adapter": cfg.ble_adapter}).start()
             if heard_service is not None and tags is not None else None)
    run_until_stopped(lambda: bus.alive() and doors.alive() and (heard is None or heard.alive()),
                      f"panel for {cfg.household} running")
    if heard is not None:
        heard.stop()
    doors.stop()
    panel.close()
    bus.stop()
    return 0


@dataclass
class _Press:
    started: float = 0.0
    held: bool = False


class Panel:
    def __init__(self, bus: BusClient, pins: PanelPins | None = None, *, long_press_s: float = 2.0,
                 bounce_s: float = 0.03, pin_factory=None,
                 on_render: Callable[[Panel], None] | None = None):
        f = pin_factory
        self.bus = bus
        pins = pins or PanelPins()
        self.pins = pins
        self.on_render = on_render
        self.button = Button(pins.timeout_button, hold_time=long_press_s, bounce_time=bounce_s,
                             pin_factory=f)
        self.button_led = LED(pins.timeout_led, pin_factory=f)
        self.moods = [Button(p, bounce_time=bounce_s, pin_factory=f) for p in pins.mood_buttons]
        self.question_led = LED(pins.question_led, pin_factory=f)
        self.bar = [LED(p, pin_factory=f) for p in pins.bar]
        self.sensing_led = LED(pins.sensing_led, pin_factory=f)
        self.suggestion_led = LED(pins.suggestion_led, pin_factory=f)
        self.active_led = LED(pins.active_led, pin_factory=f)
        self.fault_led = LED(pins.fault_led, pin_factory=f)
        self.buzzer = Buzzer(pins.buzzer, pin_factory=f) if pins.buzzer is not None else None

        self.state: schemas.State | None = None
        self.hub_online = False
        self.link_up = bus.connected.is_set()
        self.waiting = False          # a long press made while the hub was away, not yet seen
        self.short_presses = 0
        self.ignored_mood_presses = 0
        self._press = _Press()
        self._lock = threading.RLock()
        self._modes: dict[str, object] = {}
        self._closed = False

        self.button.when_pressed = self._pressed
        self.button.when_held = self._held
        self.button.when_released = self._released
        for choice, b in enumerate(self.moods, start=1):
            b.when_pressed = lambda c=choice: self._mood(c)
        bus.on_connection = self._link
        bus.on("state", self._on_state)
        bus.on("hub/available", self._on_hub)

    # -- what the panel shows ---------------------------------------------------------------
    @property
    def offline(self) -> bool:
        return not (self.link_up and self.hub_online and self.state is not None)

    def fault_pattern(self) -> str | None:
        if self.offline:
            return "hub_offline"
        # a fault that needs nothing from the household (mqtt/faults.py) does not light the LED
        classes = [light_group(f.code, f.service) for f in self.state.faults if needs_action(f.code)]
        for c in ("modem", "mic", "ble", "other"):   # the most urgent first
            if c in classes:
                return c
        return None

    def _set(self, name: str, led: LED, mode: object) -> None:
        """Apply a mode (False/True/(on, off) blink) only when it changes: re-applying a blink
        would restart its rhythm."""
        if self._modes.get(name) == mode:
            return
        self._modes[name] = mode
        if mode is True:
            led.on()
        elif mode is False:
            led.off()
        else:
            on, off = mode  # type: ignore[misc]
            led.blink(on_time=on, off_time=off)

    def render(self) -> None:
        with self._lock:
            if self._closed:
                return
            s = self.state
            off = self.offline
            # R5: steady while every sensor works, a slow pulse when only some do
            self._set("sensing", self.sensing_led,
                      False if off or s.sensing == "off" else (True if s.sensing == "on" else (1.5, 0.5)))
            self._set("suggestion", self.suggestion_led,
                      (0.5, 0.5) if not off and s.suggestion else False)
            # the time-out light: steady while it runs, a fast blink while the leaver is back early
            self._set("active", self.active_led,
                      False if off or s.phase not in ACTIVE_PHASES
                      else ((0.25, 0.25) if s.returned_early else True))
            self._set("question", self.question_led, bool(not off and s.question is not None))
            # in a time-out the bar counts down the time left; otherwise the thermometer (dark
            # when there is no sound data)
            level = None if off or s is None else (s.time_left if s.time_left is not None
                                                   else s.thermometer)
            lit = 0 if level is None else round(level * len(self.bar) / 10)
            for i, led in enumerate(self.bar):
                self._set(f"bar{i}", led, i < lit)
            pattern = self.fault_pattern()
            self._set("fault", self.fault_led,
                      False if pattern is None else (FAULT_PATTERNS[pattern] or True))
            if self.button.is_pressed and not self._press.held:
                button: object = True              # feedback while held
            elif self.waiting:
                button = (0.15, 0.15)              # kept; waiting for the hub
            elif self._press.held and self.button.is_pressed:
                button = True
            else:
                button = False
            self._set("button", self.button_led, button)
        if self.on_render:
            self.on_render(self)

    # -- bus ---------------------------------------------------------------------------------
    def _link(self, up: bool) -> None:
        self.link_up = up
        self.render()

    def _on_hub(self, m: Message) -> None:
        self.hub_online = m.payload == "online"
        self.render()

    def _on_state(self, m: Message) -> None:
        with self._lock:
            self.state = m.payload  # type: ignore[assignment]
            if self.waiting and self.hub_online and self.state.phase in ACTIVE_PHASES:
                self.waiting = False
        self.render()

    # -- buttons -----------------------------------------------------------------------------
    def _pressed(self) -> None:
        self._press = _Press(started=time.monotonic())
        self.render()   # the button's light at once: the hand must feel it working

    def _held(self) -> None:
        self._press.held = True
        queued = self.offline
        held = time.monotonic() - self._press.started
        self.bus.publish("panel/press", self.bus.make(
            schemas.PanelPress, press="long", held_s=round(min(held, 600.0), 2), queued=queued))
        if queued:
            self.waiting = True
        if self.buzzer:
            self.buzzer.beep(on_time=0.1, off_time=0.1, n=1)
        self.render()

    def _released(self) -> None:
        if not self._press.held:
            self.short_presses += 1
            held = max(0.0, time.monotonic() - self._press.started)
            self.bus.publish("panel/press", self.bus.make(
                schemas.PanelPress, press="short", held_s=round(min(held, 600.0), 2)))
        self._press = _Press()
        self.render()

    def _mood(self, choice: int) -> None:
        s = self.state
        if self.offline or s is None or s.question is None or choice > s.question.options:
            self.ignored_mood_presses += 1
            return
        self.bus.publish("panel/answer", self.bus.make(
            schemas.PanelAnswer, question_id=s.question.id, choice=choice))

    def close(self) -> None:
        with self._lock:
            self._closed = True
        self.bus.on_connection = None
        for d in (self.button, self.button_led, *self.moods, self.question_led, *self.bar,
                  self.sensing_led, self.suggestion_led, self.active_led, self.fault_led,
                  *( [self.buzzer] if self.buzzer else [])):
            d.close()


def draw(panel: Panel) -> str:
    """The panel's lights as one terminal line (the demo and `--draw`)."""
    def dot(led: LED) -> str:
        return "●" if led.is_lit else "○"
    mode = panel._modes
    def shown(name: str, led: LED) -> str:
        m = mode.get(name)
        return "◐" if isinstance(m, tuple) else dot(led)
    bar = "".join(dot(led) for led in panel.bar)
    return (f"[{bar}] sensing {shown('sensing', panel.sensing_led)}  "
            f"suggestion {shown('suggestion', panel.suggestion_led)}  "
            f"time-out {shown('active', panel.active_led)}  "
            f"question {shown('question', panel.question_led)}  "
            f"fault {shown('fault', panel.fault_led)}  button {shown('button', panel.button_led)}")
