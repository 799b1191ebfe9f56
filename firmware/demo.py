"""`timeout-hub demo` (run by `make demo`): a scripted evening of a simulated household, end to
end through a private Mosquitto, on an accelerated clock (one evening minute = 0.5 s by default).

Real here: the broker with its passwords and ACL, the bus clients, the hub service with the
procedure, its saved state and event log, and the panel service on gpiozero's MockFactory (its
lights drawn in the terminal, its button held for the real two seconds). Simulated: the sound (a scripted thermometer until the
detector of issue 4 exists), the tags (scripted home/away until BLE presence of issue 5), partner
b's wearable, the SMS replies of partner a, and the caller (acknowledges every call; the modem
of issue 7 is not built).
"""
from __future__ import annotations

import logging

from gpiozero.pins.mock import MockFactory
import tempfile
import threading
import time
from pathlib import Path

from mqtt import schemas
from mqtt.broker_process import PrivateBroker
from mqtt.client import BusClient, Message

from . import procedure as P
from .clock import ScaledClock
from .hub import Hub
from .panel import Panel, draw
from .plan import load_plan
from .texts import PHASES, say

EXAMPLE_PLAN = Path(__file__).resolve().parents[1] / "examples" / "household.toml"


class Evening:
    def __init__(self, factor: float):
        self.clock = ScaledClock(factor)
        self.factor = factor
        self.plan = load_plan(EXAMPLE_PLAN)
        self.lock = threading.Lock()
        self.answered: set[tuple[str, str]] = set()
        self.phase = ""

    def say(self, who: str, text: str) -> None:
        m = self.clock.monotonic()
        with self.lock:
            print(f"[{int(m // 60):3d}:{int(m % 60):02d}] {who:<12} {text}", flush=True)

    def wait_phase(self, hub: Hub, phases: tuple[str, ...], evening_minutes: float) -> None:
        deadline = time.monotonic() + evening_minutes * 60 / self.factor + 10
        while hub.public_state()["phase"] not in phases:
            if time.monotonic() > deadline:
                raise RuntimeError(f"demo: the hub did not reach {phases} "
                                   f"(it is in {hub.public_state()['phase']})")
            time.sleep(0.02)

    def sleep(self, evening_minutes: float) -> None:
        time.sleep(evening_minutes * 60 / self.factor)


def run_demo(speed: float = 1.0) -> int:
    logging.getLogger("mqtt").setLevel(logging.ERROR)
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
        panel, wear_b, caller = client("panel"), client("wearable-b"), client("caller")

        def on_state(m: Message) -> None:
            s = m.payload
            assert isinstance(s, schemas.State)
            if s.phase != ev.phase:
                ev.phase = s.phase
                extra = ""
                if s.ends_at:
                    left = (s.ends_at - ev.clock.wall()).total_seconds() / 60
                    extra = f", at least {left:.0f} more minutes"
                if s.both_calm:
                    extra += ", both calm"
                ev.say("panel", f"{PHASES[s.phase]['en']} / {PHASES[s.phase]['nl']}"
                                f" (thermometer {s.thermometer}/10{extra})")

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
            st = hub.proc.s
            final = st["phase"] == "checkin"
            if final and st["episode"]["round"] == 1:
                return 2 if partner == "a" else 1      # a is not calm yet: another round
            return 1 if final else 2

        def prompt_handler(partner: str, via: str, bus: BusClient):
            lang = ev.plan.partners[partner].language

            def handle(m: Message) -> None:
                p = m.payload
                assert isinstance(p, schemas.PartnerPrompt)
                tasks = ev.plan.partners[partner].calming_tasks
                text = say(p.key, lang, task=tasks[(p.task or 1) - 1])
                ev.say(f"partner {partner}", f"{'SMS' if via == 'sms' else 'wearable'}: {text}")
                choice = answer(partner, p)
                key = (partner, str(p.question_id))
                if choice is None or key in ev.answered:
                    return
                ev.answered.add(key)
                ev.say(f"partner {partner}", f"answers {choice}")
                bus.publish(f"partner/{partner}/input", schemas.PartnerInput(
                    kind="answer", via=via, question_id=p.question_id, choice=choice))
            return handle

        wear_b.on("partner/b/prompt", prompt_handler("b", "wearable", wear_b))
        caller.on("partner/a/prompt", prompt_handler("a", "sms", caller))

        def on_call(m: Message) -> None:
            r = m.payload
            assert isinstance(r, schemas.CallRequest)
            contact = ev.plan.partners[r.partner].contacts[0]
            ev.say("caller", f"calling contact 1 of partner {r.partner} ({contact.language}), "
                             f"reason {r.reason}: neutral message, 'press 1'")
            ev.say("caller", "contact pressed 1: acknowledged (simulated modem)")
            caller.publish("call/result", schemas.CallResult(
                request_id=r.id, partner=r.partner, contact=1, step="dial",
                outcome="acknowledged", final=True))

        caller.on("call/request", on_call)
        try:
            hub.start()
            for c in (panel, wear_b, caller):
                c.start()
            for c in clients:
                if not c.wait_subscribed(10):
                    raise RuntimeError(f"demo: {c.service} could not connect")
            ev.say("hub", "services online: hub, panel, caller, wearable-b")
            hub.feed(P.PresenceSeen("a", "home"))
            hub.feed(P.PresenceSeen("b", "home"))
            ev.say("tags", "both partners' tags are seen at home")

            for level in (2, 4, 6, 8):
                ev.sleep(1)
                ev.say("sound", f"voices rising: thermometer {level}/10"
                                + (", sustained shouting" if level == 8 else ""))
                hub.feed(P.Sound(level, episode=level == 8))
            ev.wait_phase(hub, ("suggestion",), 1)
            ev.say("panel", "a partner lifts the cover and holds the time-out button")
            button = factory.pin(panel_hw.pins.timeout_button)
            button.drive_low()
            time.sleep(2.3)          # the real 2-second hold, not sped up
            button.drive_high()
            ev.wait_phase(hub, ("leaving",), 1)
            ev.sleep(2)
            ev.say("tags", "partner a's tag is gone: a has left")
            hub.feed(P.PresenceSeen("a", "away"))
            ev.sleep(8)
            ev.say("tags", "partner a's tag is seen at home again (too early)")
            hub.feed(P.PresenceSeen("a", "home"))
            ev.sleep(2)
            ev.say("tags", "partner a's tag is gone again")
            hub.feed(P.PresenceSeen("a", "away"))
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
            panel_hw.close()
            hub.stop()
            for c in clients[1:]:
                c.stop()
            broker.stop()
    print("demo finished: one evening, two rounds, one early return, one acknowledged call")
    return 0
