"""The consent rule (R9) on the summaries that may leave the household (mqtt/shared.py)."""
from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from mqtt.schemas import Event
from mqtt.shared import CATEGORIES, ConsentSet, SharedTimeout, SharedTopics, summarise


def evening() -> list[Event]:
    t0, tid = datetime(2026, 11, 1, 20, tzinfo=UTC), uuid.uuid4()

    def at(offset: float, type_: str, category: str, partner=None, **data) -> Event:
        return Event(ts=t0 + timedelta(minutes=offset), type=type_, category=category,
                     partner=partner, timeout_id=None if type_ == "suggestion" else tid, data=data)
    return [at(0, "suggestion", "sensing", thermometer=7),
            at(1, "started", "procedure", "a", source="panel"),
            at(5, "returned_early", "presence", "b", minutes=4.0),
            at(6, "call_result", "call", "b", outcome="acknowledged"),
            at(40, "evaluation_outcome", "evaluation", long_enough=True, discuss="next_session",
               decided_by="agreed", topics_for_session=1, session_date="2026-11-10"),
            at(41, "ended", "procedure", outcome="evaluated", rounds=2, minutes=40.0)]


ALL = ConsentSet(a=frozenset(CATEGORIES), b=frozenset(CATEGORIES))


def test_with_both_partners_consent_the_whole_summary_is_shared():
    timeout, topics = summarise("hh-1", evening(), ALL)
    assert isinstance(timeout, SharedTimeout) and isinstance(topics, SharedTopics)
    assert (timeout.minutes, timeout.rounds, timeout.outcome) == (40.0, 2, "evaluated")
    assert timeout.early_returns == {"a": 0, "b": 1}
    assert [c.partner for c in timeout.calls or []] == ["b"]
    assert timeout.thermometer and timeout.thermometer[0].value == 7
    assert (topics.count, topics.session_date) == (1, "2026-11-10")


def test_one_partners_withdrawal_removes_what_is_about_them_only():
    consent = ALL.without("b", ["call", "presence"])
    [timeout, _topics] = summarise("hh-1", evening(), consent)
    assert timeout.calls == [] and timeout.early_returns == {"a": 0}     # b's own: gone
    assert timeout.call_partners == ["a"]                                # "b: not shared"
    assert (timeout.minutes, timeout.rounds) == (40.0, 2)                # household: both still
    assert timeout.evaluation is not None


def test_without_both_partners_procedure_consent_no_timeout_leaves_at_all():
    """That a time-out happened, and when, is a household fact (R9): one partner withdrawing
    `procedure` stops every time-out summary, whatever else is consented."""
    assert [type(s).__name__ for s in summarise("hh-1", evening(), ALL.without("b", ["procedure"]))] \
        == ["SharedTopics"]                                              # topics: evaluation, both
    assert summarise("hh-1", evening(), ConsentSet()) == []
