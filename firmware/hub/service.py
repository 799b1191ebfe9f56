"""The hub service: bus inputs -> the procedure -> bus outputs, with every step saved.

Order of a step (so a crash anywhere loses nothing and repeats nothing a user would notice):
1. the procedure takes the input or the tick and returns outputs with ids derived from its state;
2. the events, the new procedure state and the outputs' bus messages are committed in one
   transaction: nothing has left the hub yet, so a crash before it loses a step nobody saw;
3. the messages go to the bus outbox (durable); after a crash between 2 and 3 they are sent at
   the next start from the saved copy, with the same ids (receivers drop repeats);
4. the retained `state` is published when what the panel shows changed.
Bus handlers run the step before returning, so an input is acknowledged to the broker only after
it has been applied and saved.

When a save fails (a full, read-only or worn-out SD card) the step stays applied in memory: the
running time-out goes on and outputs that are due still leave. Inputs are then not acknowledged
(the broker keeps them and gives them to a restarted hub), the fault `storage.write_failed` is on
the panel and the watchdog is not fed. Every tick tries again; the first save that goes through
saves everything applied meanwhile, acknowledges the held inputs and clears the fault.
"""
from __future__ import annotations

import logging
import os
import signal
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from pydantic import BaseModel

from core.clock import Clock
from core.errors import StorageError
from core.sdnotify import run_until_stopped
from firmware.hub import procedure as P
from firmware.hub.eventlog import HubDatabase, LoggedEvent, Unsent
from firmware.hub.plan import HouseholdPlan
from mqtt import contract, schemas
from mqtt.client import BusClient, Message
from mqtt.faults import PER_SERVICE, STATE_LIMIT, attribute, bounded, needs_action, owners

log = logging.getLogger(__name__)
PRUNE_EVERY_S = 24 * 3600.0
CHECKPOINT_S = 10.0
SOUND_STALE_S = 5.0    # the microphone path sends a frame every second
# after a (re)start, inputs queued while the hub was down are applied before time acts: until
# none has come for CATCH_UP_QUIET_S (real seconds), at most CATCH_UP_MAX_S
CATCH_UP_QUIET_S = 0.5
CATCH_UP_MAX_S = 5.0
MAX_UNSAVED = 10_000   # events kept in memory while storage fails (then the oldest are dropped)
# Fault injection for the power-cut tests (tests/test_step_atomicity.py), never set on a Pi: the
# process kills itself (-9) once the outputs of a step that asked the end check-in
# ("end_checkin") or requested a call ("call") have left it.
CRASH_AFTER_ENV = "TIMEOUT_HUB_CRASH_AFTER"
# a panel summary made longer ago than this (clocks apart, or held in a queue) no longer says
# when a tag was last heard: the fusion counts a receiver only this long without a report
SUMMARY_STALE_S = 15.0
PANEL_RECEIVER = "panel"


class ReceiverSink(Protocol):
    """What the hub's BLE presence service (ble.service.PresenceService) offers for the panel."""

    def summary(self, t: float, receiver: str, msg: schemas.TagsHeard) -> None: ...
    def receiver_gone(self, receiver: str) -> None: ...
    def door_health(self, t: float, door_id: str, ok: bool) -> None: ...


if TYPE_CHECKING:
    from firmware.hub.wearable_watch import WearableWatch


class Hub:
    def __init__(self, plan: HouseholdPlan, bus: BusClient, clock: Clock, state_dir: Path,
                 tick_seconds: float = 1.0,
                 on_output: Callable[[P.Output], None] | None = None):
        self.plan, self.bus, self.clock = plan, bus, clock
        self.db = HubDatabase(Path(state_dir) / "hub.sqlite3")
        self.proc = P.Procedure(plan, clock, self.db.load_snapshot())
        self.wearable_watch: WearableWatch | None = None   # "wearable silent", its link
        self.tick_seconds = tick_seconds
        self.on_output = on_output
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_state: dict | None = None
        self._faults: dict[str, list[schemas.Fault]] = {}   # per service, from <service>/health
        self._gone: dict[str, schemas.Fault] = {}           # services whose last will came
        self._sensor_faults: dict[str, list[schemas.Fault]] = {}   # the hub's own mic / BLE
        self._expected: set[str] = set()          # the hub's own sensors that are installed
        self._fault_keys: set[tuple[str, str]] = set()   # (service, code) logged as present
        # where a panel-Pi door's events go: the BLE presence service's door(), when it runs
        self.door_sink: Callable[[float, str, str], None] | None = None
        # where the panel's tag summaries go, and its doors' health (attach_receivers)
        self.receiver_sink: ReceiverSink | None = None
        self._panel_online: bool | None = None   # from panel/available; None: not heard yet
        self._panel_doors: set[str] = set()     # panel-N doors heard of (their state or events)
        self._panel_scanning: bool | None = None
        self._summary_drops: dict[str, int] = {}
        self._thermometer: int | None = None
        self._sound_at = float("-inf")           # time.monotonic() of the last sound input
        self._saved_at = float("-inf")
        self._in_outbox: list[str] = []   # messages of saved steps, handed to the bus outbox
        self._last_ok = time.monotonic()
        self._input_at = float("-inf")           # time.monotonic() of the last bus input
        self._unsaved: list[LoggedEvent] = []      # logged, not yet in the database
        self._storage_problem: str | None = None   # why the last save failed, until one works
        # Retention counts on the log's own time (its newest event plus this run's monotonic
        # time), never further than the wall clock: a wall clock that is wrong or jumps can
        # make retention wait, never erase the log.
        self._log_anchor = (self.db.newest(), clock.monotonic())
        # evening seconds per real second, so checkpoints stay ~10 real seconds apart
        self._scale = max(1.0, getattr(clock, "factor", 1.0))

    # -- life cycle --------------------------------------------------------------------------
    def start(self) -> Hub:
        b = self.bus
        b.on("panel/press", lambda m: self._input(P.PanelPress(long=m.payload.press == "long")))
        b.on("panel/answer", lambda m: self._input(
            P.Answer("panel", str(m.payload.question_id), m.payload.choice)))
        b.on("partner/{partner}/input", self._partner_input)
        b.on("partner/{partner}/apart", lambda m: self._input(P.ApartSeen(m.partner, m.payload.apart)))
        b.on("{service}/health", self._service_health)
        b.on("door/{door}/event", self._door_event)
        b.on("door/{door}", self._door_state)
        b.on("panel/tags_heard", self._tags_heard)
        b.on("{service}/available", self._service_available)
        b.on("call/result", lambda m: self._input(P.CallOutcome(
            str(m.payload.request_id), m.payload.outcome, m.payload.final, step=m.payload.step,
            contact=m.payload.contact, round=m.payload.round)))
        self.proc.catching_up = True
        b.start()
        self._send_unsent()
        self._prune()
        self.feed(None)  # publish the state we resumed with (time does not act yet)
        self._thread = threading.Thread(target=self._ticker, name="procedure-tick", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(5)
        self.bus.stop()
        self.db.close()

    def _ticker(self) -> None:
        self._catch_up()
        with self._lock:
            self.proc.catching_up = False
        next_prune = self.clock.monotonic() + PRUNE_EVERY_S
        while not self._stop.wait(self.tick_seconds):
            try:
                self.feed(None)
                self._last_ok = time.monotonic()
                if self.clock.monotonic() >= next_prune:
                    next_prune = self.clock.monotonic() + PRUNE_EVERY_S
                    self._prune()
                    self._warn_dates()
            except Exception:  # the procedure must keep ticking whatever one step did
                log.exception("procedure tick failed")

    def _warn_dates(self) -> None:
        """Once a day: plan dates that passed while the hub runs (an installer's rule: a warning
        for the next visit, never a stop). Only on true time."""
        from firmware.hub.plan import date_findings
        if self.clock.trusted():
            for f in date_findings(self.plan, self.clock.wall().date()):
                log.warning("household plan: %s: %s; the hub runs on", f.path, f.sentence)

    def alive(self) -> bool:
        """The procedure ticks and its steps are saved (what the systemd watchdog is fed on):
        a hub that cannot save is restarted, and the broker gives it the unacknowledged inputs."""
        return (self._thread is not None and self._thread.is_alive()
                and self._storage_problem is None
                and time.monotonic() - self._last_ok < max(10.0, 5 * self.tick_seconds))

    def storage_problem(self) -> str | None:
        """Why the hub cannot save right now (None: it can)."""
        return self._storage_problem

    def _prune(self) -> None:
        # An unsynchronised clock may say 1970 or 2099: retention is applied only on true time.
        if not self.clock.trusted():
            return
        newest, mono0 = self._log_anchor
        if newest is None:       # nothing was logged before this run: nothing can be old
            return
        wall = self.clock.wall()
        log_now = newest + timedelta(seconds=max(0.0, self.clock.monotonic() - mono0))
        if wall - log_now > timedelta(days=1):
            log.warning("event log: the clock is %d day(s) ahead of the log's own time; "
                        "retention counts from the log's time", (wall - log_now).days)
        try:
            n = self.db.prune(min(wall, log_now), self.plan.retention_days)
        except (sqlite3.Error, OSError) as e:
            log.warning("event log: retention not applied now: %s", e)
            return
        if n:
            log.info("event log: %d event(s) older than %d days removed", n,
                     self.plan.retention_days)

    # -- inputs ------------------------------------------------------------------------------
    def _partner_input(self, m: Message) -> None:
        p = m.payload
        if p.kind == "button":
            self._input(P.PartnerButton(m.partner))
        else:
            self._input(P.Answer(m.partner, str(p.question_id), p.choice))

    def _catch_up(self) -> None:
        """Inputs given while the hub was down (queued by the broker for its session, or sent
        again by their senders when it comes online) are applied before time acts: an answer
        given in time counts even if the check-in's deadline passed while the hub was down."""
        if not self.bus.wait_subscribed(CATCH_UP_MAX_S):
            log.warning("the broker is not reachable; inputs given while the hub was down will "
                        "be applied when it is")
            return
        quiet_since = time.monotonic()
        deadline = quiet_since + CATCH_UP_MAX_S
        while time.monotonic() < deadline and not self._stop.is_set():
            if time.monotonic() - max(quiet_since, self._input_at) >= CATCH_UP_QUIET_S:
                return
            self._stop.wait(0.05)

    def _input(self, inp: P.Input) -> None:
        """A bus input: raising StorageError tells the bus client not to acknowledge it yet."""
        self._input_at = time.monotonic()
        if not self.feed(inp):
            raise StorageError(f"applied in memory, not saved: {self._storage_problem}")

    def feed(self, inp: P.Input | None) -> bool:
        """Apply one input (None: a clock tick) as one saved step. False: applied in memory
        only, because storage fails (the next tick tries again)."""
        saved = True
        if isinstance(inp, P.Sound):
            self._sound_at = time.monotonic()
        with self._lock:
            outputs = self.proc.tick() if inp is None else self.proc.handle(inp)
            if inp is not None and self.proc.ignored:
                log.info("input ignored: %s", self.proc.ignored)
            if isinstance(inp, P.PresenceSeen):
                self.bus.publish(f"partner/{inp.partner}/presence", self.bus.make(
                    schemas.Presence, presence=inp.presence, since=self.clock.wall()))
            now = self.clock.wall()
            messages = [self._message(o, now) for o in outputs]
            for o in outputs:
                if isinstance(o, P.EventOut):
                    self._unsaved.append(LoggedEvent(o.id, now, o.type, o.category, o.partner,
                                                     o.timeout_id, o.data))
            # A quiet tick is saved at most every CHECKPOINT_S: losing those seconds on a power
            # cut only lengthens a time-out; anything that happened is saved at once, and while
            # storage fails every tick tries again. Outputs leave only after their step is saved
            # (with them): a crash never lets out a question, call or event that the restarted
            # hub does not know it made. While storage fails they leave from memory all the
            # same: a call that is due does not wait for an SD card.
            now_m = self.clock.monotonic()
            if (inp is not None or outputs or self._storage_problem is not None
                    or now_m - self._saved_at >= CHECKPOINT_S * self._scale):
                saved = self._save(messages)
            for topic, m in messages:
                self.bus.publish(topic, m)     # into the bus's own durable outbox
                if saved:
                    self._in_outbox.append(str(m.id))
            self._crash_point(outputs)
            self._publish_state()
        if self.on_output:
            for o in outputs:
                self.on_output(o)
        return saved

    def _save(self, messages: Sequence[tuple[str, BaseModel]] = ()) -> bool:
        """Save the procedure state, the events logged since the last save and the step's bus
        messages (one transaction). On success the inputs held since a failure are acknowledged."""
        try:
            self.db.save_step(self.proc.snapshot(), self._unsaved, sent=self._in_outbox, unsent=[
                Unsent(str(m.id), topic, m.model_dump_json()) for topic, m in messages])
        except (sqlite3.Error, OSError) as e:
            if self._storage_problem is None:
                log.error("storage: cannot save (%s); inputs are not acknowledged, the time-out "
                          "runs on from memory, the watchdog is not fed", e)
                self._storage_fault(f"the hub cannot save its state: {e}"[:160])
            self._storage_problem = str(e)
            if len(self._unsaved) > MAX_UNSAVED:
                log.error("storage: %d unsaved event(s) dropped from memory",
                          len(self._unsaved) - MAX_UNSAVED)
                del self._unsaved[:-MAX_UNSAVED]
            return False
        self._unsaved = []
        self._in_outbox = []
        self._saved_at = self.clock.monotonic()
        if self._storage_problem is not None:
            log.info("storage: saving works again")
            self._storage_problem = None
            self._storage_fault(None)
        if self.bus.held():
            self.bus.acknowledge_held()
        return True

    def _storage_fault(self, reason: str | None) -> None:
        """The hub's own storage fault, beside its sensors' (hub/health and state.faults)."""
        self._sensor_faults["storage"] = [] if reason is None else [schemas.Fault(
            code="storage.write_failed", service="hub", since=self.clock.wall(), reason=reason)]
        self.bus.publish("hub/health", self.bus.make(
            schemas.Health, faults=[f for fs in self._sensor_faults.values() for f in fs]))

    # -- outputs -----------------------------------------------------------------------------
    def _crash_point(self, outputs: list[P.Output]) -> None:
        """A power cut right after a step's outputs left the hub (CRASH_AFTER_ENV)."""
        want = os.environ.get(CRASH_AFTER_ENV)
        if not want or not any(
                (want == "call" and isinstance(o, P.CallOut))
                or (want == "end_checkin" and isinstance(o, P.EventOut)
                    and o.type == "checkin_requested" and o.data.get("final"))
                for o in outputs):
            return
        deadline = time.monotonic() + 5.0      # "left": the broker has acknowledged them
        while self.bus.outbox_size() and time.monotonic() < deadline:
            time.sleep(0.01)
        log.warning("%s=%s: killing the hub after the outputs of a step", CRASH_AFTER_ENV, want)
        os.kill(os.getpid(), signal.SIGKILL)

    @staticmethod
    def _message(o: P.Output, now: datetime) -> tuple[str, BaseModel]:
        """The bus topic and message of one output of the procedure."""
        if isinstance(o, P.EventOut):
            return "events", schemas.Event(
                id=uuid.UUID(o.id), ts=now, type=o.type, category=o.category, partner=o.partner,
                timeout_id=uuid.UUID(o.timeout_id) if o.timeout_id else None, data=o.data)
        if isinstance(o, P.PromptOut):
            return f"partner/{o.partner}/prompt", schemas.PartnerPrompt(
                id=uuid.UUID(o.id), ts=now, question_id=uuid.UUID(o.question_id), kind=o.kind,
                key=o.key, options=o.options, task=o.task)
        return "call/request", schemas.CallRequest(
            id=uuid.UUID(o.id), ts=now, partner=o.partner, reason=o.reason,
            timeout_id=uuid.UUID(o.timeout_id) if o.timeout_id else None)

    def _send_unsent(self) -> None:
        """After a crash between a step's commit and its publish: its messages, as saved."""
        unsent = self.db.unsent()
        for u in unsent:
            schema = contract.lookup(u.topic).spec.schema
            if schema is not None:
                self.bus.publish(u.topic, schema.model_validate_json(u.payload))
            self._in_outbox.append(u.id)
        if unsent:
            log.info("%d message(s) of saved steps sent again after the restart", len(unsent))

    # -- faults of the other services, shown on the panel (state.faults) --------------------
    def _service_health(self, m: Message) -> None:
        # who reports is the topic the broker's ACL let the sender publish on, never the payload
        service = m.topic.split("/")[0]
        if service == "hub":     # our own, retained from before a restart: the sensors say anew
            return
        if not isinstance(m.payload, schemas.Health):
            return
        kept, refused = attribute(service, m.payload.faults)
        if refused:
            for code in sorted(set(refused)):
                log.warning("%s/health: fault %s refused: only %s may report it", service, code,
                            " or ".join(sorted(owners(code) or ())))
        with self._lock:
            self._faults[service] = bounded(kept, PER_SERVICE, service)
            self._publish_state()

    def _service_available(self, m: Message) -> None:
        service = m.topic.split("/")[0]
        if service in ("hub", "bridge"):
            return
        with self._lock:
            if m.payload == "offline":      # the last will: it vanished (a clean stop is not a fault)
                self._gone[service] = schemas.Fault(
                    code="service.offline", service=service, since=self.clock.wall(),
                    reason=f"{service} is not connected")
            else:
                self._gone.pop(service, None)
            self._publish_state()
            changed = service == "panel" and self._panel_online != (m.payload == "online")
            if service == "panel":
                self._panel_online = m.payload == "online"
            doors = sorted(self._panel_doors)
        if changed:   # a clean stop too: either way the panel hears and reads its doors no more
            if m.payload != "online":
                self._panel_ble(None)
            self._panel_receiver(m.payload == "online", doors)

    def faults(self) -> list[schemas.Fault]:
        """What state.faults shows: each other service is capped (faults.bounded); the whole list
        too, so that no combination makes a state publish fail validation."""
        return bounded([f for fs in self._sensor_faults.values() for f in fs]
                       + [f for fs in self._faults.values() for f in fs] + list(self._gone.values()),
                       STATE_LIMIT, "hub")

    # -- the hub's own sensors: dsp/ (microphone) and ble/ (tags) -----------------------------
    def sound_frame(self, f) -> None:
        """One second of sound numbers (dsp.pipeline.Frame): published, and given to the procedure
        when the thermometer moves or an episode starts (not every second: each input is a saved
        step, and an SD card should not be written every second for nothing)."""
        self.bus.publish("sensor/sound", self.bus.make(
            schemas.Sound, level_db=round(max(-200.0, min(200.0, f.laeq_db)), 1), unit=f.unit,
            shout=f.shout, thermometer=f.thermometer))
        self._sound_at = time.monotonic()
        if f.thermometer != self._thermometer or f.started is not None:
            self._thermometer = f.thermometer
            self.feed(P.Sound(f.thermometer, episode=f.started is not None))

    def presence(self, partner: str, presence: str, door: bool = False) -> None:
        """A partner's presence from the hub's own BLE (and door) engine; `door`: the change
        was confirmed by an exit door event. Also publishes partner/<p>/presence."""
        self.feed(P.PresenceSeen(partner, presence, door=door))

    def _door_event(self, m: Message) -> None:
        """A door on the panel Pi opened or closed: to the presence fusion, when BLE runs here.
        The hub's own doors reach it directly (their echo from the broker is not applied twice)."""
        door_id = m.topic.split("/")[1]
        self._panel_door_seen(door_id)
        sink = self.door_sink
        if sink is not None and not door_id.startswith("hub-") and isinstance(m.payload, schemas.DoorEvent):
            sink(self.clock.monotonic(), door_id, m.payload.state)

    # -- the panel's Pi as a second receiver (docs/ble.md "A second receiver") ---------------
    def attach_receivers(self, sink: ReceiverSink) -> None:
        """The BLE presence service is running: the panel's summaries and the health of its doors
        go to it from now on (with what was heard before it started: the panel may be gone)."""
        with self._lock:
            self.receiver_sink = sink
            online = self._panel_online
            doors = sorted(self._panel_doors)
        if online is not None:
            self._panel_receiver(online, doors)

    def _door_state(self, m: Message) -> None:
        """A door's retained state: only to learn which doors the panel has (its health follows
        the panel's availability)."""
        self._panel_door_seen(m.topic.split("/")[1])

    def _panel_door_seen(self, door_id: str) -> None:
        if not door_id.startswith("panel-") or door_id in self._panel_doors:
            return
        with self._lock:
            self._panel_doors.add(door_id)
            online = self._panel_online
        if online is not None:   # installed in the fusion as working, or as dead while it is gone
            self._panel_receiver(online, [door_id])

    def _panel_receiver(self, online: bool, doors: list[str]) -> None:
        """The panel came or went: its radio counts or stops counting, and its door contacts with
        it (a door the hub cannot hear from is not trusted: the fusion falls back to the hub's own
        doors, or to the tags alone)."""
        sink = self.receiver_sink
        if sink is None:
            return
        t = self.clock.monotonic()
        if not online:
            sink.receiver_gone(PANEL_RECEIVER)
        for d in doors:
            sink.door_health(t, d, online)
        if doors:
            log.info("panel %s: its door(s) %s %s", "back" if online else "offline",
                     ", ".join(doors), "count again" if online else "no longer count")

    def _tags_heard(self, m: Message) -> None:
        """A `panel/tags_heard` summary: checked, then to the fusion. The bus already dropped one
        that breaks the schema; here what the schema cannot see: its age, its partners."""
        msg = m.payload
        if not isinstance(msg, schemas.TagsHeard):
            return
        age = (self.clock.wall() - msg.ts).total_seconds()
        partners = [h.partner for h in msg.heard]
        if abs(age) > SUMMARY_STALE_S:
            when = f"was made {age:.0f} s ago" if age > 0 else f"is dated {-age:.0f} s ahead"
            return self._drop_summary("stale", f"{when} by the hub's clock (more than "
                                      f"{SUMMARY_STALE_S:.0f} s: a queued message, or the panel's "
                                      "clock is not synchronised)")
        if len(set(partners)) != len(partners):
            return self._drop_summary("repeated", "names a partner twice")
        unknown = sorted(set(partners) - set(self.plan.partners))
        if unknown:
            return self._drop_summary("unknown", f"names partner {', '.join(unknown)}, who is not "
                                      "in the household plan")
        self._panel_ble(msg.scanning)
        sink = self.receiver_sink
        if sink is not None:
            sink.summary(self.clock.monotonic(), PANEL_RECEIVER, msg)

    def _drop_summary(self, kind: str, reason: str) -> None:
        n = self._summary_drops[kind] = self._summary_drops.get(kind, 0) + 1
        if n <= 10 or n % 1000 == 0:     # a panel with a wrong clock sends 30 a minute
            log.warning("panel/tags_heard dropped: it %s (%d of this kind)", reason, n)

    def _panel_ble(self, scanning: bool | None) -> None:
        """The panel's radio down: departures are the hub's radio's alone meanwhile, a fault
        `ble.panel_radio` on the panel's light (the hub's: only it knows what the panel's
        summaries say). None: the panel is offline, which `service.offline` already says."""
        if scanning == self._panel_scanning:
            return
        first = self._panel_scanning is None
        self._panel_scanning = scanning
        if scanning is False:
            log.warning("the panel's Bluetooth is not scanning; departures rest on the hub's own "
                        "radio until it does")
        elif scanning and not first:
            log.info("the panel's Bluetooth scans again")
        self.sensor_faults("panel_ble", [] if scanning is not False else [schemas.Fault(
            code="ble.panel_radio", service="hub", since=self.clock.wall(),
            reason="the panel's Bluetooth is not scanning")])

    def _sound_fresh(self) -> bool:
        """Sound numbers arrived in the last SOUND_STALE_S (real seconds: the microphone runs in
        real time) and the microphone reports no fault."""
        return (time.monotonic() - self._sound_at <= SOUND_STALE_S
                and not self._sensor_faults.get("mic"))

    def expect_sensors(self, *sources: str) -> None:
        """The hub's own sensors that are installed ("mic", "ble"): the sensing light is on only
        while all of them work (R5)."""
        with self._lock:
            self._expected.update(sources)
            self._publish_state()

    def sensing(self) -> str:
        working = {s for s in self._expected if not self._sensor_faults.get(s)}
        if not working:
            return "off"
        return "on" if working == self._expected else "partial"

    def _log_faults(self) -> None:
        """Faults and their clearing are events in the log (category `fault`)."""
        now = {(f.service, f.code): f for f in self.faults()}
        added, cleared = now.keys() - self._fault_keys, self._fault_keys - now.keys()
        if not added and not cleared:
            return
        self._fault_keys = set(now)
        ts = self.clock.wall()
        events = [LoggedEvent(str(uuid.uuid4()), ts, "fault", "fault", None, None,
                              {"code": code, "service": service, "action": needs_action(code)})
                  for service, code in sorted(added)]
        events += [LoggedEvent(str(uuid.uuid4()), ts, "fault_cleared", "fault", None, None,
                               {"code": code, "service": service}) for service, code in sorted(cleared)]
        self._unsaved += events
        if self._storage_problem is None:   # else they go with the save that works again
            self._save()

    def sensor_faults(self, source: str, faults: list[schemas.Fault]) -> None:
        """The current faults of one of the hub's own sensors (replaces that sensor's list)."""
        with self._lock:
            self._sensor_faults[source] = list(faults)
            self.bus.publish("hub/health", self.bus.make(
                schemas.Health, faults=[f for fs in self._sensor_faults.values() for f in fs]))
            self._publish_state()

    def _publish_state(self) -> None:
        ps = self.proc.public_state()
        ps["faults"] = [f.model_dump(mode="json") for f in self.faults()]
        ps["sensing"] = self.sensing()
        if not self._sound_fresh():
            ps["thermometer"] = None      # no sound data: never a frozen old value
        self._log_faults()
        if ps["ends_at"]:   # to the second: a tick must not republish an unchanged picture
            ps["ends_at"] = datetime.fromisoformat(ps["ends_at"]).replace(microsecond=0).isoformat()
        if ps == self._last_state:
            return
        self._last_state = ps
        self.bus.publish("state", self.bus.make(schemas.State, **ps))

    def public_state(self) -> dict:
        with self._lock:
            return self.proc.public_state()


def serve(plan_path: Path, broker_dir: Path, state_dir: Path, *, host: str = "127.0.0.1",
          port: int = 1883, speed: float = 1.0, sensors_path: Path | None = None) -> int:
    """`timeout-hub hub`: run the hub service until SIGTERM/SIGINT."""
    from core.clock import ScaledClock, SystemClock
    from firmware.hub.plan import date_findings, load_plan
    from firmware.hub.sensors import load_sensors, start_all
    from mqtt.broker_config import Credentials
    # every configuration file is checked before anything is started
    plan = load_plan(plan_path)
    for f in date_findings(plan, datetime.now().date()):   # an installer's rule, never a stop
        log.warning("household plan %s: %s: %s; the hub runs on", plan_path, f.path, f.sentence)
    sensors = load_sensors(sensors_path) if sensors_path else None
    clock = SystemClock() if speed == 1.0 else ScaledClock(speed)
    bus = BusClient("hub", plan.household, Credentials.load(Path(broker_dir) / "credentials" / "hub.json"),
                    host=host, port=port, state_dir=state_dir, clock=clock.wall)
    # an accelerated clock (tests, bench) ticks as often in evening time as a real one
    hub = Hub(plan, bus, clock, state_dir, tick_seconds=min(1.0, 1.0 / speed * 20)).start()
    from firmware.hub.wearable_watch import WearableWatch
    watch = WearableWatch(hub).start()      # "wearable silent" (docs/wearable.md)
    hub.wearable_watch = watch              # the tag supervision asks it (firmware/hub/sensors.py)
    running = start_all(hub, plan, sensors, clock, state_dir) if sensors else []
    # the watchdog watches the procedure only: a sensor that is down is a fault on the panel,
    # not a reason for systemd to restart the hub (and interrupt a time-out)
    run_until_stopped(hub.alive, f"hub for {plan.household} running (state in {state_dir}, "
                                 f"{len(running)} sensor(s))")
    for svc in running:
        svc.stop()
    watch.stop()
    hub.stop()
    return 0
