"""What may leave the household for the care organisation: the consent rule (R9) and the
summaries it lets through (issue 18, docs/care.md).

Only summaries leave, never the event log: one `SharedTimeout` per time-out (its start, length,
rounds, early returns, calls, outcome, thermometer) and one `SharedTopics` per therapy topic kept
(a count and a date, never the content). Each field belongs to an event category and, where it is
about one partner, to that partner; `summarise()` fills a field only when the consent allows it
and leaves it None ("not shared") otherwise, so a report can say "not shared" instead of "none".

The rule (R9): a field about one partner needs that partner's consent for its category; a
household field (a time-out started, its length, its rounds, the thermometer) needs both; a
time-out leaves at all only when both partners consent to `procedure` (its existence and start
are household facts), and the other categories then add their fields to it.
This module is pure: no bus, no clock, no files. The consent filter (firmware/share) applies it
before anything is encrypted; the organisation's side (org/) and the report read the same models.
"""
from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Final, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from mqtt.schemas import Envelope, Event, Partner

Category = Literal["procedure", "checkin", "call", "sensing", "presence", "evaluation"]
CATEGORIES: Final[tuple[Category, ...]] = ("procedure", "checkin", "call", "sensing", "presence",
                                           "evaluation")


class ConsentSet(BaseModel):
    """Per partner, the categories that partner allows to be shared (the plan's `consent`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    a: frozenset[Category] = frozenset()
    b: frozenset[Category] = frozenset()

    def of(self, partner: Partner) -> frozenset[Category]:
        return self.a if partner == "a" else self.b

    def allows(self, category: str, partner: Partner | None) -> bool:
        """About one partner: that partner's consent; about the household (None): both."""
        if partner is None:
            return category in self.a and category in self.b
        return category in self.of(partner)

    def without(self, partner: Partner, categories: Iterable[str]) -> ConsentSet:
        """This consent after `partner` withdrew `categories` (the other partner's is untouched)."""
        kept = self.of(partner).difference(categories)
        return self.model_copy(update={partner: kept})

    @classmethod
    def from_flags(cls, flags: Mapping[Partner, Mapping[str, bool]]) -> ConsentSet:
        """From the plan's form: {"a": {"procedure": True, ...}, "b": {...}}."""
        return cls(**{p: frozenset(c for c in CATEGORIES if flags.get(p, {}).get(c))
                      for p in ("a", "b")})


Minutes = Annotated[float, Field(ge=0, le=24 * 60)]
Household = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{1,31}$")]
RETENTION_DAYS: Final = 90      # the plan's default (firmware/hub/plan.py), also the organisation's


class ConsentChange(Envelope):
    """Sealed kind "consent": the household's consent now, and what a partner just withdrew.
    The organisation re-filters what it holds of the household with `restrict()` (R9) and keeps
    it for `retention_days` (R11). Giving consent again goes through the installer and does
    not bring back what was removed."""

    kind: Literal["consent"] = "consent"
    household: Household
    partner: Partner | None = Field(None, description="who withdrew; None: the installer set it")
    withdrawn: list[Category] = Field(default_factory=list, max_length=len(CATEGORIES))
    consent: ConsentSet
    retention_days: int = Field(RETENTION_DAYS, ge=7, le=730)


class Wipe(Envelope):
    """Sealed kind "wipe": the household leaves (or withdrew everything); the organisation drops
    all it holds of it (R11)."""

    kind: Literal["wipe"] = "wipe"
    household: Household


class SharedCall(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    partner: Partner = Field(description="whose contacts were called")
    outcome: str = Field(max_length=32, description="the caller's final outcome code")
    acknowledged: bool


class ThermometerPoint(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    minute: float = Field(ge=-24 * 60, le=24 * 60, description="minutes from the start")
    value: int = Field(ge=0, le=10)


class SharedTimeout(Envelope):
    """One time-out as the care worker may see it; None means "not shared" (no consent)."""

    kind: Literal["timeout"] = "timeout"
    household: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,31}$")
    timeout_id: uuid.UUID
    started: AwareDatetime | None = Field(None, description="procedure, both partners")
    minutes: Minutes | None = Field(None, description="length; procedure, both partners")
    rounds: int | None = Field(None, ge=0, le=99, description="procedure, both partners")
    outcome: Literal["evaluated", "handed_to_contacts", "open"] | None = None
    early_returns: dict[Partner, int] | None = Field(
        None, description="per partner, only partners whose `presence` consent holds")
    calls: list[SharedCall] | None = Field(
        None, max_length=32, description="only calls for partners whose `call` consent holds")
    call_partners: list[Partner] | None = Field(
        None, description="whose calls `calls` covers (their `call` consent holds), so an empty "
                          "list says \"no calls\" only for them and \"not shared\" for the other")
    evaluation: dict[str, bool | str] | None = Field(
        None, description="the joint outcome (long enough, more time, discuss); both partners")
    thermometer: list[ThermometerPoint] | None = Field(
        None, max_length=120, description="sensing, both partners")


class SharedTopics(Envelope):
    """Topics kept for the next therapy session: a count and a date, never the content."""

    kind: Literal["topics"] = "topics"
    household: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,31}$")
    count: int = Field(ge=0, le=999)
    session_date: str | None = Field(None, pattern=r"^\d{4}-\d{2}-\d{2}$")


@dataclass
class _Building:
    started: datetime | None = None
    minutes: float | None = None
    rounds: int = 0
    outcome: str = "open"
    early: dict[str, int] | None = None
    calls: list[SharedCall] | None = None
    evaluation: dict[str, bool | str] | None = None
    thermo: list[tuple[datetime, int]] | None = None


_OUTCOME_KEYS = ("long_enough", "more_time", "discuss", "decided_by")


def summarise(household: str, events: Iterable[Event], consent: ConsentSet,
              ) -> list[SharedTimeout | SharedTopics]:
    """The shareable summaries of `events` (in time order) under `consent`."""
    out: list[SharedTimeout | SharedTopics] = []
    episodes: dict[uuid.UUID, _Building] = {}
    pending_thermo: list[tuple[datetime, int]] = []   # suggestions before a time-out starts
    for e in events:
        if e.type == "suggestion" and isinstance(e.data.get("thermometer"), int):
            pending_thermo.append((e.ts, int(e.data["thermometer"])))   # type: ignore[arg-type]
            continue
        if e.timeout_id is None:
            continue
        b = episodes.setdefault(e.timeout_id, _Building())
        if e.type == "started":
            b.started, b.thermo, pending_thermo = e.ts, pending_thermo[-60:], []
        elif e.type == "returned_early" and e.partner is not None:
            b.early = b.early or {}
            b.early[e.partner] = b.early.get(e.partner, 0) + 1
        elif e.type == "call_result" and e.partner is not None:
            b.calls = b.calls or []
            outcome = str(e.data.get("outcome", "unknown"))
            b.calls.append(SharedCall(partner=e.partner, outcome=outcome,
                                      acknowledged=outcome == "acknowledged"))
        elif e.type == "evaluation_outcome":
            b.evaluation = {k: v for k, v in e.data.items()
                            if k in _OUTCOME_KEYS and isinstance(v, (bool, str))}
            if isinstance(e.data.get("topics_for_session"), int) and consent.allows(
                    "evaluation", None):
                date = e.data.get("session_date")
                out.append(SharedTopics(household=household, ts=e.ts,
                                        count=int(e.data["topics_for_session"]),  # type: ignore[arg-type]
                                        session_date=date if isinstance(date, str) else None))
        elif e.type == "ended":
            b.outcome = str(e.data.get("outcome", "open"))
            if isinstance(e.data.get("rounds"), int):
                b.rounds = int(e.data["rounds"])   # type: ignore[arg-type]
            if isinstance(e.data.get("minutes"), (int, float)):
                b.minutes = float(e.data["minutes"])   # type: ignore[arg-type]
        elif e.type == "extended" and isinstance(e.data.get("round"), int):
            b.rounds = max(b.rounds, int(e.data["round"]))   # type: ignore[arg-type]
    for tid, b in episodes.items():
        if b.started is None:
            continue   # its start fell outside the window: no half summaries
        if not consent.allows("procedure", None):
            continue   # that a time-out happened at all is a household fact: both must consent
        out.append(SharedTimeout(
            household=household, timeout_id=tid, ts=b.started,
            started=b.started, minutes=b.minutes, rounds=b.rounds,
            outcome=b.outcome,
            early_returns={p: (b.early or {}).get(p, 0) for p in ("a", "b")
                           if consent.allows("presence", p)} or None,
            calls=[c for c in (b.calls or []) if consent.allows("call", c.partner)]
            if any(consent.allows("call", p) for p in ("a", "b")) else None,
            call_partners=[p for p in ("a", "b") if consent.allows("call", p)] or None,
            evaluation=b.evaluation if consent.allows("evaluation", None) else None,
            thermometer=[ThermometerPoint(minute=round((t - b.started).total_seconds() / 60, 1),
                                          value=v) for t, v in (b.thermo or [])]
            if consent.allows("sensing", None) else None,
        ))
    out.sort(key=lambda s: s.ts)
    return out


def restrict(summary: SharedTimeout | SharedTopics, consent: ConsentSet,
             ) -> SharedTimeout | SharedTopics | None:
    """`summary` as `summarise()` would have made it under the narrower `consent`: a field whose
    consent no longer holds becomes None ("not shared"); topics without both partners'
    `evaluation` consent are dropped (None). For consent given again it adds nothing back."""
    if isinstance(summary, SharedTopics):
        return summary if consent.allows("evaluation", None) else None
    if not consent.allows("procedure", None):
        return None   # without both partners' `procedure` consent no time-out is shared at all
    early = {p: n for p, n in (summary.early_returns or {}).items() if consent.allows("presence", p)}
    calls = summary.calls
    if calls is not None:
        calls = ([c for c in calls if consent.allows("call", c.partner)]
                 if any(consent.allows("call", p) for p in ("a", "b")) else None)
    return summary.model_copy(update={
        "early_returns": early or None,
        "calls": calls,
        "call_partners": ([p for p in summary.call_partners or [] if consent.allows("call", p)]
                          or None) if calls is not None else None,
        "evaluation": summary.evaluation if consent.allows("evaluation", None) else None,
        "thermometer": summary.thermometer if consent.allows("sensing", None) else None,
    })
