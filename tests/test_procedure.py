"""The procedure state machine, phase by phase, on a manual clock (20 minutes take no time)."""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from core.clock import ManualClock
from firmware.hub.plan import load_plan, validate_plan
from firmware.hub.procedure import (
    DEPART_CONFIRM_S,
    Answer,
    ApartSeen,
    CallOut,
    EventOut,
    PanelPress,
    PartnerButton,
    PresenceSeen,
    Procedure,
    PromptOut,
    Sound,
)

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "household.toml"
TODAY = dt.date(2026, 11, 21)


def make_plan(**timeout):
    import tomllib
    data = tomllib.loads(EXAMPLE.read_text())
    data["timeout"].update(timeout)
    return validate_plan(data, today=TODAY)


class Run:
    """A procedure plus everything it said, in order."""

    def __init__(self, plan=None, clock=None):
        self.plan = plan or load_plan(EXAMPLE, today=TODAY)
        self.clock = clock or ManualClock()
        self.p = Procedure(self.plan, self.clock)
        self.out: list = []

    def send(self, inp):
        self.out += self.p.handle(inp)
        return self

    def wait(self, seconds: float, step: float = 1.0):
        t = 0.0
        while t < seconds:
            self.clock.advance(step)
            t += step
            self.out += self.p.tick()
        return self

    @property
    def phase(self):
        return self.p.phase

    def events(self, type_=None):
        return [o for o in self.out if isinstance(o, EventOut) and (type_ is None or o.type == type_)]

    def calls(self):
        return [o for o in self.out if isinstance(o, CallOut)]

    def prompts(self, partner=None, kind=None):
        return [o for o in self.out if isinstance(o, PromptOut)
                and (partner is None or o.partner == partner) and (kind is None or o.kind == kind)]

    def both_home(self):
        return self.send(PresenceSeen("a", "home")).send(PresenceSeen("b", "home"))

    def answer_end(self, a=None, b=None):
        q = self.p.open_question("a")[0]
        if a is not None:
            self.send(Answer("a", q, a))
        if b is not None:
            self.send(Answer("b", q, b))
        return self


def started(leaver="a") -> Run:
    r = Run().both_home()
    r.send(PartnerButton(leaver))
    r.send(PresenceSeen(leaver, "away"))
    return r


def test_suggestion_needs_both_home_and_expires():
    r = Run().send(PresenceSeen("a", "home"))
    r.send(Sound(8, episode=True))
    assert r.phase == "monitoring" and not r.events("suggestion")
    r.send(PresenceSeen("b", "home")).send(Sound(8, episode=True))
    assert r.phase == "suggestion" and r.p.public_state()["suggestion"] is True
    r.wait(5 * 60 - 2)
    assert r.phase == "suggestion"
    r.wait(3)
    assert r.phase == "monitoring" and r.events("suggestion_expired")
    assert not r.events("started"), "the hub never starts a time-out by itself"


def test_long_press_starts_and_the_first_to_leave_is_the_leaver():
    r = Run().both_home().send(Sound(8, episode=True)).send(PanelPress(long=True))
    assert r.phase == "leaving" and r.events("started")[0].data["source"] == "panel"
    r.wait(60).send(PresenceSeen("b", "away"))
    r.wait(DEPART_CONFIRM_S - 2)
    assert r.phase == "leaving" and not r.events("left"), "away for less than the confirmation"
    r.wait(3)
    assert r.phase == "timeout" and r.p.public_state()["leaver"] == "b"
    assert r.events("left")[0].partner == "b"


def test_a_false_away_of_the_partner_at_home_never_makes_them_the_leaver():
    """Issue 13: b's tag falls silent a minute in the bathroom, is heard again, then a really
    leaves: a is the leaver, b is never 'left' or 'returned_early', nobody's contacts are called."""
    r = Run().both_home().send(PanelPress(long=True)).wait(30)
    r.send(PresenceSeen("b", "away")).wait(60).send(PresenceSeen("b", "home"))
    r.wait(30).send(PresenceSeen("a", "away")).wait(DEPART_CONFIRM_S + 1)
    assert r.p.public_state()["leaver"] == "a" and [e.partner for e in r.events("left")] == ["a"]
    r.wait(20 * 60)
    assert not r.events("returned_early") and not r.calls()


def test_once_decided_the_leaver_never_moves_to_the_other_partner():
    r = Run().both_home().send(PanelPress(long=True))
    r.send(PresenceSeen("a", "away")).wait(DEPART_CONFIRM_S + 1)
    assert r.p.public_state()["leaver"] == "a"
    r.send(PresenceSeen("a", "home")).send(PresenceSeen("b", "away")).wait(10 * 60)
    assert r.p.public_state()["leaver"] == "a"
    assert {e.partner for e in r.events("left") + r.events("returned_early")} == {"a"}
    assert {c.partner for c in r.calls()} == {"a"}, "only the partner who came back early"


def test_both_away_at_once_decides_nobody_and_the_wearable_decides_at_once():
    r = Run().both_home().send(PanelPress(long=True))
    r.send(PresenceSeen("a", "away")).send(PresenceSeen("b", "away")).wait(DEPART_CONFIRM_S + 1)
    assert r.p.public_state()["leaver"] is None and not r.events("left")
    r2 = Run().both_home().send(PanelPress(long=True)).send(ApartSeen("b", True))
    assert r2.p.public_state()["leaver"] == "b" and r2.events("left")[0].partner == "b"


def test_short_presses_are_counted_and_start_nothing():
    r = Run().both_home()
    for _ in range(5):
        r.send(PanelPress(long=False))
    assert r.phase == "monitoring" and r.p.short_presses == 5 and not r.events("started")


def test_own_button_names_p1_and_reminders_name_own_tasks():
    r = Run().both_home().send(PartnerButton("b"))
    assert r.events("started")[0].partner == "b" and r.p.leaver() == "b"
    reminders = r.prompts(kind="reminder")
    assert {p.partner for p in reminders} == {"a", "b"} and all(p.task == 1 for p in reminders)


def test_not_leaving_in_the_grace_period_is_logged_and_the_time_out_goes_on():
    r = Run().both_home().send(PartnerButton("a")).wait(5 * 60 + 1)
    assert r.events("leave_overdue") and r.phase == "timeout"
    assert any(p.key == "notice.please_leave" for p in r.prompts("a"))
    r2 = Run(make_plan(indoor_separation=True)).both_home().send(PartnerButton("a")).wait(301)
    assert any(p.key == "notice.separate_indoors" for p in r2.prompts("a"))


def test_never_ends_before_the_minimum_and_checks_in_on_the_way():
    r = started().wait(20 * 60 - 2)
    assert r.phase == "timeout"
    assert len(r.events("checkin_requested")) == 1      # at 10 minutes
    assert len(r.prompts("a", "checkin")) == 1 and len(r.prompts("b", "checkin")) == 1
    r.wait(3)
    assert r.phase == "checkin" and r.events("checkin_requested")[-1].data["final"] is True
    end_q = r.p.open_question("a")[0]
    assert {p.partner for p in r.prompts(kind="checkin") if p.question_id == end_q} == {"a", "b"}


def test_both_calm_then_meet_again_evaluation_and_back_to_monitoring():
    r = started().wait(20 * 60 + 1).answer_end(a=1, b=1)
    assert r.events("both_calm") and r.events("may_meet_again") and r.phase == "evaluation"
    assert r.p.public_state()["both_calm"] is True
    for _ in range(3):
        for p in "ab":
            q = r.prompts(p, "evaluation")[-1]
            r.send(Answer(p, q.question_id, 1))
    assert r.phase == "monitoring"
    assert r.events("ended")[0].data["outcome"] == "evaluated"
    assert len(r.events("evaluation")) == 6
    assert not r.calls()


def plan_a_without_device():
    """The example plan, but partner a has neither a phone for SMS nor a wearable: a answers on
    the shared panel, b on their wearable."""
    import tomllib
    data = tomllib.loads(EXAMPLE.read_text())
    data["partners"]["a"]["sms_checkins"] = False
    return validate_plan(data, today=TODAY)


def test_with_both_partners_on_their_own_device_the_panel_answers_for_nobody():
    r = started("a").wait(20 * 60 + 1)
    assert r.phase == "checkin" and r.p.public_state()["question"] is None   # mood buttons dark
    r.send(Answer("panel", r.p.open_question("a")[0], 1))
    assert r.events("panel_answer_ignored")[0].data["reason"] == "both partners answer on their own device"
    assert not r.events("checkin_answered")
    r.answer_end(a=3, b=1)
    assert [(c.partner, c.reason) for c in r.calls()] == [("a", "not_calm")]


def test_the_panel_never_pre_empts_a_partners_own_answer():
    """Issue 13: panel 'calm', then a 'not calm' on a's own device, b 'calm': a's contacts are
    called; whoever stands at the panel cannot silence a partner's escalation (R7, R9)."""
    r = Run(plan_a_without_device()).both_home().send(PartnerButton("b"))
    r.send(ApartSeen("b", True)).wait(20 * 60 + 1)
    q = r.p.public_state()["question"]
    assert q and q["kind"] == "checkin"         # for a, the partner without a device
    r.send(Answer("panel", q["id"], 1)).send(Answer("b", q["id"], 3))
    assert [(e.partner, e.data["choice"]) for e in r.events("checkin_answered")] == [("a", 1), ("b", 3)]
    assert [(c.partner, c.reason) for c in r.calls()] == [("b", "not_calm")]
    assert not r.events("may_meet_again")


def test_a_leaver_without_a_device_answers_on_the_panel_once_home():
    """Issue 13: a leaver with no phone and no wearable who comes home after the minimum and
    presses 'calm' is counted; while they are out, the partner at home cannot answer for them."""
    r = Run(plan_a_without_device()).both_home().send(PartnerButton("a"))
    r.send(PresenceSeen("a", "away")).wait(20 * 60 + 1)
    assert r.phase == "checkin" and r.p.public_state()["question"] is None
    r.send(Answer("panel", r.p.open_question("a")[0], 1))
    assert r.events("panel_answer_ignored")[0].data["reason"] == "the partner who answers on the panel is away"
    r.send(PresenceSeen("a", "home"))
    assert not r.events("returned_early")                  # after the minimum
    r.send(Answer("panel", r.p.public_state()["question"]["id"], 1)).answer_end(b=1)
    assert r.events("may_meet_again") and not r.calls() and not r.events("checkin_unanswered")


def test_evaluation_answers_are_per_partner_and_more_time_from_either_wins():
    """Issue 13: one panel press answers only its partner's question; b's 'more time' stands."""
    r = Run(plan_a_without_device()).both_home().send(PartnerButton("b"))
    r.send(ApartSeen("b", True)).wait(20 * 60 + 1)
    r.send(Answer("panel", r.p.public_state()["question"]["id"], 1)).answer_end(b=1)
    assert r.phase == "evaluation"
    for choice in (1, 1, 3):   # a at the panel: long enough yes, more time no, discuss next session
        r.send(Answer("panel", r.p.public_state()["question"]["id"], choice))
    assert [e.partner for e in r.events("evaluation")] == ["a", "a", "a"] and r.phase == "evaluation"
    assert r.p.public_state()["question"] is None          # a is done; b answers on the wearable
    for choice in (1, 2, 3):
        r.send(Answer("b", r.prompts("b", "evaluation")[-1].question_id, choice))
    out = r.events("evaluation_outcome")[0].data
    assert out["more_time"] is True and any(p.key == "notice.take_more_time" for p in r.prompts("a"))


def test_early_return_warns_and_calls_once_and_the_returner_cannot_cancel_it():
    r = started("a").wait(8 * 60).send(PresenceSeen("a", "home"))
    assert r.events("returned_early")[0].partner == "a"
    assert any(p.key == "notice.returned_early" for p in r.prompts("a"))
    assert [(c.partner, c.reason) for c in r.calls()] == [("a", "early_return")]
    # R7: whatever partner a does next, the call stands and is not repeated
    r.send(PartnerButton("a")).send(PanelPress(long=True)).send(PresenceSeen("a", "away"))
    r.send(PresenceSeen("a", "home"))
    r.send(Answer("a", "whatever", 1))
    assert len(r.calls()) == 1 and r.p.calls_requested() == 1
    assert r.phase == "timeout"


def test_no_call_on_early_return_when_the_plan_says_no():
    import tomllib
    data = tomllib.loads(EXAMPLE.read_text())
    data["calls"]["on_early_return"] = False
    r = Run(validate_plan(data, today=TODAY)).both_home().send(PartnerButton("a"))
    r.send(PresenceSeen("a", "away")).wait(DEPART_CONFIRM_S + 60).send(PresenceSeen("a", "home"))
    assert r.events("returned_early") and not r.calls()


def test_not_calm_extends_and_calls_that_partners_contacts():
    r = started().wait(20 * 60 + 1).answer_end(a=1, b=3)
    assert [(c.partner, c.reason) for c in r.calls()] == [("b", "not_calm")]
    assert r.phase == "extended" and r.events("extended")[0].data["round"] == 2
    assert r.p.public_state()["both_calm"] is None


def test_no_answer_three_prompts_over_five_minutes_then_a_call():
    r = started().wait(20 * 60 + 1).answer_end(a=1)
    r.wait(297)
    assert r.phase == "checkin"
    end_prompts_b = [p for p in r.prompts("b", "checkin") if p.question_id == r.p.open_question("a")[0]]
    assert len(end_prompts_b) == 3
    r.wait(2)
    assert [(c.partner, c.reason) for c in r.calls()] == [("b", "no_answer")]
    assert r.events("checkin_unanswered")[0].partner == "b" and r.phase == "extended"


def test_repeated_rounds_suggest_overnight_and_then_end():
    r = started()
    r.wait(20 * 60 + 1).answer_end(a=3, b=3)          # round 1 -> 2
    r.wait(20 * 60 + 1).answer_end(a=3, b=3)          # round 2 -> 3: overnight suggested
    assert r.events("overnight_suggested")
    assert any(p.key == "notice.consider_overnight_elsewhere" for p in r.prompts("a"))
    r.wait(20 * 60 + 1).answer_end(a=3, b=3)          # round 3 -> ends, handed to contacts
    assert r.phase == "monitoring"
    assert r.events("ended")[0].data["outcome"] == "handed_to_contacts"
    assert len(r.calls()) == 6                        # both partners, three rounds, once each
    assert {p.partner for p in r.prompts(kind="notice") if p.key == "notice.handed_to_contacts"} == {"a", "b"}


def test_the_last_notice_says_only_what_happened():
    """Issue 13: three rounds of 'a bit tense' call nobody, so nobody is told their contacts were
    called; with only a 'not calm', only a is told so."""
    r = started()
    for _ in range(3):
        r.wait(20 * 60 + 1).answer_end(a=2, b=2)
    assert r.events("ended")[0].data["outcome"] == "handed_to_contacts" and not r.calls()
    last = {p.partner: p.key for p in r.prompts(kind="notice")
            if p.key in ("notice.handed_to_contacts", "notice.ended_no_calls")}
    assert last == {"a": "notice.ended_no_calls", "b": "notice.ended_no_calls"}
    r2 = started()
    for _ in range(3):
        r2.wait(20 * 60 + 1).answer_end(a=3, b=2)
    last2 = {p.partner: p.key for p in r2.prompts(kind="notice")
             if p.key in ("notice.handed_to_contacts", "notice.ended_no_calls")}
    assert last2 == {"a": "notice.handed_to_contacts", "b": "notice.ended_no_calls"}
    assert {c.partner for c in r2.calls()} == {"a"}


def test_a_wall_clock_jump_never_shortens_a_time_out():
    r = started().wait(60)
    r.clock.jump_wall(+3 * 3600)     # NTP finally sets the clock
    r.wait(10)
    assert r.phase in ("leaving", "timeout")
    r.wait(20 * 60 - 75)
    assert r.phase == "timeout" and r.events("left")


@pytest.mark.parametrize("trusted, expect_phase", [(True, "checkin"), (False, "timeout")])
def test_power_cut_downtime_counts_only_with_a_trusted_clock(trusted, expect_phase):
    r = started().wait(10 * 60)
    snap = json.loads(json.dumps(r.p.snapshot()))
    r.clock.reboot(down_seconds=11 * 60, trusted=trusted)
    p2 = Procedure(r.plan, r.clock, snap)
    p2.tick()
    r.clock.advance(1)
    p2.tick()
    assert p2.phase == expect_phase


def test_restart_resumes_with_the_remaining_time_and_no_repeated_call():
    r = started("a").wait(5 * 60).send(PresenceSeen("a", "home"))
    assert len(r.calls()) == 1
    snap = json.loads(json.dumps(r.p.snapshot()))
    r.clock.reboot(down_seconds=30, trusted=True)
    p2 = Procedure(r.plan, r.clock, snap)
    remaining = dt.datetime.fromisoformat(p2.public_state()["ends_at"]) - r.clock.wall()
    assert abs(remaining.total_seconds() - (15 * 60 - 30)) < 2
    again = p2.handle(PresenceSeen("a", "home"))
    assert not [o for o in again if isinstance(o, CallOut)]


def evaluate(r: Run, a: tuple[int, int, int], b: tuple[int, int, int]) -> Run:
    for i in range(3):
        for p, answers in (("a", a), ("b", b)):
            q = r.prompts(p, "evaluation")[-1]
            r.send(Answer(p, q.question_id, answers[i]))
    return r


def test_when_the_partners_disagree_the_plans_lead_decides():
    # example plan: the partner who stayed home (b, since a left) leads
    r = evaluate(started("a").wait(20 * 60 + 1).answer_end(a=1, b=1), a=(1, 1, 1), b=(1, 1, 3))
    out = r.events("evaluation_outcome")[0].data
    assert out["discuss"] == "next_session" and out["decided_by"] == "lead_b"
    assert out["topics_for_session"] == 1 and out["session_date"] == "2027-01-15"
    r2 = evaluate(started("a").wait(20 * 60 + 1).answer_end(a=1, b=1), a=(1, 2, 1), b=(1, 1, 1))
    out2 = r2.events("evaluation_outcome")[0].data
    assert out2["discuss"] == "now" and out2["decided_by"] == "agreed" and out2["more_time"] is True
    assert any(p.key == "notice.take_more_time" for p in r2.prompts("b"))


def test_discuss_later_reminds_both_at_the_agreed_time_even_after_a_restart():
    r = evaluate(started("a").wait(20 * 60 + 1).answer_end(a=1, b=1), a=(1, 1, 2), b=(1, 1, 2))
    assert r.phase == "monitoring"
    assert r.events("evaluation_outcome")[0].data["reminder_minutes"] == 120
    r.wait(60 * 60)
    snap = json.loads(json.dumps(r.p.snapshot()))
    r.clock.reboot(down_seconds=5, trusted=True)
    r.p = Procedure(r.plan, r.clock, snap)
    r.wait(60 * 60 - 10)
    assert not any(p.key == "notice.discuss_topic_now" for p in r.prompts("a"))
    r.wait(20)
    assert {p.partner for p in r.prompts(kind="notice") if p.key == "notice.discuss_topic_now"} == {"a", "b"}


def test_calming_reminders_come_in_every_round():
    r = started().wait(20 * 60 + 1)
    first = len(r.prompts("a", "reminder"))
    assert first == 2                                    # at the start and half-way
    r.answer_end(a=2, b=2).wait(20 * 60 - 5)             # the extension round (20 minutes)
    tasks = [p.task for p in r.prompts("a", "reminder")]
    assert len(tasks) == 4 and tasks == [1, 2, 3, 1]      # a's own tasks, in turn


def test_an_evaluation_nobody_answers_ends_after_its_time_without_a_crash():
    r = started().wait(20 * 60 + 1).answer_end(a=1, b=1)
    assert r.phase == "evaluation"
    r.wait(30 * 60 + 1)
    assert r.phase == "monitoring"
    assert r.events("ended")[0].data["unanswered"] == 6 and r.events("evaluation_outcome")


def test_a_call_result_names_whose_contacts_and_also_arrives_after_the_time_out_ended():
    """R12: the log tells whose contacts acknowledged; the last round's calls are requested as
    the time-out ends, so their results come later."""
    from firmware.hub.procedure import CallOutcome
    r = started()
    for _ in range(3):
        r.wait(20 * 60 + 1).answer_end(a=3, b=1)
    assert r.phase == "monitoring" and len(r.calls()) == 3
    last = r.calls()[-1]
    r.send(CallOutcome(last.id, "acknowledged", True))
    res = r.events("call_result")
    assert [(e.partner, e.data["outcome"], e.data["request_id"]) for e in res] == \
        [("a", "acknowledged", last.id)]
    r.send(CallOutcome("not-a-request-of-ours", "acknowledged", True))
    assert len(r.events("call_result")) == 1


def test_a_new_time_out_cancels_the_reminder_to_discuss_later():
    """Replay finding: 'discuss the topic now' fired in the middle of a new time-out."""
    r = evaluate(started("a").wait(20 * 60 + 1).answer_end(a=1, b=1), a=(1, 1, 2), b=(1, 1, 2))
    assert r.phase == "monitoring"
    r.wait(60 * 60).both_home().send(PartnerButton("b"))
    assert r.events("reminder_cancelled")
    r.wait(61 * 60)
    assert not any(p.key == "notice.discuss_topic_now" for p in r.prompts())


def test_a_leaver_back_after_the_minimum_is_logged_and_asked_to_leave_again_when_extended():
    """Replay findings: a return after the minimum left no event, and a leaver already home when
    the time-out was extended got no word."""
    r = started("a").wait(20 * 60 + 5)
    assert r.phase == "checkin"
    r.send(PresenceSeen("a", "home"))
    assert r.events("returned")[0].partner == "a" and not r.events("returned_early") and not r.calls()
    r.answer_end(a=1, b=2)                               # b is not calm yet: extended
    assert r.phase == "extended"
    assert [p.key for p in r.prompts("a", "notice")][-1] == "notice.leave_again"
    r.send(PresenceSeen("a", "away")).wait(DEPART_CONFIRM_S + 1)
    assert [e.partner for e in r.events("left")] == ["a", "a"]


def test_a_periodic_check_in_counts_once_per_partner_and_closes_with_its_round():
    r = started("a").wait(10 * 60 + 5)
    q = r.prompts("b", "checkin")[-1].question_id
    r.send(Answer("b", q, 2)).send(Answer("b", q, 3))
    assert [(e.partner, e.data["choice"]) for e in r.events("checkin_answered")] == [("b", 2)]
    r.wait(10 * 60).answer_end(a=1, b=2)                 # extended: round 1's question closes
    assert r.phase == "extended"
    r.send(Answer("a", q, 1))
    assert len(r.events("checkin_answered")) == 3        # b's periodic, a's and b's end answers


def test_every_step_of_the_ladder_is_logged_with_the_contact_index_never_a_number():
    from firmware.hub.procedure import CallOutcome
    r = started("a").wait(8 * 60).send(PresenceSeen("a", "home"))
    call = r.calls()[0]
    r.send(CallOutcome(call.id, "no_answer", False, step="dial", contact=1, round=1))
    r.send(CallOutcome(call.id, "acknowledged", False, step="dial", contact=2, round=1))
    r.send(CallOutcome(call.id, "acknowledged", True, step="ladder"))
    steps = [(e.partner, e.data["contact"], e.data["outcome"]) for e in r.events("call_step")]
    assert steps == [("a", 1, "no_answer"), ("a", 2, "acknowledged")]
    assert [e.data["outcome"] for e in r.events("call_result")] == ["acknowledged"]


def test_a_snapshot_saved_by_the_hub_before_procedure_v2_resumes_its_time_out():
    """tests/data/procedure_snapshot_v1.json was written by the previous procedure (commit
    c15552c) 11 minutes into a time-out that partner a started and left for."""
    from firmware.hub.procedure import SNAPSHOT_VERSION, SnapshotError
    snap = json.loads((Path(__file__).parent / "data" / "procedure_snapshot_v1.json").read_text())
    assert "version" not in snap
    clock = ManualClock()
    clock.reboot(down_seconds=30, trusted=True)
    r = Run(clock=clock)
    r.p = Procedure(r.plan, clock, snap)
    ps = r.p.public_state()
    assert ps["phase"] == "timeout" and ps["leaver"] == "a" and not ps["returned_early"]
    assert 8 * 60 <= (dt.datetime.fromisoformat(ps["ends_at"]) - clock.wall()).total_seconds() <= 9 * 60 + 1
    assert ps["time_left"] == 5
    r.send(Answer("b", snap["episode"]["periodic_q"], 2))      # the open periodic check-in
    assert [e.partner for e in r.events("checkin_answered")] == ["b"]
    r.send(PresenceSeen("a", "home"))                           # still early: warned and called
    assert [(c.partner, c.reason) for c in r.calls()] == [("a", "early_return")]
    assert r.p.snapshot()["version"] == SNAPSHOT_VERSION
    with pytest.raises(SnapshotError, match="newer than this hub"):
        Procedure(r.plan, clock, {**snap, "version": SNAPSHOT_VERSION + 1})


def test_a_snapshot_saved_by_the_untyped_v2_procedure_resumes_its_end_checkin():
    """tests/data/procedure_snapshot_v2_dict.json was written by the procedure of c84e040 (the
    last one that kept its state as a dict) at the end check-in, partner a having answered calm.
    The typed state reads it as it is: a's answer is kept, b's calm ends the round."""
    snap = json.loads((Path(__file__).parent / "data" / "procedure_snapshot_v2_dict.json").read_text())
    clock = ManualClock()
    clock.reboot(down_seconds=10, trusted=True)
    r = Run(clock=clock)
    r.p = Procedure(r.plan, clock, snap)
    assert r.phase == "checkin" and r.p.leaver() == "b"
    r.send(Answer("b", r.p.open_question("b")[0], 1))
    assert r.events("both_calm") and r.phase == "evaluation" and not r.calls()
    assert json.loads(json.dumps(r.p.snapshot())) == r.p.snapshot()   # JSON round trip


@pytest.mark.parametrize("damage", [
    lambda s: s["episode"].pop("leaver"),
    lambda s: s.update(phase="sleeping"),
    lambda s: s["episode"]["end"].update(answers={"c": 1}),
    lambda s: s.update(unexpected=1),
])
def test_a_damaged_snapshot_is_refused_with_one_sentence(damage):
    from firmware.hub.procedure import SnapshotError
    snap = json.loads((Path(__file__).parent / "data" / "procedure_snapshot_v2_dict.json").read_text())
    damage(snap)
    with pytest.raises(SnapshotError) as e:
        Procedure(load_plan(EXAMPLE, today=TODAY), ManualClock(), snap)
    assert "\n" not in str(e.value) and str(e.value).startswith("the saved procedure state cannot be read")


def test_panel_start_where_nobody_leaves_asks_both_partners_to_leave():
    """Leaver rule "announcer" and a panel start: the hub cannot know who will leave. When the
    grace period ends with nobody gone, both are asked (one of them leaves), not nobody."""
    r = Run().both_home().send(PanelPress(long=True))
    r.wait(r.plan.timeout.leave_grace_minutes * 60 + 1)
    assert r.events("leave_overdue") and r.phase == "timeout" and r.p.leaver() is None
    assert {p.partner for p in r.prompts(kind="notice") if p.key == "notice.one_of_you_leave"} == {"a", "b"}
    r.send(PresenceSeen("a", "away")).wait(DEPART_CONFIRM_S + 1)
    assert r.p.leaver() == "a" and r.events("left")[0].partner == "a"


def test_panel_start_indoors_asks_both_to_go_to_their_place():
    r = Run(make_plan(indoor_separation=True)).both_home().send(PanelPress(long=True))
    r.wait(r.plan.timeout.leave_grace_minutes * 60 + 1)
    assert {p.partner for p in r.prompts(kind="notice") if p.key == "notice.separate_indoors"} == {"a", "b"}


@pytest.mark.parametrize("wall_step", [30 * 60.0, -30 * 60.0, 365 * 86400.0])
def test_a_service_restart_on_the_same_boot_counts_the_downtime_from_the_monotonic_clock(wall_step):
    """Issue 20: a trusted wall clock stepped while the hub restarted for 2 s must neither
    shorten nor lengthen the time-out: on the same boot the monotonic clock knows how long it was."""
    r = started("a").wait(10 * 60)
    snap = json.loads(json.dumps(r.p.snapshot()))
    r.clock.restart(down_seconds=2, wall_step=wall_step)
    p2 = Procedure(r.plan, r.clock, snap)
    assert p2.elapsed() == pytest.approx(10 * 60 + 2)
    ends_in = (dt.datetime.fromisoformat(p2.public_state()["ends_at"]) - r.clock.wall()).total_seconds()
    assert ends_in == pytest.approx(10 * 60 - 2, abs=1)


def test_after_a_reboot_a_wall_clock_a_year_ahead_credits_nothing():
    r = started("a").wait(10 * 60)
    snap = json.loads(json.dumps(r.p.snapshot()))
    r.clock.reboot(down_seconds=365 * 86400, trusted=True)
    p2 = Procedure(r.plan, r.clock, snap)
    assert p2.elapsed() == pytest.approx(10 * 60) and p2.phase == "timeout"


def test_answers_given_while_the_hub_was_down_count_after_a_long_power_cut():
    """Issue 20, harm 4: the end check-in was asked, the hub went down for 10 minutes (past the
    check-in's 5-minute deadline, credited on a trusted clock), both partners answered "calm"
    meanwhile. Caught up before time acts, both answers count: no calls, they may meet again."""
    r = started("a").wait(20 * 60 + 1)
    assert r.phase == "checkin"
    q = r.p.open_question("a")[0]
    snap = json.loads(json.dumps(r.p.snapshot()))
    r.clock.reboot(down_seconds=10 * 60, trusted=True)
    p2 = Procedure(r.plan, r.clock, snap)
    p2.catching_up = True                   # what the hub does until the queued inputs are in
    out = p2.handle(Answer("a", q, 1)) + p2.handle(Answer("b", q, 1)) + p2.tick()
    p2.catching_up = False
    out += p2.tick()
    types = [o.type for o in out if isinstance(o, EventOut)]
    assert "both_calm" in types and "checkin_unanswered" not in types
    assert not [o for o in out if isinstance(o, CallOut)]


def test_a_departure_through_the_exit_door_counts_at_once():
    """Issue 14: with a door sensor, the presence engine says "away" only after the door opened
    and the tag fell silent: the leaver is seen gone within seconds, not after 2 minutes."""
    r = Run().both_home().send(PanelPress(long=True))
    r.wait(5).send(PresenceSeen("b", "away", door=True))
    assert r.p.leaver() == "b" and [e.partner for e in r.events("left")] == ["b"]
    assert r.phase == "timeout"


def test_a_bluetooth_only_away_still_needs_its_two_minutes():
    r = Run().both_home().send(PanelPress(long=True))
    r.wait(5).send(PresenceSeen("b", "away"))
    assert not r.events("left")
    r.wait(DEPART_CONFIRM_S + 1)
    assert [e.partner for e in r.events("left")] == ["b"]
