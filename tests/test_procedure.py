"""The procedure state machine, phase by phase, on a manual clock (20 minutes take no time)."""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from core.clock import ManualClock
from firmware.hub.plan import load_plan, validate_plan
from firmware.hub.procedure import (
    Answer,
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
        return self.p.s["phase"]

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
        q = self.p.s["episode"]["end"]["q"]
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
    assert r.phase == "timeout" and r.p.public_state()["leaver"] == "b"
    assert r.events("left")[0].partner == "b"


def test_short_presses_are_counted_and_start_nothing():
    r = Run().both_home()
    for _ in range(5):
        r.send(PanelPress(long=False))
    assert r.phase == "monitoring" and r.p.s["short_presses"] == 5 and not r.events("started")


def test_own_button_names_p1_and_reminders_name_own_tasks():
    r = Run().both_home().send(PartnerButton("b"))
    assert r.events("started")[0].partner == "b" and r.p.s["episode"]["leaver"] == "b"
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
    assert r.phase == "checkin" and r.p.public_state()["question"]["kind"] == "checkin"


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


def test_panel_answers_the_evaluation_for_the_household():
    r = started().wait(20 * 60 + 1).answer_end(a=1, b=1)
    for choice in (1, 2, 3):   # long enough: yes; more time: yes; discuss: next session
        r.send(Answer("panel", r.p.public_state()["question"]["id"], choice))
    assert r.phase == "monitoring"
    assert [e.data["choice"] for e in r.events("evaluation") if e.partner == "a"] == [1, 2, 3]


def test_early_return_warns_and_calls_once_and_the_returner_cannot_cancel_it():
    r = started("a").wait(8 * 60).send(PresenceSeen("a", "home"))
    assert r.events("returned_early")[0].partner == "a"
    assert any(p.key == "notice.returned_early" for p in r.prompts("a"))
    assert [(c.partner, c.reason) for c in r.calls()] == [("a", "early_return")]
    # R7: whatever partner a does next, the call stands and is not repeated
    r.send(PartnerButton("a")).send(PanelPress(long=True)).send(PresenceSeen("a", "away"))
    r.send(PresenceSeen("a", "home"))
    r.send(Answer("a", "whatever", 1))
    assert len(r.calls()) == 1 and r.p.s["episode"]["calls"]
    assert r.phase == "timeout"


def test_no_call_on_early_return_when_the_plan_says_no():
    import tomllib
    data = tomllib.loads(EXAMPLE.read_text())
    data["calls"]["on_early_return"] = False
    r = Run(validate_plan(data, today=TODAY)).both_home().send(PartnerButton("a"))
    r.send(PresenceSeen("a", "away")).wait(60).send(PresenceSeen("a", "home"))
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
    end_prompts_b = [p for p in r.prompts("b", "checkin") if p.question_id == r.p.s["episode"]["end"]["q"]]
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


def test_a_wall_clock_jump_never_shortens_a_time_out():
    r = started().wait(60)
    r.clock.jump_wall(+3 * 3600)     # NTP finally sets the clock
    r.wait(10)
    assert r.phase == "timeout"
    r.wait(20 * 60 - 75)
    assert r.phase == "timeout"


@pytest.mark.parametrize("trusted, expect_phase", [(True, "checkin"), (False, "timeout")])
def test_power_cut_downtime_counts_only_with_a_trusted_clock(trusted, expect_phase):
    r = started().wait(10 * 60)
    snap = json.loads(json.dumps(r.p.snapshot()))
    r.clock.reboot(down_seconds=11 * 60, trusted=trusted)
    p2 = Procedure(r.plan, r.clock, snap)
    p2.tick()
    r.clock.advance(1)
    p2.tick()
    assert p2.s["phase"] == expect_phase


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
