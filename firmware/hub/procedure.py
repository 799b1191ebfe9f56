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
from dataclasses import dataclass, field
from typing import Any, Literal, Union

from core.clock import Clock
from core.errors import HubError
from firmware.hub.plan import HouseholdPlan, Partner
from mqtt.schemas import Phase

PARTNERS: tuple[Partner, ...] = ("a", "b")
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


SNAPSHOT_VERSION = 2


class SnapshotError(HubError, ValueError):
    """The saved state cannot be used by this version of the hub."""


def migrate(snapshot: dict[str, Any], plan: HouseholdPlan) -> dict[str, Any]:
    """A saved snapshot in today's form (version SNAPSHOT_VERSION). Version 1 (no `version`
    key, the hub before procedure v2) is upgraded in place of a running time-out: its calls are
    remembered by partner, its round's start, away times and answered periodic check-ins are
    filled in from what the old state knew."""
    s = dict(snapshot)
    version = s.get("version", 1)
    if not isinstance(version, int) or version > SNAPSHOT_VERSION:
        raise SnapshotError(f"the saved state is version {version!r}, newer than this hub "
                            f"understands ({SNAPSHOT_VERSION}); install the newer timeout-hub again")
    if version == 1:
        recent: dict[str, str] = {}
        ep = s.get("episode")
        if ep:
            ep = s["episode"] = dict(ep)
            for key, rid in ep.get("calls", {}).items():
                recent[rid] = key.split(":")[1]           # "round:partner:reason"
            ep.setdefault("round_start", 0.0 if ep.get("round", 1) == 1
                          else ep["min_total"] - plan.timeout.extension_minutes * 60.0)
            presence = s.get("presence", {})
            # away since the time-out's start at the latest: the old state kept no time
            ep.setdefault("away_since", {p: (0.0 if presence.get(p) == "away" else None)
                                         for p in PARTNERS})
            ep.setdefault("back_early", False)
            ep.setdefault("periodic_q", None)
            ep.setdefault("periodic_answered", [])
        s["recent_calls"] = recent
        s["version"] = 2
    return s


def _fresh(instance: str | None) -> dict[str, Any]:
    return {
        "version": SNAPSHOT_VERSION,
        "phase": Phase.MONITORING, "since_wall": None, "seq": 0,
        "instance": instance or str(uuid.uuid4()),
        "thermometer": 0, "presence": {"a": "unknown", "b": "unknown"},
        "apart": {"a": None, "b": None}, "short_presses": 0, "timers": {},
        "episode": None, "topics_for_session": 0,
        "recent_calls": {},   # call request id -> partner, kept past the episode's end
    }


class Procedure:
    def __init__(self, plan: HouseholdPlan, clock: Clock, snapshot: dict[str, Any] | None = None,
                 instance: str | None = None):
        self.plan = plan
        self.clock = clock
        self.s: dict[str, Any] = {**_fresh(instance), **migrate(snapshot, plan)} if snapshot \
            else _fresh(instance)
        if snapshot is not None:
            self._resume()
        if self.s["since_wall"] is None:
            self.s["since_wall"] = self.clock.wall().isoformat()
        self._out: list[Output] = []
        self.ignored: str | None = None   # why the last input changed nothing

    # -- time ------------------------------------------------------------------------------
    def _resume(self) -> None:
        """After a restart: the monotonic clock started again; credit the downtime only when
        the wall clock can be believed."""
        ep = self.s.get("episode")
        for timer in self.s["timers"].values():   # not credited with downtime: only later
            timer["due"] = self.clock.monotonic() + timer["left"]
        if not ep:
            return
        credit = 0.0
        saved_wall = ep.get("wall_at_save")
        if saved_wall and self.clock.trusted() and ep.get("wall_trusted"):
            from datetime import datetime
            delta = (self.clock.wall() - datetime.fromisoformat(saved_wall)).total_seconds()
            if 0 <= delta <= MAX_DOWNTIME_CREDIT:
                credit = delta
        ep["elapsed"] = ep["elapsed"] + credit
        ep["mono"] = self.clock.monotonic()

    def elapsed(self) -> float:
        ep = self.s["episode"]
        return ep["elapsed"] + (self.clock.monotonic() - ep["mono"])

    def snapshot(self) -> dict[str, Any]:
        """The state to persist; also checkpoints the episode's elapsed time."""
        for timer in self.s["timers"].values():
            timer["left"] = max(0.0, timer["due"] - self.clock.monotonic())
        ep = self.s.get("episode")
        if ep:
            ep["elapsed"] = self.elapsed()
            ep["mono"] = self.clock.monotonic()
            ep["wall_at_save"] = self.clock.wall().isoformat()
            ep["wall_trusted"] = self.clock.trusted()
        return self.s

    # -- outputs ---------------------------------------------------------------------------
    def _id(self) -> str:
        self.s["seq"] += 1
        return str(uuid.uuid5(ID_NS, f"{self.s['instance']}:{self.s['seq']}"))

    def _event(self, type_: str, category: str, partner: str | None = None, **data: Any) -> None:
        ep = self.s.get("episode")
        self._out.append(EventOut(self._id(), type_, category, partner,
                                  ep["id"] if ep else None, data))

    def _prompt(self, partner: str, kind: str, key: str, options: int = 0,
                question_id: str | None = None, task: int | None = None) -> None:
        pid = self._id()
        self._out.append(PromptOut(pid, partner, question_id or pid, kind, key, options, task))

    def _call(self, partner: str, reason: str) -> None:
        ep = self.s["episode"]
        key = f"{ep['round']}:{partner}:{reason}"
        if key in ep["calls"]:
            return       # at most one call per partner, reason and round
        rid = self._id()
        ep["calls"][key] = rid
        recent = self.s["recent_calls"]
        recent[rid] = partner
        while len(recent) > 24:           # a day of ladders at most; dicts keep insertion order
            recent.pop(next(iter(recent)))
        self._out.append(CallOut(rid, partner, reason, ep["id"]))
        self._event("call_requested", "call", partner, reason=reason, round=ep["round"])

    def _phase(self, phase: Phase) -> None:
        if self.s["phase"] != phase:
            self.s["phase"] = phase
            self.s["since_wall"] = self.clock.wall().isoformat()

    def _take(self) -> list[Output]:
        out, self._out = self._out, []
        return out

    # -- helpers ---------------------------------------------------------------------------
    def _away(self, p: str) -> bool:
        return self.s["presence"][p] == "away" or self.s["apart"][p] is True

    def _back(self, p: str) -> bool:
        # the wearable's "apart" outweighs a tag heard at home (a stale or wrong presence); a tag
        # heard at home counts once the wearable no longer says apart (indoors it often says
        # "unknown")
        if self.s["apart"][p] is True:
            return False
        return self.s["presence"][p] == "home" or self.s["apart"][p] is False

    def _both_home(self) -> bool:
        return all(self.s["presence"][p] == "home" and self.s["apart"][p] is not True
                   for p in PARTNERS)

    def active(self) -> bool:
        return self.s["phase"] in (Phase.LEAVING, Phase.TIMEOUT, Phase.EXTENDED, Phase.CHECKIN)

    # -- inputs ----------------------------------------------------------------------------
    def handle(self, inp: Input) -> list[Output]:
        """Apply one input. An input that changes nothing leaves its reason in `ignored` (the
        hub logs it): nobody's press or answer ends, shortens or redirects a time-out (R7, R13)."""
        self.ignored = None
        if isinstance(inp, Sound):
            self.s["thermometer"] = max(0, min(10, int(inp.thermometer)))
            if inp.episode and self.s["phase"] == Phase.MONITORING and self._both_home():
                self._phase(Phase.SUGGESTION)
                self._set_timer("suggestion", self.plan.timeout.suggestion_expires_minutes * 60)
                self._event("suggestion", "sensing", thermometer=self.s["thermometer"])
        elif isinstance(inp, PanelPress):
            if not inp.long:
                self.s["short_presses"] += 1   # children's presses: ignored, counted
            elif self.s["phase"] in (Phase.MONITORING, Phase.SUGGESTION):
                self._start(source="panel", p1=None)
            else:
                self.ignored = f"a long press during {self.s['phase']} changes nothing (R7)"
        elif isinstance(inp, PartnerButton):
            if inp.partner in PARTNERS and self.s["phase"] in (Phase.MONITORING, Phase.SUGGESTION):
                self._start(source=inp.partner, p1=inp.partner)
            else:
                self.ignored = f"partner {inp.partner}'s button during {self.s['phase']} changes nothing (R7)"
        elif isinstance(inp, (PresenceSeen, ApartSeen)):
            if inp.partner in PARTNERS:
                if isinstance(inp, PresenceSeen):
                    self.s["presence"][inp.partner] = inp.presence
                else:
                    self.s["apart"][inp.partner] = inp.apart
                self._movement(inp.partner)
        elif isinstance(inp, Answer):
            before = self.s["seq"]
            self._answer(inp)
            if self.s["seq"] == before:        # nothing logged: it answered no open question
                self.ignored = (f"an answer from {inp.source} to no question open for it "
                                f"(phase {self.s['phase']})")
        elif isinstance(inp, CallOutcome):
            # whose contacts, and which request (R12); also for a result that arrives after the
            # time-out ended (the last round's calls are requested as it ends)
            partner = self.s["recent_calls"].get(inp.request_id)
            if partner is not None and inp.final:
                self._event("call_result", "call", partner, outcome=inp.outcome,
                            request_id=inp.request_id)
            elif partner is not None:     # every step of the ladder is in the log too
                self._event("call_step", "call", partner, outcome=inp.outcome,
                            request_id=inp.request_id, step=inp.step, contact=inp.contact,
                            round=inp.round)
        self._advance()
        return self._take()

    def tick(self) -> list[Output]:
        self._advance()
        return self._take()

    # -- phases ----------------------------------------------------------------------------
    def _start(self, source: str, p1: str | None) -> None:
        t = self.plan.timeout
        if self.s["timers"].pop("discuss_later", None) is not None:
            # a new time-out before the agreed talk: its own evaluation decides again
            self._event("reminder_cancelled", "evaluation", topic="discuss_later")
        leaver = t.leaver if t.leaver in PARTNERS else p1   # None: whoever leaves first
        self.s["timers"].pop("suggestion", None)
        self.s["episode"] = {
            "id": self._id(), "elapsed": 0.0, "mono": self.clock.monotonic(),
            "wall_at_save": None, "wall_trusted": self.clock.trusted(),
            "p1": p1, "leaver": leaver, "left": False, "round": 1,
            "min_total": t.minimum_minutes * 60.0, "next_checkin": t.checkin_every_minutes * 60.0,
            "reminder_at": [0.0, t.minimum_minutes * 30.0], "reminders": {"a": 0, "b": 0},
            "overdue": False, "end": None, "calls": {}, "overnight": False,
            "evaluation": None, "both_calm": None, "indoor": False,
            # episode seconds since each partner was last seen going away (None: not away)
            "away_since": {p: (0.0 if self.s["presence"][p] == "away" else None) for p in PARTNERS},
            "round_start": 0.0, "back_early": False, "periodic_q": None, "periodic_answered": [],
        }
        self._phase(Phase.LEAVING)
        self._event("started", "procedure", p1, source=source,
                    minimum_minutes=t.minimum_minutes)

    def _movement(self, p: str) -> None:
        ep = self.s.get("episode")
        if not ep or not self.active():
            return
        since = ep["away_since"]
        if self.s["presence"][p] == "away":
            if since.get(p) is None:
                since[p] = self.elapsed()
        else:
            since[p] = None
        self._departures(ep)
        leaver = ep["leaver"]
        if p == leaver and ep["left"] and self._back(p) and self.elapsed() >= ep["min_total"]:
            ep["left"] = False
            self._event("returned", "presence", p, minutes=round(self.elapsed() / 60, 1))
        if p == leaver and ep["left"] and self._back(p) and self.elapsed() < ep["min_total"]:
            ep["left"] = False
            ep["back_early"] = True
            self._event("returned_early", "presence", p, minutes=round(self.elapsed() / 60, 1))
            self._prompt(p, "notice", "notice.returned_early")
            if self.plan.calls.on_early_return:
                self._call(p, "early_return")

    def departed(self, p: str) -> bool:
        """Partner p has left: the wearable says apart, or the tags have been away for
        DEPART_CONFIRM_S with the wearable not saying otherwise."""
        if self.s["apart"][p] is True:
            return True
        ep = self.s.get("episode")
        since = ep["away_since"][p] if ep else None
        return (self.s["presence"][p] == "away" and self.s["apart"][p] is not False
                and since is not None and self.elapsed() - since >= DEPART_CONFIRM_S)

    def _departures(self, ep: dict[str, Any]) -> None:
        """Decide the leaver (once, never to move to the other partner) and see them leave."""
        if ep["leaver"] is None:
            gone = [p for p in PARTNERS if self.departed(p)]
            if len(gone) == 1:         # both gone at once says nothing about who left
                ep["leaver"] = gone[0]
        p = ep["leaver"]
        if p is not None and not ep["left"] and self.departed(p):
            ep["left"] = True
            ep["back_early"] = False
            self._event("left", "presence", p)
            if self.s["phase"] == Phase.LEAVING:
                self._phase(Phase.TIMEOUT)

    def _set_timer(self, name: str, seconds: float) -> None:
        self.s["timers"][name] = {"due": self.clock.monotonic() + seconds, "left": seconds}

    def _fired(self, name: str) -> bool:
        timer = self.s["timers"].get(name)
        if timer is None or self.clock.monotonic() < timer["due"]:
            return False
        del self.s["timers"][name]
        return True

    def _advance(self) -> None:
        if self._fired("discuss_later"):
            self._event("reminder", "evaluation", topic="discuss_later")
            for p in PARTNERS:
                self._prompt(p, "notice", "notice.discuss_topic_now")
        phase = self.s["phase"]
        if phase == Phase.SUGGESTION:
            if "suggestion" not in self.s["timers"] or self._fired("suggestion"):
                self._phase(Phase.MONITORING)
                self._event("suggestion_expired", "sensing")
            return
        ep = self.s.get("episode")
        if not ep:
            return
        if self.active():
            self._departures(ep)   # a departure is confirmed by time as well as by input
        e = self.elapsed()
        t = self.plan.timeout
        if phase == Phase.LEAVING and e >= t.leave_grace_minutes * 60:
            if not ep["overdue"]:
                ep["overdue"] = True
                ep["indoor"] = t.indoor_separation
                self._event("leave_overdue", "procedure", ep["leaver"], indoor=t.indoor_separation)
                if ep["leaver"]:
                    self._prompt(ep["leaver"], "notice",
                                 "notice.separate_indoors" if t.indoor_separation else "notice.please_leave")
            self._phase(Phase.TIMEOUT)
        if self.s["phase"] in (Phase.LEAVING, Phase.TIMEOUT, Phase.EXTENDED):
            for i, at in enumerate(ep["reminder_at"]):
                if at is not None and e >= at:
                    ep["reminder_at"][i] = None
                    for p in PARTNERS:
                        n = len(self.plan.partners[p].calming_tasks)
                        ep["reminders"][p] += 1
                        self._prompt(p, "reminder", "reminder.calming_task",
                                     task=(ep["reminders"][p] - 1) % n + 1)
            if e >= ep["next_checkin"] and e < ep["min_total"]:
                ep["next_checkin"] += t.checkin_every_minutes * 60
                qid = self._id()
                for p in PARTNERS:
                    self._prompt(p, "checkin", "checkin.how_do_you_feel", 3, question_id=qid)
                self._event("checkin_requested", "checkin", final=False)
                ep["periodic_q"] = qid
                ep["periodic_answered"] = []
            if e >= ep["min_total"]:
                qid = self._id()
                ep["end"] = {"q": qid, "start": e, "sent": 0, "answers": {}}
                self._phase(Phase.CHECKIN)
                self._event("checkin_requested", "checkin", final=True, round=ep["round"])
        if self.s["phase"] == Phase.CHECKIN:
            end = ep["end"]
            since = e - end["start"]
            while end["sent"] < len(END_PROMPTS_AT) and since >= END_PROMPTS_AT[end["sent"]]:
                end["sent"] += 1
                for p in PARTNERS:
                    if p not in end["answers"]:
                        self._prompt(p, "checkin", "checkin.how_do_you_feel", 3, question_id=end["q"])
            if len(end["answers"]) == 2 or since >= END_DEADLINE:
                self._resolve_end()
        if self.s["phase"] == Phase.EVALUATION:
            ev = ep["evaluation"]
            if all(ev["step"][p] >= len(EVALUATION) for p in PARTNERS) \
                    or e - ev["start"] >= EVALUATION_TIMEOUT:
                self._evaluation_outcome(ep)
                self._event("ended", "procedure", outcome="evaluated", rounds=ep["round"],
                            minutes=round(e / 60, 1), unanswered=sum(
                                len(EVALUATION) - min(ev["step"][p], len(EVALUATION)) for p in PARTNERS))
                self.s["episode"] = None
                self._phase(Phase.MONITORING)

    def _resolve_end(self) -> None:
        ep = self.s["episode"]
        end = ep["end"]
        answers = end["answers"]
        calls = self.plan.calls
        if all(answers.get(p) == 1 for p in PARTNERS):
            ep["both_calm"] = True
            self._event("both_calm", "checkin", round=ep["round"])
            self._event("may_meet_again", "procedure")
            for p in PARTNERS:
                self._prompt(p, "notice", "notice.may_meet_again")
            self._phase(Phase.EVALUATION)
            ep["evaluation"] = {"start": self.elapsed(), "step": {"a": 0, "b": 0}, "q": {}}
            for p in PARTNERS:
                self._ask_evaluation(p)
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
        if ep["round"] >= t.rounds_before_overnight + MORE_ROUNDS_AFTER_OVERNIGHT:
            # Every escalation ends: after the overnight suggestion and more rounds with the
            # contacts called, the hub stops counting and leaves it to the people involved.
            self._event("ended", "procedure", outcome="handed_to_contacts", rounds=ep["round"],
                        minutes=round(self.elapsed() / 60, 1))
            for p in PARTNERS:   # say only what happened: were this partner's contacts asked?
                called = any(key.split(":")[1] == p for key in ep["calls"])
                self._prompt(p, "notice", "notice.handed_to_contacts" if called else "notice.ended_no_calls")
            self.s["episode"] = None
            self._phase(Phase.MONITORING)
            return
        ep["round"] += 1
        e = self.elapsed()
        ep["min_total"] = e + t.extension_minutes * 60.0
        ep["round_start"] = e
        ep["next_checkin"] = e + t.checkin_every_minutes * 60.0
        # calming reminders in every round: at its start and half-way, as in the first
        ep["reminder_at"] = [e, e + t.extension_minutes * 30.0]
        ep["end"] = None
        ep["periodic_q"] = None          # a question of the last round is no longer open
        self._phase(Phase.EXTENDED)
        self._event("extended", "procedure", round=ep["round"], minutes=t.extension_minutes)
        leaver = ep["leaver"]
        if leaver is not None and not self._away(leaver) and not self.departed(leaver):
            # back after the minimum (allowed), but the time-out goes on: leave again; a stay
            # now counts as a new departure to make, not as an early return
            ep["left"] = False
            ep["back_early"] = False
            self._prompt(leaver, "notice", "notice.separate_indoors" if t.indoor_separation
                         else "notice.leave_again")
        if ep["round"] > t.rounds_before_overnight and not ep["overnight"]:
            ep["overnight"] = True
            self._event("overnight_suggested", "procedure", round=ep["round"])
            for p in PARTNERS:
                self._prompt(p, "notice", "notice.consider_overnight_elsewhere")

    def _lead(self, ep: dict[str, Any]) -> str | None:
        lead = self.plan.lead_when_disagreeing
        if lead in PARTNERS:
            return lead
        if ep["leaver"] is None:
            return None
        return ep["leaver"] if lead == "leaver" else next(p for p in PARTNERS if p != ep["leaver"])

    def _evaluation_outcome(self, ep: dict[str, Any]) -> None:
        """What the household takes from the evaluation. Whether and when to discuss the topic:
        the agreed answer, or the plan's lead's when they differ (with no lead known, the more
        cautious one)."""
        answers = ep["evaluation"].get("answers", {})   # none when nobody answered in time
        decided: dict[str, Any] = {}
        for key in ("evaluation.discuss",):
            given = {p: answers[p][key] for p in PARTNERS if key in answers.get(p, {})}
            if not given:
                continue
            if len(set(given.values())) == 1:
                decided[key] = (next(iter(given.values())), "agreed")
            else:
                lead = self._lead(ep)
                if lead in given:
                    decided[key] = (given[lead], f"lead_{lead}")
                else:
                    decided[key] = (max(given.values()), "cautious")
        data: dict[str, Any] = {}
        # Needing more time is nobody's to overrule: one partner's "yes" counts.
        said = {key: [answers[p][key] for p in PARTNERS if key in answers.get(p, {})]
                for key, _ in EVALUATION}
        if said["evaluation.long_enough"]:
            data["long_enough"] = all(c == 1 for c in said["evaluation.long_enough"])
        if said["evaluation.more_time"]:
            data["more_time"] = any(c == 2 for c in said["evaluation.more_time"])
        if "evaluation.discuss" in decided:
            choice, how = decided["evaluation.discuss"]
            data["discuss"] = {1: "now", 2: "later", 3: "next_session"}[choice]
            data["decided_by"] = how
            if choice == 2:
                self._set_timer("discuss_later", self.plan.timeout.discuss_later_minutes * 60)
                data["reminder_minutes"] = self.plan.timeout.discuss_later_minutes
            elif choice == 3:
                # a count and a date for the therapist, never the content
                self.s["topics_for_session"] += 1
                data["topics_for_session"] = self.s["topics_for_session"]
                today = self.clock.wall().date()
                upcoming = [d for d in self.plan.evaluation_dates if d >= today]
                if upcoming:
                    data["session_date"] = upcoming[0].isoformat()
        self._event("evaluation_outcome", "evaluation", **data)
        if data.get("more_time"):
            for p in PARTNERS:
                self._prompt(p, "notice", "notice.take_more_time")

    def _ask_evaluation(self, p: str) -> None:
        ev = self.s["episode"]["evaluation"]
        step = ev["step"][p]
        if step < len(EVALUATION):
            key, options = EVALUATION[step]
            qid = ev["q"].get(key) or self._id()
            ev["q"][key] = qid
            self._prompt(p, "evaluation", key, options, question_id=qid)

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
        ep = self.s.get("episode")
        if not ep or a.choice not in (1, 2, 3):
            return
        sources: list[str] = [a.source] if a.source in PARTNERS else []
        if a.source == "panel":
            who = self.panel_partner()
            if who is None:
                reason = ("both partners answer on their own device"
                          if all(self.plan.own_device(p) for p in PARTNERS)
                          else "the partner who answers on the panel is away")
                self._event("panel_answer_ignored", "checkin", reason=reason)
                return
            sources = [who]
        for p in sources:
            if self.s["phase"] == Phase.CHECKIN and ep["end"] and a.question_id == ep["end"]["q"]:
                if p not in ep["end"]["answers"]:
                    ep["end"]["answers"][p] = a.choice
                    self._event("checkin_answered", "checkin", p, choice=a.choice, final=True)
            elif self.s["phase"] in (Phase.TIMEOUT, Phase.EXTENDED, Phase.LEAVING) \
                    and a.question_id == ep.get("periodic_q") \
                    and p not in ep["periodic_answered"]:
                ep["periodic_answered"].append(p)     # one answer per partner and question
                self._event("checkin_answered", "checkin", p, choice=a.choice, final=False)
            elif self.s["phase"] == Phase.EVALUATION:
                ev = ep["evaluation"]
                step = ev["step"][p]
                if step < len(EVALUATION):
                    key, options = EVALUATION[step]
                    if a.question_id == ev["q"].get(key) and a.choice <= options:
                        ev["step"][p] += 1
                        ev.setdefault("answers", {}).setdefault(p, {})[key] = a.choice
                        self._event("evaluation", "evaluation", p, question=key, choice=a.choice)
                        self._ask_evaluation(p)

    # -- queries (the hub, procedure-replay and tests ask these instead of reading `s`) -----
    @property
    def phase(self) -> str:
        return self.s["phase"]

    def open_question(self, partner: str) -> tuple[str, int] | None:
        """(question id, number of options) a partner's own device may answer now: the end
        check-in, the periodic check-in during the time-out, or their next evaluation question."""
        ep = self.s.get("episode")
        if not ep:
            return None
        phase = self.s["phase"]
        if phase == Phase.CHECKIN and ep.get("end"):
            return ep["end"]["q"], 3
        if phase in (Phase.LEAVING, Phase.TIMEOUT, Phase.EXTENDED) and ep.get("periodic_q"):
            return ep["periodic_q"], 3
        if phase == Phase.EVALUATION and ep.get("evaluation"):
            ev = ep["evaluation"]
            step = ev["step"][partner]
            if step < len(EVALUATION):
                key, options = EVALUATION[step]
                if key in ev["q"]:
                    return ev["q"][key], options
        return None

    def apart(self, partner: str) -> bool | None:
        """The partner's wearable's last verdict: True (>= 100 m from home), False, None (unknown)."""
        return self.s["apart"].get(partner)

    def pending(self) -> bool:
        """Something is still due with no input: a suggestion expiring, a discuss-later reminder."""
        return bool(self.s["timers"])

    # -- what the panel shows --------------------------------------------------------------
    def public_state(self) -> dict[str, Any]:
        """Fields of the retained `state`; nothing of one partner's answers (R9)."""
        from datetime import timedelta
        ep = self.s.get("episode")
        out: dict[str, Any] = {
            "phase": self.s["phase"], "since": self.s["since_wall"], "ends_at": None,
            "leaver": None, "thermometer": self.s["thermometer"],
            "suggestion": self.s["phase"] == Phase.SUGGESTION, "both_calm": None, "question": None,
            "time_left": None, "returned_early": False,
        }
        if ep:
            out["leaver"] = ep["leaver"]
            if self.s["phase"] in (Phase.LEAVING, Phase.TIMEOUT, Phase.EXTENDED):
                remaining = max(0.0, ep["min_total"] - self.elapsed())
                out["ends_at"] = (self.clock.wall() + timedelta(seconds=remaining)).isoformat()
                length = ep["min_total"] - ep["round_start"]
                out["time_left"] = min(10, math.ceil(10 * remaining / length)) if length > 0 else 0
                out["returned_early"] = ep["back_early"]
            if ep["both_calm"]:
                out["both_calm"] = True
            who = self.panel_partner()   # the mood buttons light only for a press that counts
            if who is None:
                pass
            elif self.s["phase"] == Phase.CHECKIN and ep["end"] and who not in ep["end"]["answers"]:
                out["question"] = {"id": ep["end"]["q"], "kind": "checkin",
                                   "key": "checkin.how_do_you_feel", "options": 3}
            elif self.s["phase"] == Phase.EVALUATION:
                ev = ep["evaluation"]
                step = ev["step"][who]
                if step < len(EVALUATION):
                    key, options = EVALUATION[step]
                    if key in ev["q"]:
                        out["question"] = {"id": ev["q"][key], "kind": "evaluation", "key": key,
                                           "options": options}
        return out
