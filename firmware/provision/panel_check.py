"""Step 8, the panel test: each light on in turn while the installer says whether it lights, then
each button pressed when asked. It drives the panel's pins itself (gpiozero), so it runs before the
panel service is started (a running panel service holds the pins); tests pass MockFactory."""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from firmware.panel.service import PanelPins

# (key, pins) in the order the installer checks them; the bar's lights run as one sweep
LIGHTS = ("sensing_led", "suggestion_led", "active_led", "fault_led", "question_led", "timeout_led",
          "bar", "buzzer")
BUTTONS = ("timeout_button", "mood_1", "mood_2", "mood_3")


def light_pins(pins: PanelPins) -> list[tuple[str, list[int]]]:
    out = []
    for key in LIGHTS:
        value = getattr(pins, key)
        if value is None:
            continue      # a panel without a buzzer
        out.append((key, list(value) if isinstance(value, tuple) else [value]))
    return out


def button_pins(pins: PanelPins) -> list[tuple[str, int]]:
    return [("timeout_button", pins.timeout_button)] + [
        (f"mood_{i}", p) for i, p in enumerate(pins.mood_buttons, 1)]


def show_light(key: str, pins: list[int], factory: Any, confirm: Callable[[], bool]) -> bool:
    """Light `pins` (the bar: one after another, then all) while `confirm` asks the installer."""
    from gpiozero import LED, Buzzer
    kind = Buzzer if key == "buzzer" else LED
    devices = [kind(p, pin_factory=factory) for p in pins]
    try:
        if len(devices) > 1:
            for d in devices:
                d.on()
                time.sleep(0.15)
        for d in devices:
            if isinstance(d, Buzzer):
                d.beep(0.2, 0.8)
            else:
                d.on()
        return confirm()
    finally:
        for d in devices:
            d.off()      # a light left on after the test would tell the household something false
            d.close()


def wait_press(pin: int, factory: Any, seconds: float) -> bool:
    """True when the button on `pin` was pressed within `seconds`."""
    from gpiozero import Button
    pressed = threading.Event()
    b = Button(pin, bounce_time=0.03, pin_factory=factory)
    try:
        b.when_pressed = lambda: pressed.set()
        return pressed.wait(seconds)
    finally:
        b.close()
