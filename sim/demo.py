"""`timeout-hub demo` (run by `make demo`): a scripted evening of a simulated household, end to
end through a private Mosquitto, on an accelerated clock (one evening minute = 0.5 s by default).

Real here: the broker with its passwords and ACL, the bus clients, the hub service with the
procedure, its saved state and event log; the hub's sound path with the shouting detector and the
thermometer; BLE presence (the hub's PresenceService, through bleak's replay backend) fused with
the front door's reed contact (gpiozero's MockFactory), so a departure is seen within seconds; the panel
service on gpiozero's MockFactory (its lights drawn in the terminal, its button held for the real
two seconds); and the caller service. Simulated: what the microphone hears (generated audio: calm
talk, then raised voices made from real recorded Dutch speech, sim/evalset.py), the partners' tags
on the air (DemoTags), partner b's wearable, and the modem: the caller dials and texts through a
simulated SIM7600 on a pseudo-terminal, where the contact presses 1 and partner a replies by SMS.
"""
from __future__ import annotations

import logging
import queue
import tempfile
import threading
import time
from pathlib import Path

from gpiozero.pins.mock import MockFactory

from core.clock import ScaledClock
from core.texts import PHASES, say
from dsp.service import ArraySource, save_baseline
from firmware.caller.service import Caller, load_caller_config, write_caller_config
from firmware.hub.plan import load_plan
from firmware.hub.sensors import (
    BASELINE_FILE,
    Bluetooth,
    Door,
    Microphone,
    start_presence,
    start_reeds,
    start_sound,
)
from firmware.hub.service import Hub
from firmware.panel.service import Panel, draw
from firmware.wearable.patterns import for_prompt
from firmware.wearable.service import Wearable, WearableConfig
from mqtt import schemas
from mqtt.broker_process import PrivateBroker, free_port
from mqtt.client import BusClient, Message
from sim.ble_replay import ReplayScanner, ReplaySource
from sim.modem import Callee, SimulatedSIM7600

EXAMPLE_PLAN = Path(__file__).resolve().parents[1] / "examples" / "household.toml"
PARTNER_A_PHONE = "+31600000101"   # made-up numbers: they live only in the caller's file


def _caller_config(tmp: Path, household: str, port: int, modem_port: str):
    return load_caller_config(write_caller_config(tmp / "caller.toml", {
        "household": household, "code_word": "Zonnebloem",
        "credentials": f"{tmp}/broker/credentials/caller.json", "state_dir": f"{tmp}/caller",
        "port": port, "modem_port": modem_port, "time_scale": 0.05, "gnss_port": 0,
        "clock_flag": f"{tmp}/clock-flag",
        "plan": EXAMPLE_PLAN,   # a answers by SMS (their number below), b has a wearable
        "partners": {"a": {"number": PARTNER_A_PHONE}},
        "contacts": {"a": [{"number": "+31600000201", "language": "nl"},
                           {"number": "+31600000202", "language": "nl"}],
                     "b": [{"number": "+31600000301", "language": "en"}]}}))


class Evening:
    def __init__(self, factor: float):
        self.clock = ScaledClock(factor)
        self.start = self.clock.monotonic()    # the timeline counts evening time from here
        self.factor = factor
        self.plan = load_plan(EXAMPLE_PLAN)
        self.lock = threading.Lock()
        self.answered: set[tuple[str, str]] = set()
        self.phase = ""

    def say(self, who: str, text: str) -> None:
        m = self.clock.monotonic() - self.start
        with self.lock:
            print(f"[{int(m // 60):3d}:{int(m % 60):02d}] {who:<12} {text}", flush=True)

    def wait_phase(self, hub: Hub, phases: tuple[str, ...], evening_minutes: float) -> None:
        deadline = time.monotonic() + evening_minutes * 60 / self.factor + 10
        while hub.public_state()["phase"] not in phases:
            if time.monotonic() > deadline:
                raise RuntimeError(f"demo: the hub did not reach {phases} "
                                   f"(it is in {hub.public_state()['phase']})")
            time.sleep(0.02)

    def wait_phase_for(self, cond, evening_minutes: float) -> None:
        deadline = time.monotonic() + evening_minutes * 60 / self.factor + 10
        while not cond():
            if time.monotonic() > deadline:
                raise RuntimeError("demo: the hub did not get there in time")
            time.sleep(0.02)

    def sleep(self, evening_minutes: float) -> None:
        time.sleep(evening_minutes * 60 / self.factor)


DOOR_PIN = 6


def through_door(pin, move) -> None:
    """Open the front door, walk through (the tag moves), close it behind."""
    pin.drive_high()            # open: the magnet is gone, the pull-up reads high
    time.sleep(0.05)
    move()
    time.sleep(0.05)
    pin.drive_low()


class DemoTags:
    """The partners' tags on the air, live: adverts come from where the script puts each partner
    (`move`), since the script's moves wait on the hub and cannot be timed in advance for
    `sim.ble_traces.scripted`. A simple radio (one advert a second, 30 % lost, RSSI -68 +- 6 dBm at
    home, silent away), plus the neighbours' phones passing by. The hub's real PresenceService
    hears them through bleak's backend seam (sim.ble_replay)."""

    def __init__(self, plan, seed: int = 3):
        import random

        from sim.ble_traces import payloads_for
        self.rng = random.Random(seed)
        self.where = dict.fromkeys(plan.partners, "home")
        self.tags = {p: payloads_for(pp.tags[0], self.rng, 4) for p, pp in plan.partners.items() if pp.tags}

    def move(self, partner: str, where: str) -> None:
        self.where[partner] = where

    def adverts(self):
        t, k = 0.0, 0
        while True:
            t += 0.25
            k += 1
            for p, payloads in self.tags.items():
                if k % 4 == 0 and self.where[p] == "home" and self.rng.random() > 0.3:
                    addr, mfr, svc = payloads[(k // 400) % len(payloads)]
                    yield (t, addr, int(self.rng.gauss(-68, 6)), mfr, svc)
            if self.rng.random() < 0.15:      # someone's phone in the street
                addr = ":".join(f"{self.rng.randrange(256) & (0x3F if i == 0 else 0xFF):02X}"
                                for i in range(6))
                yield (t, addr, int(self.rng.gauss(-92, 4)), {}, {})


def rising_voices(tmp: Path):
    """A household's calm talk, then raised voices (sim/evalset.py: real recorded speech made
    shouted with the published acoustics), then calm talk again for the rest of the evening (so
    the thermometer is seen to cool), and the baseline the installer's calibration on the first
    10 s would have given."""
    from dsp.detect_cli import run
    from sim import evalset
    clip = next(c for c in evalset.build(n_per_category=1, cache_dir=tmp / "evalset")
                if c.category == "shout-nl")
    n = int(evalset.CALIBRATE_S * clip.fs)
    _, p = run(clip.audio[:n], clip.fs, calibrate_seconds=int(evalset.CALIBRATE_S),
               calibration_offset_db=evalset.CAL_OFFSET_DB)
    return clip.audio[n:], clip.audio[:n], clip.fs, p.baseline, evalset.CAL_OFFSET_DB


class EveningAudio:
    """What the demo's microphone hears: the raised voices at `speed`, then the calm talk again
    and again (`calm_times`) at `calm_speed`. The thermometer remembers an episode for about ten
    minutes of sound, so the calm part is played faster: the cooling is seen within the demo."""

    def __init__(self, shouting, calm, fs: int, speed: float, calm_speed: float, calm_times: int):
        self.rate = fs
        self._parts = [ArraySource(shouting, fs, speed=speed)] + [
            ArraySource(calm, fs, speed=calm_speed) for _ in range(calm_times)]
        self._i = 0

    def start(self) -> EveningAudio:
        self._parts[0].start()
        return self

    def stop(self) -> None:
        for part in self._parts:
            part.stop()

    @property
    def done(self) -> bool:
        return all(part.done for part in self._parts)

    def read(self, timeout: float):
        part = self._parts[self._i]
        if part.done and self._i + 1 < len(self._parts):
            self._i += 1
            part = self._parts[self._i].start()
        return part.read(timeout)


def run_demo(speed: float = 1.0) -> int:
    logging.getLogger("mqtt").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="timeout-hub-demo-audio-") as audio_tmp:
        shouting, calm, fs, baseline, offset = rising_voices(Path(audio_tmp))
    ev = Evening(factor=120.0 / max(speed, 0.05))
    household = ev.plan.household
    with tempfile.TemporaryDirectory(prefix="timeout-hub-demo-") as tmp:
        tmp_path = Path(tmp)
        broker = PrivateBroker(tmp_path / "broker", household).start()
        ev.say("broker", f"Mosquitto on 127.0.0.1:{broker.port}; a password per service, ACL, "
                         "no anonymous access")
        clients: list[BusClient] = []

        def client(service: str) -> BusClient:
            c = BusClient(service, household, broker.creds(service), port=broker.port,
                          state_dir=tmp_path / service, clock=ev.clock.wall)
            clients.append(c)
            return c

        hub_bus = client("hub")
        hub = Hub(ev.plan, hub_bus, ev.clock, tmp_path / "hub", tick_seconds=0.05)
        panel, wear_b = client("panel"), client("wearable-b")
        modem = SimulatedSIM7600(time_scale=0.05)
        modem.default = Callee("answer_ack", ring_s=8.0, ack_after_s=4.0)
        caller_cfg = _caller_config(tmp_path, household, broker.port, modem.port)
        caller = Caller(caller_cfg, client("caller"))

        def on_state(m: Message) -> None:
            s = m.payload
            if not isinstance(s, schemas.State):
                raise TypeError(f"state carries a State, not {type(s).__name__}")
            if s.phase != ev.phase:
                ev.phase = s.phase
                extra = ""
                if s.ends_at:
                    left = (s.ends_at - ev.clock.wall()).total_seconds() / 60
                    extra = f", at least {left:.0f} more minutes"
                if s.both_calm:
                    extra += ", both calm"
                heat = "no sound data" if s.thermometer is None else f"thermometer {s.thermometer}/10"
                if s.time_left is not None:
                    heat = f"time left {s.time_left}/10 of the round"
                ev.say("panel", f"{PHASES[s.phase]['en']} / {PHASES[s.phase]['nl']} ({heat}{extra})")

        panel.on("state", on_state)
        factory = MockFactory()
        drawn = [""]

        def show_lights(p: Panel) -> None:
            line = draw(p)
            if line != drawn[0]:
                drawn[0] = line
                ev.say("panel", line)

        panel_hw = Panel(panel, pin_factory=factory, on_render=show_lights)

        def answer(partner: str, prompt: schemas.PartnerPrompt) -> int | None:
            """The script of what each partner answers."""
            if prompt.kind == "evaluation":
                return {"evaluation.long_enough": 1, "evaluation.more_time": 1,
                        "evaluation.discuss": 2}[prompt.key]
            if prompt.kind != "checkin":
                return None
            final = hub.proc.phase == "checkin"
            if final and hub.proc.round() == 1:
                return 2 if partner == "a" else 1      # a is not calm yet: another round
            return 1 if final else 2

        # partner b's wearable is the real wearable service (firmware/wearable) on its own
        # MockFactory: the demo presses its button as partner b would; no gpsd runs here, so its
        # verdict stays "unknown" (b stays home this evening)
        wear_pins = MockFactory()
        wearable = Wearable(wear_b, WearableConfig(
            household=household, partner="b", credentials="(demo)", state_dir=str(tmp_path / "wearable"),
            port=broker.port, home=(52.36667, 4.9), gpsd_port=free_port(), answer_window_seconds=1.0),
            pin_factory=wear_pins)
        wear_button = wear_pins.pin(wearable.cfg.pins.button)

        def press_b(times: int) -> None:
            time.sleep(0.3)
            for _ in range(times):
                wear_button.drive_low()
                time.sleep(0.1)
                wear_button.drive_high()
                time.sleep(0.15)

        def wearable_b(m: Message) -> None:
            p = m.payload
            if not isinstance(p, schemas.PartnerPrompt):
                raise TypeError(f"a partner prompt carries a PartnerPrompt, not {type(p).__name__}")
            tasks = ev.plan.partners["b"].calming_tasks
            ev.say("partner b", f"wearable buzzes ({for_prompt(p.kind, p.key).replace('_', ' ')}): "
                   + say(p.key, "en", task=tasks[(p.task or 1) - 1]))
            choice = answer("b", p)
            if choice is None or ("b", str(p.question_id)) in ev.answered:
                return
            ev.answered.add(("b", str(p.question_id)))
            ev.say("partner b", f"answers {choice} (presses the wearable's button {choice}x)")
            threading.Thread(target=press_b, args=(choice,), name="demo-partner-b", daemon=True).start()

        wear_b.on("partner/b/prompt", wearable_b)

        sms_prompts: queue.Queue[schemas.PartnerPrompt] = queue.Queue()

        def phone_a() -> None:
            """Partner a has no wearable: the real caller texts them through the (simulated)
            modem, one SMS per prompt in order, and a's reply SMS comes back in through it."""
            seen = 0
            while True:
                p = sms_prompts.get()
                if p is None:
                    return
                deadline = time.monotonic() + 10
                while len(modem.sent_sms) <= seen and time.monotonic() < deadline:
                    time.sleep(0.01)
                if len(modem.sent_sms) <= seen:
                    continue
                ev.say("partner a", "SMS: " + modem.sent_sms[seen].text)
                seen += 1
                choice = answer("a", p)
                if choice is None or ("a", str(p.question_id)) in ev.answered:
                    continue
                ev.answered.add(("a", str(p.question_id)))
                ev.say("partner a", f"replies by SMS: {choice}")
                modem.inject_sms(PARTNER_A_PHONE, str(choice))

        phone = threading.Thread(target=phone_a, name="demo-phone-a", daemon=True)
        phone.start()
        hub_bus.on("partner/a/prompt", lambda m: sms_prompts.put(m.payload))

        def on_result(m: Message) -> None:
            r = m.payload
            if not isinstance(r, schemas.CallResult):
                raise TypeError(f"call/result carries a CallResult, not {type(r).__name__}")
            if r.final:
                ev.say("caller", f"ladder for partner {r.partner}: {r.outcome}")
            else:
                ev.say("caller", f"round {r.round}, contact {r.contact} of partner {r.partner}: "
                                 f"{r.step} -> {r.outcome}")

        def on_request(m: Message) -> None:
            r = m.payload
            if not isinstance(r, schemas.CallRequest):
                raise TypeError(f"call/request carries a CallRequest, not {type(r).__name__}")
            ev.say("hub", f"asks the caller to reach partner {r.partner}'s contacts ({r.reason})")

        hub_bus.on("call/result", on_result)
        hub_bus.on("call/request", on_request)

        save_baseline(tmp_path / "hub" / BASELINE_FILE, baseline)
        last = {"thermometer": -1}

        def on_sound(m: Message) -> None:
            s = m.payload
            if s.thermometer != last["thermometer"] and s.thermometer % 2 == 0:
                last["thermometer"] = s.thermometer
                ev.say("sound", f"LAeq {s.level_db:.0f} {'dB(A)' if s.unit == 'dBA' else s.unit}, "
                                f"shouting {s.shout:.2f}: thermometer {s.thermometer}/10")

        hub_bus.on("sensor/sound", on_sound)
        tags = DemoTags(ev.plan)
        running: list = []
        try:
            hub.start()
            hub.expect_sensors("mic", "ble")      # the sensing light: both the hub's sensors run
            presence = start_presence(hub, ev.plan, Bluetooth(), ev.clock, backend=ReplayScanner,
                                      backend_kwargs={"source": ReplaySource(tags.adverts(), ev.clock)})
            running.append(presence)
            # the front door's reed contact on the hub's GPIO 6 (gpiozero's MockFactory): the
            # presence engine fuses it with the tags, so a departure is seen within seconds
            door_pin = factory.pin(DOOR_PIN)
            door_pin.drive_low()                  # closed: the magnet pulls the contact to ground
            running += start_reeds(hub, [Door(id="hub-1", kind="gpio", pin=DOOR_PIN)], ev.clock,
                                   presence=presence, pin_factory=factory)
            caller.start()
            for c in (panel, wear_b):
                c.start()
            wearable.start()
            for c in clients:
                if not c.wait_subscribed(10):
                    raise RuntimeError(f"demo: {c.service} could not connect")
            ev.say("hub", "services online: hub, panel, caller (simulated SIM7600), wearable-b")
            ev.wait_phase_for(lambda: hub.proc.presence("a") == hub.proc.presence("b") == "home", 5)
            ev.say("tags", "both partners' tags are heard at home (BLE, bleak replay backend)")

            ev.say("sound", "the microphone hears the evening (generated audio, the real detector)")
            audio = EveningAudio(shouting, calm, fs, speed=8.0 / max(speed, 0.05),
                                 calm_speed=40.0 / max(speed, 0.05), calm_times=90)
            sound_svc = start_sound(hub, Microphone(calibration_offset_db=offset), ev.clock,
                                    tmp_path / "hub", source=audio)
            running.append(sound_svc)
            ev.wait_phase(hub, ("suggestion",), 60)
            ev.say("panel", "a partner lifts the cover and holds the time-out button")
            button = factory.pin(panel_hw.pins.timeout_button)
            button.drive_low()
            time.sleep(2.3)          # the real 2-second hold, not sped up
            button.drive_high()
            ev.wait_phase(hub, ("leaving",), 1)
            ev.sleep(2)
            ev.say("partner a", "leaves the house through the front door")
            opened = ev.clock.monotonic()
            through_door(door_pin, lambda: tags.move("a", "away"))
            ev.wait_phase_for(lambda: hub.proc.presence("a") == "away", 5)
            ev.say("tags", f"door + tag: partner a has left, seen {ev.clock.monotonic() - opened:.0f} s "
                           "after the door opened")
            ev.sleep(8)
            ev.say("partner a", "comes back in through the front door (too early)")
            through_door(door_pin, lambda: tags.move("a", "home"))
            ev.wait_phase_for(lambda: hub.proc.presence("a") == "home", 2)
            ev.say("tags", "partner a's tag is seen at home again (too early)")
            ev.sleep(2)
            ev.say("partner a", "leaves again")
            through_door(door_pin, lambda: tags.move("a", "away"))
            ev.wait_phase_for(lambda: hub.proc.presence("a") == "away", 5)
            ev.say("tags", "partner a's tag is gone again")
            ev.wait_phase(hub, ("extended",), 25)
            ev.wait_phase(hub, ("evaluation",), 30)
            ev.wait_phase(hub, ("monitoring",), 30)
            ev.sleep(0.5)
            outcome = [e for e in hub.db.events() if e.type == "evaluation_outcome"]
            if outcome:
                d = outcome[-1].data
                ev.say("hub", f"evaluation: long enough {d.get('long_enough')}, more time needed "
                              f"{d.get('more_time')}, discuss the topic {d.get('discuss')} "
                              f"({d.get('decided_by')}); reminder in {d.get('reminder_minutes')} min")
            events = hub.db.events()
            ev.say("hub", f"back to monitoring; the event log holds {len(events)} events: "
                          + ", ".join(sorted({e.type for e in events})))
        finally:
            for svc in running:
                svc.stop()
            panel_hw.close()
            wearable.close()
            hub.stop()
            caller.stop()
            for c in (panel, wear_b):
                c.stop()
            sms_prompts.put(None)
            modem.close()
            broker.stop()
    print("demo finished: one evening, two rounds, one early return, one acknowledged call")
    return 0
