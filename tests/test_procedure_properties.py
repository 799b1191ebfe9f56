"""Invariants of the procedure over random evenings (hypothesis)."""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.clock import ManualClock
from firmware.hub.plan import load_plan
from firmware.hub.procedure import (
    Answer,
    ApartSeen,
    EventOut,
    PanelPress,
    PartnerButton,
    PresenceSeen,
    Procedure,
    Sound,
)

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "household.toml"
PLAN = load_plan(EXAMPLE, today=dt.date(2026, 11, 21))


def _plan_a_on_the_panel():
    import tomllib

    from firmware.hub.plan import validate_plan
    data = tomllib.loads(EXAMPLE.read_text())
    data["partners"]["a"]["sms_checkins"] = False     # a answers on the shared panel
    return validate_plan(data, today=dt.date(2026, 11, 21))


PLAN_A_ON_PANEL = _plan_a_on_the_panel()
ACTIVE = ("leaving", "timeout", "extended")
PUBLIC_KEYS = {"phase", "since", "ends_at", "leaver", "thermometer", "suggestion",
               "both_calm", "question", "time_left", "returned_early"}

partner = st.sampled_from(["a", "b"])
inputs = st.one_of(
    st.builds(Sound, st.integers(0, 10), st.booleans()),
    st.builds(PresenceSeen, partner, st.sampled_from(["home", "away", "unknown"])),
    st.builds(ApartSeen, partner, st.sampled_from([True, False, None])),
    st.builds(PanelPress, st.booleans()),
    st.builds(PartnerButton, partner),
    st.tuples(st.just("answer"), st.sampled_from(["a", "b", "panel"]), st.integers(1, 3)),
)
steps = st.lists(st.one_of(st.tuples(st.just("wait"), st.integers(1, 900)), inputs),
                 min_size=1, max_size=60)


def current_question(p: Procedure, source: str) -> str:
    if source == "panel":
        q = p.public_state()["question"]
        if q:
            return q["id"]
        source = p.panel_partner() or "nobody"    # also a periodic check-in the panel may answer
    open_q = p.open_question(source)
    return open_q[0] if open_q else "none"


def apply(p: Procedure, clock: ManualClock, step) -> list:
    if not isinstance(step, tuple):
        return p.handle(step)
    if step[0] == "wait":
        out = []
        left = step[1]
        while left > 0:
            d = min(30, left)
            clock.advance(d)
            left -= d
            out += p.tick()
        return out
    if step[0] == "answer":
        _, source, choice = step
        return p.handle(Answer(source, current_question(p, source), choice))
    raise AssertionError(step)


def check_public_state(p: Procedure) -> None:
    ps = p.public_state()
    assert set(ps) == PUBLIC_KEYS
    assert ps["both_calm"] in (None, True)
    text = json.dumps(ps)
    assert "choice" not in text and "answers" not in text
    if p.phase == "checkin":
        assert p.elapsed() >= p.minimum_over_at(), "a time-out ended before its minimum"
    if p.phase in ("checkin", "evaluation") and p.round() == 1:
        assert p.elapsed() >= PLAN.timeout.minimum_minutes * 60


SETTINGS = settings(max_examples=150, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(steps)
def test_invariants_hold_and_every_escalation_ends(seq):
    clock = ManualClock()
    p = Procedure(PLAN, clock)
    out = []
    for step in seq:
        out += apply(p, clock, step)
        p.snapshot()
        check_public_state(p)
        if p.phase in ACTIVE:
            # no panel input ends (or otherwise changes the phase of) a running time-out
            twin = Procedure(PLAN, clock, p.snapshot())
            episode = twin.timeout_id()
            for inp in (PanelPress(True), PanelPress(False),
                        Answer("panel", current_question(twin, "panel"), 1)):
                twin.handle(inp)
                assert twin.phase in ACTIVE and twin.timeout_id() == episode
    # left alone, every started time-out reaches an end within a day
    for _ in range(24 * 60):
        if p.phase == "monitoring":
            break
        out += apply(p, clock, ("wait", 60))
        check_public_state(p)
    assert p.phase == "monitoring"
    started = [o for o in out if isinstance(o, EventOut) and o.type == "started"]
    ended = [o for o in out if isinstance(o, EventOut) and o.type == "ended"]
    assert len(started) == len(ended)


@SETTINGS
@given(steps, st.integers(0, 59))
def test_a_crash_at_any_step_gives_the_same_outcome(seq, crash_at):
    def run(crash: int | None):
        clock = ManualClock()
        p = Procedure(PLAN, clock, instance="household-instance")
        out = []
        for i, step in enumerate(seq):
            out += apply(p, clock, step)
            snap = json.dumps(p.snapshot())      # what the hub saves after every step
            if i == crash:
                p = Procedure(PLAN, clock, json.loads(snap))
        return [(type(o).__name__, o.id) for o in out], json.dumps(p.snapshot(), sort_keys=True)

    assert run(None) == run(crash_at % len(seq))


TRIGGER = {"early_return": "returned_early", "not_calm": "not_calm", "no_answer": "checkin_unanswered"}


@SETTINGS
@given(steps)
def test_no_call_goes_to_the_contacts_of_a_partner_who_did_not_trigger_it(seq):
    """Issue 13: every call for partner p follows an event of p's own that the plan calls on
    (p came back early, p said 'not calm', p did not answer), in the same time-out."""
    from firmware.hub.procedure import CallOut
    for plan in (PLAN, PLAN_A_ON_PANEL):
        clock = ManualClock()
        p = Procedure(plan, clock)
        out = []
        for step in seq:
            out += apply(p, clock, step)
        for i, o in enumerate(out):
            if isinstance(o, CallOut):
                before = [e for e in out[:i] if isinstance(e, EventOut) and e.timeout_id == o.timeout_id]
                own = [e for e in before if e.type == TRIGGER[o.reason] and e.partner == o.partner]
                if o.reason == "not_calm":
                    own = [e for e in own if e.data.get("choice") == 3]
                assert own, f"call for {o.partner} ({o.reason}) with no trigger of theirs"
