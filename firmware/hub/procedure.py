"""The time-out procedure as a state machine (phases 1-8, README.md).

Pure: it takes inputs and clock ticks and returns outputs (events, prompts to one partner, call
requests); the hub service publishes them. Its whole state is a JSON-able snapshot, saved after
every step, so a crash or power cut resumes where it was.

Rules kept here, each with a test:
- a time-out never ends before its minimum; durations run on the monotonic clock, and after a
  restart the downtime counts only when the wall clock is trusted and moved forward plausibly
  (a clock jump can lengthen a time-out, never shorten it);
- the hub never starts a time-out by itself; a suggestion needs both partners home and expires;
- no input ends a time-out, and no input cancels a call (R7); short presses only count;
- one partner's answers never enter the public state (R9): only "both calm";
- output ids are derived from the snapshot's sequence number, so a step replayed after a crash
  produces the same ids and receivers drop the repeats: a call is never made twice.
"""
from __future__ import annotations

import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Union

from core.clock import Clock
from firmware.hub.plan import HouseholdPlan, Partner
from firmware.hub.state import (
    PARTNERS,
    SNAPSHOT_VERSION,
    EndCheckin,
    Episode,
    Evaluation,
    HubState,
    SnapshotError,
    Timer,
    dump_state,
    load_state,
    migrate,
)
from mqtt.schemas import Phase

__all__ = ["PARTNERS", "SNAPSHOT_VERSION", "Procedure", "SnapshotError", "migrate"]
END_PROMPTS_AT = (0.0, 120.0, 240.0)   # 3 prompts over 5 minutes
END_DEADLINE = 300.0
EVALUATION_TIMEOUT = 30 * 60.0
MAX_DOWNTIME_CREDIT = 12 * 3600.0
MORE_ROUNDS_AFTER_OVERNIGHT = 1
# A presence "away" counts as a departure only once it has held this long with nothing
# contradicting it (a tag silent for a minute in the bathroom is no departure); the wearable's
# "apart" verdict counts at once. docs/procedure.md, "Who left".
DEPART_CONFIRM_S = 120.0
EVALUATION = (("evaluation.long_enough", 2), ("evaluation.more_time", 2), ("evaluation.discuss", 3))
ID_NS = uuid.UUID("3a9d2a55-6c1e-4f0e-9b3e-6e0a1c2f7d10")


# -- inputs ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Sound:
    thermometer: int
    episode: bool = False


@dataclass(frozen=True)
class PresenceSeen:
    partner: str
    presence: Literal["home", "away", "unknown"]
    door: bool = False      # confirmed by an exit door (ble/ fusion): a departure counts at once


@dataclass(frozen=True)
class ApartSeen:
    partner: str
    apart: bool | None


@dataclass(frozen=True)
class PanelPress:
    long: bool


@dataclass(frozen=True)
class PartnerButton:
    partner: str


@dataclass(frozen=True)
class Answer:
    source: str              # "a", "b" or "panel"
    question_id: str
    choice: int


@dataclass(frozen=True)
class CallOutcome:
    request_id: str
    outcome: str
    final: bool
    step: str | None = None        # dial / sms / ladder
    contact: int | None = None     # which of the partner's contacts (an index, never a number)
    round: int | None = None


Input = Union[  # noqa: UP007 - a runtime alias, isinstance-checked
    Sound, PresenceSeen, ApartSeen, PanelPress, PartnerButton, Answer, CallOutcome]


# -- outputs -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class EventOut:
    id: str
    type: str
    category: str
    partner: str | None = None
    timeout_id: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PromptOut:
    id: str
    partner: str
    question_id: str
    kind: str
    key: str
    options: int = 0
    task: int | None = None


@dataclass(frozen=True)
class CallOut:
    id: str                  # the request id
    partner: str
    reason: str
    timeout_id: str | None


Output = Union[  # noqa: UP007 - a runtime alias
    EventOut, PromptOut, CallOut]


class Procedure:
    """The state machine. `handle` applies one input, `tick` lets time pass; both return the
    outputs of that step. Each phase has its own handler (`_PHASES`); the rest of the hub asks
    the queries at the end instead of reading the state."""

    def __init__(self, plan: HouseholdPlan, clock: Clock, snapshot: dict[str, Any] | None = None,
                 instance: str | None = None):
        self.plan = plan
        self.clock = clock
        if snapshot is not None:
            self._s = load_state(snapshot, plan)
            self._resume()
        else:
            self._s = HubState(instance=instance) if instance else HubState()
        if self._s.since_wall is None:
            self._s.since_wall = self.clock.wall().isoformat()
        self._out: list[Output] = []
        self.ignored: str | None = None   # why the last input changed nothing
        # While the hub catches up after a restart, inputs are applied without letting time act:
        # answers given while it was down count before a deadline that passed meanwhile closes
        # their question (the hub ends it once the queued inputs are in: service.py).
        self.catching_up = False

    # -- time ------------------------------------------------------------------------------
    def _resume(self) -> None:
        """After a restart. On the same boot the monotonic clock went on and says exactly how
        long the hub was down (a wall clock stepped meanwhile changes nothing). After a reboot it
        started again: the downtime is credited from the wall clock only when that can be
        believed (trusted before and now, moved forward plausibly); a doubtful clock can
        lengthen a time-out, never shorten it."""
        s = self._s
        same_boot = s.boot is not None and s.boot == self.clock.boot()
        if not same_boot:
            for timer in s.timers.values():   # not credited with downtime: only later
                timer.due = self.clock.monotonic() + timer.left
        ep = s.episode
        if ep is None:
            return
        if same_boot:
            ep.elapsed += max(0.0, self.clock.monotonic() - ep.mono)
        else:
            credit = 0.0
            if ep.wall_at_save and self.clock.trusted() and ep.wall_trusted:
                from datetime import datetime
                delta = (self.clock.wall() - datetime.fromisoformat(ep.wall_at_save)).total_seconds()
                if 0 <= delta <= MAX_DOWNTIME_CREDIT:
                    credit = delta
            ep.elapsed += credit
        ep.mono = self.clock.monotonic()

    def elapsed(self) -> float:
        ep = self._ep
        return ep.elapsed + (self.clock.monotonic() - ep.mono)

    def snapshot(self) -> dict[str, Any]:
        """The state to persist (JSON-able, versioned); also checkpoints the episode's time."""
        for timer in self._s.timers.values():
            timer.left = max(0.0, timer.due - self.clock.monotonic())
        self._s.boot = self.clock.boot()
        ep = self._s.episode
        if ep is not None:
            ep.elapsed = self.elapsed()
            ep.mono = self.clock.monotonic()
            ep.wall_at_save = self.clock.wall().isoformat()
            ep.wall_trusted = self.clock.trusted()
        return dump_state(self._s)

    @property
    def _ep(self) -> Episode:
        """The running episode (only called where one is known to run)."""
        ep = self._s.episode
        if ep is None:
            raise RuntimeError("no time-out is running")
        return ep

    # -- outputs ---------------------------------------------------------------------------
    def _id(self) -> str:
        self._s.seq += 1
        return str(uuid.uuid5(ID_NS, f"{self._s.instance}:{self._s.seq}"))

    def _event(self, type_: str, category: str, partner: str | None = None, **data: Any) -> None:
        ep = self._s.episode
        self._out.append(EventOut(self._id(), type_, category, partner,
                                  ep.id if ep else None, data))

    def _prompt(self, partner: str, kind: str, key: str, options: int = 0,
                question_id: str | None = None, task: int | None = None) -> None:
        pid = self._id()
        self._out.append(PromptOut(pid, partner, question_id or pid, kind, key, options, task))

    def _call(self, partner: Partner, reason: str) -> None:
        ep = self._ep
        key = f"{ep.round}:{partner}:{reason}"
        if key in ep.calls:
            return       # at most one call per partner, reason and round
        rid = self._id()
        ep.calls[key] = rid
        recent = self._s.recent_calls
        recent[rid] = partner
        while len(recent) > 24:           # a day of ladders at most; dicts keep insertion order
            recent.pop(next(iter(recent)))
        self._out.append(CallOut(rid, partner, reason, ep.id))
        self._event("call_requested", "call", partner, reason=reason, round=ep.round)

    def _phase(self, phase: Phase) -> None:
        if self._s.phase != phase:
            self._s.phase = phase
            self._s.since_wall = self.clock.wall().isoformat()

    def _take(self) -> list[Output]:
        out, self._out = self._out, []
        return out

    def _end(self) -> None:
        self._s.episode = None
        self._phase(Phase.MONITORING)

    # -- helpers ---------------------------------------------------------------------------
    def _away(self, p: Partner) -> bool:
        return self._s.presence[p] == "away" or self._s.apart[p] is True

    def _back(self, p: Partner) -> bool:
        # the wearable's "apart" outweighs a tag heard at home (a stale or wrong presence); a tag
        # heard at home counts once the wearable no longer says apart (indoors it often says
        # "unknown")
        if self._s.apart[p] is True:
            return False
        return self._s.presence[p] == "home" or self._s.apart[p] is False

    def _both_home(self) -> bool:
        return all(self._s.presence[p] == "home" and self._s.apart[p] is not True
                   for p in PARTNERS)

    def active(self) -> bool:
        return self._s.phase in RUNNING or self._s.phase == Phase.CHECKIN

    # -- inputs ----------------------------------------------------------------------------
    def handle(self, inp: Input) -> list[Output]:
        """Apply one input. An input that changes nothing leaves its reason in `ignored` (the
        hub logs it): nobody's press or answer ends, shortens or redirects a time-out (R7, R13)."""
        self.ignored = None
        s = self._s
        if isinstance(inp, Sound):
            s.thermometer = max(0, min(10, int(inp.thermometer)))
            if inp.episode and s.phase == Phase.MONITORING and self._both_home():
                self._phase(Phase.SUGGESTION)
                self._set_timer("suggestion", self.plan.timeout.suggestion_expires_minutes * 60)
                self._event("suggestion", "sensing", thermometer=s.thermometer)
        elif isinstance(inp, PanelPress):
            if not inp.long:
                s.short_presses += 1   # children's presses: ignored, counted
            elif s.phase in (Phase.MONITORING, Phase.SUGGESTION):
                self._start(source="panel", p1=None)
            else:
                self.ignored = f"a long press during {s.phase} changes nothing (R7)"
        elif isinstance(inp, PartnerButton):
            if inp.partner in PARTNERS and s.phase in (Phase.MONITORING, Phase.SUGGESTION):
                self._start(source=inp.partner, p1=_partner(inp.partner))
            else:
                self.ignored = f"partner {inp.partner}'s button during {s.phase} changes nothing (R7)"
        elif isinstance(inp, (PresenceSeen, ApartSeen)):
            if inp.partner in PARTNERS:
                p = _partner(inp.partner)
                if isinstance(inp, PresenceSeen):
                    s.presence[p] = inp.presence
                    s.away_by_door[p] = inp.presence == "away" and inp.door
                else:
                    s.apart[p] = inp.apart
                self._movement(p)
        elif isinstance(inp, Answer):
            before = s.seq
            self._answer(inp)
            if s.seq == before:        # nothing logged: it answered no open question
                self.ignored = (f"an answer from {inp.source} to no question open for it "
                                f"(phase {s.phase})")
        elif isinstance(inp, CallOutcome):
            self._call_outcome(inp)
        if not self.catching_up:
            self._advance()
        return self._take()

    def tick(self) -> list[Output]:
        if not self.catching_up:
            self._advance()
        return self._take()

    def _call_outcome(self, inp: CallOutcome) -> None:
        # whose contacts, and which request (R12); also for a result that arrives after the
        # time-out ended (the last round's calls are requested as it ends)
        partner = self._s.recent_calls.get(inp.request_id)
        if partner is not None and inp.final:
            self._event("call_result", "call", partner, outcome=inp.outcome,
                        request_id=inp.request_id)
        elif partner is not None:     # every step of the ladder is in the log too
            self._event("call_step", "call", partner, outcome=inp.outcome,
                        request_id=inp.request_id, step=inp.step, contact=inp.contact,
                        round=inp.round)

    # -- the start ---------------------------------------------------------------------------
    def _start(self, source: str, p1: Partner | None) -> None:
        t = self.plan.timeout
        if self._s.timers.pop("discuss_later", None) is not None:
            # a new time-out before the agreed talk: its own evaluation decides again
            self._event("reminder_cancelled", "evaluation", topic="discuss_later")
        leaver = _partner(t.leaver) if t.leaver in PARTNERS else p1   # None: whoever leaves first
        self._s.timers.pop("suggestion", None)
        self._s.episode = Episode(
            id=self._id(), mono=self.clock.monotonic(), wall_trusted=self.clock.trusted(),
            p1=p1, leaver=leaver, min_total=t.minimum_minutes * 60.0,
            next_checkin=t.checkin_every_minutes * 60.0,
            reminder_at=[0.0, t.minimum_minutes * 30.0],
            away_since={p: (0.0 if self._s.presence[p] == "away" else None) for p in PARTNERS})
        self._phase(Phase.LEAVING)
        self._event("started", "procedure", p1, source=source,
                    minimum_minutes=t.minimum_minutes)

    # -- departures and returns --------------------------------------------------------------
    def _movement(self, p: Partner) -> None:
        ep = self._s.episode
        if ep is None or not self.active():
            return
        if self._s.presence[p] == "away":
            if ep.away_since[p] is None:
                ep.away_since[p] = self.elapsed()
        else:
            ep.away_since[p] = None
        self._departures(ep)
        if p != ep.leaver or not ep.left or not self._back(p):
            return
        ep.left = False
        minutes = round(self.elapsed() / 60, 1)
        if self.elapsed() >= ep.min_total:
            self._event("returned", "presence", p, minutes=minutes)
            return
        ep.back_early = True
        self._event("returned_early", "presence", p, minutes=minutes)
        self._prompt(p, "notice", "notice.returned_early")
        if self.plan.calls.on_early_return:
            self._call(p, "early_return")

    def departed(self, p: Partner) -> bool:
        """Partner p has left: the wearable says apart, or the tags went away through the exit
        door, or they have been away for DEPART_CONFIRM_S, with the wearable not saying otherwise."""
        if self._s.apart[p] is True:
            return True
        if self._s.presence[p] == "away" and self._s.away_by_door[p] and self._s.apart[p] is not False:
            return True
        ep = self._s.episode
        since = ep.away_since[p] if ep else None
        return (self._s.presence[p] == "away" and self._s.apart[p] is not False
                and since is not None and self.elapsed() - since >= DEPART_CONFIRM_S)

    def _departures(self, ep: Episode) -> None:
        """Decide the leaver (once, never to move to the other partner) and see them leave."""
        if ep.leaver is None:
            gone = [p for p in PARTNERS if self.departed(p)]
            if len(gone) == 1:         # both gone at once says nothing about who left
                ep.leaver = gone[0]
        p = ep.leaver
        if p is not None and not ep.left and self.departed(p):
            ep.left = True
            ep.back_early = False
            self._event("left", "presence", p)
            if self._s.phase == Phase.LEAVING:
                self._phase(Phase.TIMEOUT)

    # -- timers ------------------------------------------------------------------------------
    def _set_timer(self, name: str, seconds: float) -> None:
        self._s.timers[name] = Timer(due=self.clock.monotonic() + seconds, left=seconds)

    def _fired(self, name: str) -> bool:
        timer = self._s.timers.get(name)
        if timer is None or self.clock.monotonic() < timer.due:
            return False
        del self._s.timers[name]
        return True

    # -- one handler per phase -----------------------------------------------------------------
    def _advance(self) -> None:
        """Let time act: the discuss-later reminder, then the current phase's handler, again
        as long as a handler moves to another phase (a step can pass through several)."""
        if self._fired("discuss_later"):
            self._event("reminder", "evaluation", topic="discuss_later")
            for p in PARTNERS:
                self._prompt(p, "notice", "notice.discuss_topic_now")
        if self._s.episode is not None and self.active():
            self._departures(self._s.episode)   # a departure is confirmed by time as well
        for _ in range(len(Phase)):
            phase = self._s.phase
            self._PHASES[phase](self)
            if self._s.phase == phase:
                break

    def _in_monitoring(self) -> None:
        pass

    def _in_suggestion(self) -> None:
        if "suggestion" not in self._s.timers or self._fired("suggestion"):
            self._phase(Phase.MONITORING)
            self._event("suggestion_expired", "sensing")

    def _in_leaving(self) -> None:
        """Started; the leaver has the grace period to go. Past it the time-out runs anyway
        (its minimum counts from the start), and whoever should leave is asked to."""
        ep, t = self._ep, self.plan.timeout
        if self.elapsed() < t.leave_grace_minutes * 60:
            self._in_timeout()
            return
        ep.overdue = True
        ep.indoor = t.indoor_separation
        self._event("leave_overdue", "procedure", ep.leaver, indoor=t.indoor_separation)
        if ep.leaver is not None:
            self._prompt(ep.leaver, "notice",
                         "notice.separate_indoors" if t.indoor_separation else "notice.please_leave")
        else:
            # a panel start with "whoever leaves first" and nobody has left: both are asked,
            # the hub cannot know which of them it will be
            for p in PARTNERS:
                self._prompt(p, "notice", "notice.separate_indoors" if t.indoor_separation
                             else "notice.one_of_you_leave")
        self._phase(Phase.TIMEOUT)

    def _in_timeout(self) -> None:
        """A round runs (also while leaving and in an extension): reminders, periodic check-ins,
        and the end check-in once the round's minimum is over."""
        ep, t = self._ep, self.plan.timeout
        e = self.elapsed()
        for i, at in enumerate(ep.reminder_at):
            if at is not None and e >= at:
                ep.reminder_at[i] = None
                for p in PARTNERS:
                    n = len(self.plan.partners[p].calming_tasks)
                    ep.reminders[p] += 1
                    self._prompt(p, "reminder", "reminder.calming_task",
                                 task=(ep.reminders[p] - 1) % n + 1)
        if e >= ep.next_checkin and e < ep.min_total:
            ep.next_checkin += t.checkin_every_minutes * 60
            qid = self._id()
            for p in PARTNERS:
                self._prompt(p, "checkin", "checkin.how_do_you_feel", 3, question_id=qid)
            self._event("checkin_requested", "checkin", final=False)
            ep.periodic_q = qid
            ep.periodic_answered = []
        if e >= ep.min_total:
            ep.end = EndCheckin(q=self._id(), start=e)
            self._phase(Phase.CHECKIN)
            self._event("checkin_requested", "checkin", final=True, round=ep.round)

    def _in_checkin(self) -> None:
        ep = self._ep
        end = ep.end
        if end is None:
            raise RuntimeError("the check-in phase without its question")
        since = self.elapsed() - end.start
        while end.sent < len(END_PROMPTS_AT) and since >= END_PROMPTS_AT[end.sent]:
            end.sent += 1
            for p in PARTNERS:
                if p not in end.answers:
                    self._prompt(p, "checkin", "checkin.how_do_you_feel", 3, question_id=end.q)
        if len(end.answers) == 2 or since >= END_DEADLINE:
            self._resolve_end(ep, end)

    def _in_evaluation(self) -> None:
        ep = self._ep
        ev = ep.evaluation
        if ev is None:
            raise RuntimeError("the evaluation phase without its questions")
        e = self.elapsed()
        if all(ev.step[p] >= len(EVALUATION) for p in PARTNERS) or e - ev.start >= EVALUATION_TIMEOUT:
            self._evaluation_outcome(ep, ev)
            self._event("ended", "procedure", outcome="evaluated", rounds=ep.round,
                        minutes=round(e / 60, 1), unanswered=sum(
                            len(EVALUATION) - min(ev.step[p], len(EVALUATION)) for p in PARTNERS))
            self._end()

    _PHASES: ClassVar[dict[Phase, Callable[[Procedure], None]]] = {
        Phase.MONITORING: _in_monitoring, Phase.SUGGESTION: _in_suggestion,
        Phase.LEAVING: _in_leaving, Phase.TIMEOUT: _in_timeout, Phase.EXTENDED: _in_timeout,
        Phase.CHECKIN: _in_checkin, Phase.EVALUATION: _in_evaluation,
    }

    # -- the end of a round ------------------------------------------------------------------
    def _resolve_end(self, ep: Episode, end: EndCheckin) -> None:
        answers = end.answers
        calls = self.plan.calls
        if all(answers.get(p) == 1 for p in PARTNERS):
            ep.both_calm = True
            self._event("both_calm", "checkin", round=ep.round)
            self._event("may_meet_again", "procedure")
            for p in PARTNERS:
                self._prompt(p, "notice", "notice.may_meet_again")
            self._phase(Phase.EVALUATION)
            ep.evaluation = Evaluation(start=self.elapsed())
            for p in PARTNERS:
                self._ask_evaluation(ep.evaluation, p)
            return
        for p in PARTNERS:
            a = answers.get(p)
            if a is None:
                self._event("checkin_unanswered", "checkin", p)
                if calls.on_no_answer:
                    self._call(p, "no_answer")
            elif a != 1:
                self._event("not_calm", "checkin", p, choice=a)
                if a == 3 and calls.on_not_calm:
                    self._call(p, "not_calm")
        t = self.plan.timeout
        if ep.round >= t.rounds_before_overnight + MORE_ROUNDS_AFTER_OVERNIGHT:
            # Every escalation ends: after the overnight suggestion and more rounds with the
            # contacts called, the hub stops counting and leaves it to the people involved.
            self._event("ended", "procedure", outcome="handed_to_contacts", rounds=ep.round,
                        minutes=round(self.elapsed() / 60, 1))
            for p in PARTNERS:   # say only what happened: were this partner's contacts asked?
                called = any(key.split(":")[1] == p for key in ep.calls)
                self._prompt(p, "notice", "notice.handed_to_contacts" if called else "notice.ended_no_calls")
            self._end()
            return
        self._extend(ep)

    def _extend(self, ep: Episode) -> None:
        t = self.plan.timeout
        ep.round += 1
        e = self.elapsed()
        ep.min_total = e + t.extension_minutes * 60.0
        ep.round_start = e
        ep.next_checkin = e + t.checkin_every_minutes * 60.0
        # calming reminders in every round: at its start and half-way, as in the first
        ep.reminder_at = [e, e + t.extension_minutes * 30.0]
        ep.end = None
        ep.periodic_q = None          # a question of the last round is no longer open
        self._phase(Phase.EXTENDED)
        self._event("extended", "procedure", round=ep.round, minutes=t.extension_minutes)
        leaver = ep.leaver
        if leaver is not None and not self._away(leaver) and not self.departed(leaver):
            # back after the minimum (allowed), but the time-out goes on: leave again; a stay
            # now counts as a new departure to make, not as an early return
            ep.left = False
            ep.back_early = False
            self._prompt(leaver, "notice", "notice.separate_indoors" if t.indoor_separation
                         else "notice.leave_again")
        if ep.round > t.rounds_before_overnight and not ep.overnight:
            ep.overnight = True
            self._event("overnight_suggested", "procedure", round=ep.round)
            for p in PARTNERS:
                self._prompt(p, "notice", "notice.consider_overnight_elsewhere")

    # -- the evaluation ------------------------------------------------------------------------
    def _lead(self, ep: Episode) -> Partner | None:
        lead = self.plan.lead_when_disagreeing
        if lead in PARTNERS:
            return _partner(lead)
        if ep.leaver is None:
            return None
        return ep.leaver if lead == "leaver" else _other(ep.leaver)

    def _evaluation_outcome(self, ep: Episode, ev: Evaluation) -> None:
        """What the household takes from the evaluation. Whether and when to discuss the topic:
        the agreed answer, or the plan's lead's when they differ (with no lead known, the more
        cautious one)."""
        answers = ev.answers   # empty when nobody answered in time
        data: dict[str, Any] = {}
        # Needing more time is nobody's to overrule: one partner's "yes" counts.
        said = {key: [answers[p][key] for p in PARTNERS if key in answers.get(p, {})]
                for key, _ in EVALUATION}
        if said["evaluation.long_enough"]:
            data["long_enough"] = all(c == 1 for c in said["evaluation.long_enough"])
        if said["evaluation.more_time"]:
            data["more_time"] = any(c == 2 for c in said["evaluation.more_time"])
        given = {p: answers[p]["evaluation.discuss"] for p in PARTNERS
                 if "evaluation.discuss" in answers.get(p, {})}
        if given:
            lead = self._lead(ep)
            if len(set(given.values())) == 1:
                choice, how = next(iter(given.values())), "agreed"
            elif lead in given:
                choice, how = given[lead], f"lead_{lead}"
            else:
                choice, how = max(given.values()), "cautious"
            data["discuss"] = {1: "now", 2: "later", 3: "next_session"}[choice]
            data["decided_by"] = how
            if choice == 2:
                self._set_timer("discuss_later", self.plan.timeout.discuss_later_minutes * 60)
                data["reminder_minutes"] = self.plan.timeout.discuss_later_minutes
            elif choice == 3:
                # a count and a date for the therapist, never the content
                self._s.topics_for_session += 1
                data["topics_for_session"] = self._s.topics_for_session
                today = self.clock.wall().date()
                upcoming = [d for d in self.plan.evaluation_dates if d >= today]
                if upcoming:
                    data["session_date"] = upcoming[0].isoformat()
        self._event("evaluation_outcome", "evaluation", **data)
        if data.get("more_time"):
            for p in PARTNERS:
                self._prompt(p, "notice", "notice.take_more_time")

    def _ask_evaluation(self, ev: Evaluation, p: Partner) -> None:
        step = ev.step[p]
        if step < len(EVALUATION):
            key, options = EVALUATION[step]
            qid = ev.q.get(key) or self._id()
            ev.q[key] = qid
            self._prompt(p, "evaluation", key, options, question_id=qid)

    # -- answers -------------------------------------------------------------------------------
    def panel_partner(self) -> Partner | None:
        """Whose answer a press on the shared panel is: the one partner without a device of
        their own, while that partner is not known to be away. None when the hub cannot know
        (both partners have their own device, or that partner is out): the press then counts
        for nobody, so whoever stands at the panel can never answer for someone else."""
        without: list[Partner] = [p for p in PARTNERS if not self.plan.own_device(p)]
        if len(without) != 1:
            return None
        p = without[0]
        return None if self._away(p) or self.departed(p) else p

    def _answer(self, a: Answer) -> None:
        ep = self._s.episode
        if ep is None or a.choice not in (1, 2, 3):
            return
        if a.source in PARTNERS:
            p = _partner(a.source)
        elif a.source == "panel":
            who = self.panel_partner()
            if who is None:
                reason = ("both partners answer on their own device"
                          if all(self.plan.own_device(q) for q in PARTNERS)
                          else "the partner who answers on the panel is away")
                self._event("panel_answer_ignored", "checkin", reason=reason)
                return
            p = who
        else:
            return
        phase = self._s.phase
        if phase == Phase.CHECKIN and ep.end is not None and a.question_id == ep.end.q:
            if p not in ep.end.answers:
                ep.end.answers[p] = a.choice
                self._event("checkin_answered", "checkin", p, choice=a.choice, final=True)
        elif phase in RUNNING and a.question_id == ep.periodic_q and p not in ep.periodic_answered:
            ep.periodic_answered.append(p)     # one answer per partner and question
            self._event("checkin_answered", "checkin", p, choice=a.choice, final=False)
        elif phase == Phase.EVALUATION and ep.evaluation is not None:
            ev = ep.evaluation
            step = ev.step[p]
            if step < len(EVALUATION):
                key, options = EVALUATION[step]
                if a.question_id == ev.q.get(key) and a.choice <= options:
                    ev.step[p] += 1
                    ev.answers.setdefault(p, {})[key] = a.choice
                    self._event("evaluation", "evaluation", p, question=key, choice=a.choice)
                    self._ask_evaluation(ev, p)

    # -- queries (the hub, the demo, procedure-replay and tests ask these) ----------------------
    @property
    def phase(self) -> Phase:
        return self._s.phase

    @property
    def short_presses(self) -> int:
        """Short presses on the panel so far (a child's; they change nothing)."""
        return self._s.short_presses

    def presence(self, partner: Partner) -> str:
        """The partner's last presence as the procedure saw it: home, away or unknown."""
        return self._s.presence[partner]

    def apart(self, partner: str) -> bool | None:
        """The partner's wearable's last verdict: True (>= 100 m from home), False, None (unknown)."""
        return self._s.apart.get(_partner(partner)) if partner in PARTNERS else None

    def timeout_id(self) -> str | None:
        """The running time-out's id (also on its events), None when none runs."""
        return self._s.episode.id if self._s.episode else None

    def leaver(self) -> Partner | None:
        return self._s.episode.leaver if self._s.episode else None

    def round(self) -> int | None:
        """The running time-out's round: 1, then 2, 3... after extensions."""
        return self._s.episode.round if self._s.episode else None

    def minimum_over_at(self) -> float | None:
        """Episode seconds (elapsed()) at which the current round's minimum is over."""
        return self._s.episode.min_total if self._s.episode else None

    def calls_requested(self) -> int:
        """Calls requested in the running time-out."""
        return len(self._s.episode.calls) if self._s.episode else 0

    def open_question(self, partner: str) -> tuple[str, int] | None:
        """(question id, number of options) a partner's own device may answer now: the end
        check-in, the periodic check-in during the time-out, or their next evaluation question."""
        ep = self._s.episode
        if ep is None or partner not in PARTNERS:
            return None
        phase = self._s.phase
        if phase == Phase.CHECKIN and ep.end is not None:
            return ep.end.q, 3
        if phase in RUNNING and ep.periodic_q:
            return ep.periodic_q, 3
        if phase == Phase.EVALUATION and ep.evaluation is not None:
            return _evaluation_question(ep.evaluation, _partner(partner))
        return None

    def pending(self) -> bool:
        """Something is still due with no input: a suggestion expiring, a discuss-later reminder."""
        return bool(self._s.timers)

    # -- what the panel shows --------------------------------------------------------------
    def public_state(self) -> dict[str, Any]:
        """Fields of the retained `state`; nothing of one partner's answers (R9)."""
        from datetime import timedelta
        s, ep = self._s, self._s.episode
        out: dict[str, Any] = {
            "phase": s.phase, "since": s.since_wall, "ends_at": None,
            "leaver": None, "thermometer": s.thermometer,
            "suggestion": s.phase == Phase.SUGGESTION, "both_calm": None, "question": None,
            "time_left": None, "returned_early": False,
        }
        if ep is None:
            return out
        out["leaver"] = ep.leaver
        if s.phase in RUNNING:
            remaining = max(0.0, ep.min_total - self.elapsed())
            out["ends_at"] = (self.clock.wall() + timedelta(seconds=remaining)).isoformat()
            length = ep.min_total - ep.round_start
            out["time_left"] = min(10, math.ceil(10 * remaining / length)) if length > 0 else 0
            out["returned_early"] = ep.back_early
        if ep.both_calm:
            out["both_calm"] = True
        who = self.panel_partner()   # the mood buttons light only for a press that counts
        if who is None:
            return out
        if s.phase == Phase.CHECKIN and ep.end is not None and who not in ep.end.answers:
            out["question"] = {"id": ep.end.q, "kind": "checkin",
                               "key": "checkin.how_do_you_feel", "options": 3}
        elif s.phase == Phase.EVALUATION and ep.evaluation is not None:
            q = _evaluation_question(ep.evaluation, who)
            if q is not None:
                step = ep.evaluation.step[who]
                out["question"] = {"id": q[0], "kind": "evaluation", "key": EVALUATION[step][0],
                                   "options": q[1]}
        return out


RUNNING = (Phase.LEAVING, Phase.TIMEOUT, Phase.EXTENDED)


def _partner(p: str) -> Partner:
    if p == "a":
        return "a"
    if p == "b":
        return "b"
    raise ValueError(f"no partner {p!r}")


def _other(p: Partner) -> Partner:
    return "b" if p == "a" else "a"


def _evaluation_question(ev: Evaluation, p: Partner) -> tuple[str, int] | None:
    step = ev.step[p]
    if step < len(EVALUATION):
        key, options = EVALUATION[step]
        if key in ev.q:
            return ev.q[key], options
    return None
