"""`restrict()`: what the organisation keeps after a partner withdraws a category is exactly what
the household would have shared under the narrower consent (R9)."""
from __future__ import annotations

import pytest

from mqtt.shared import CATEGORIES, ConsentSet, SharedTimeout, restrict, summarise
from tests.test_share_consent import ALL, evening


def _view(items: list) -> list[dict]:
    return [i.model_dump(mode="json", exclude={"id"}) for i in items]


@pytest.mark.parametrize("partner", ["a", "b"])
@pytest.mark.parametrize("category", CATEGORIES)
def test_restricting_a_shared_summary_equals_sharing_under_the_narrower_consent(partner, category):
    narrower, events = ALL.without(partner, [category]), evening()
    kept = [r for s in summarise("hh-1", events, ALL) if (r := restrict(s, narrower))]
    assert _view(kept) == _view(summarise("hh-1", events, narrower))


def test_a_withdrawn_call_consent_removes_that_partners_calls_only():
    [timeout, _] = summarise("hh-1", evening(), ALL)
    assert isinstance(timeout, SharedTimeout) and [c.partner for c in timeout.calls or []] == ["b"]
    after = restrict(timeout, ALL.without("b", ["call"]))
    assert isinstance(after, SharedTimeout)
    assert after.calls == [] and after.minutes == 40.0 and after.early_returns == {"a": 0, "b": 1}


def test_consent_given_again_brings_nothing_back():
    [timeout, _] = summarise("hh-1", evening(), ALL.without("a", ["sensing"]))
    assert restrict(timeout, ALL) == timeout and timeout.thermometer is None
    assert restrict(timeout, ConsentSet()) is None   # without `procedure` of both: nothing kept
