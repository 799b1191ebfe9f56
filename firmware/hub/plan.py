"""The household plan: the agreements the installer records with both partners (README.md).

One TOML file per household (`examples/household.toml`). `load_plan()` returns a validated,
immutable `HouseholdPlan` or raises `PlanError` listing *every* problem by field path in a sentence
an installer understands; `timeout-hub check-config PLAN` prints them. Rules about dates (an
evaluation date that has passed) are `date_findings()`: check-config refuses or warns, `doctor`
and the hub warn, and nothing stops a running household's hub for a date.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from ble.tag_ids import TAG_ID_RE
from core.config import StrictConfig, problems_of, read_toml
from core.errors import ConfigError

MIN_TIMEOUT_MINUTES = 20  # the procedure's floor; a plan may ask for more, never less
MAX_CONTACTS = 3          # contact persons per partner (PROCEDURE.md)

Partner = Literal["a", "b"]
Language = Literal["nl", "en"]


class PlanError(ConfigError):
    """The plan is not valid; `problems` holds one (path, sentence) per problem."""


_Strict = StrictConfig


Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=80)]


class PartnerPlan(_Strict):
    language: Language = "nl"
    tags: list[str] = Field(default_factory=list, max_length=3)
    wearable: bool = False
    # check-ins by SMS on the partner's own phone (the number is only in the caller's file)
    sms_checkins: bool = False
    calming_tasks: list[Text] = Field(min_length=1, max_length=10)
    # how many contact persons this partner chose (0-3); the plan refers to them by partner and
    # position only: their numbers and call language are entries 1..n in the caller's file
    contacts: int = Field(0, ge=0, le=MAX_CONTACTS)

    @field_validator("contacts", mode="before")
    @classmethod
    def _counted_not_listed(cls, v: Any) -> Any:
        if isinstance(v, list):   # the plan before issue 15 listed { ref, language } tables
            raise ValueError(
                f"contacts are counted here, not listed: write contacts = {len(v)} and keep each "
                "contact's number and call language only in the caller's file, in calling order")
        return v

    @field_validator("tags")
    @classmethod
    def _tag_forms(cls, tags: list[str]) -> list[str]:
        for t in tags:
            if not TAG_ID_RE.match(t):
                raise ValueError(f"tag {t!r} is not a MAC address, ibeacon:UUID:MAJOR:MINOR, "
                                 "eddystone:NAMESPACE:INSTANCE or irk:KEY")
        return tags


class TimeoutPlan(_Strict):
    leaver: Literal["announcer", "a", "b"] = "announcer"
    minimum_minutes: int = Field(MIN_TIMEOUT_MINUTES)
    leave_grace_minutes: int = Field(5, ge=1, le=30)
    indoor_separation: bool = False
    checkin_every_minutes: int = Field(10, ge=5, le=60)
    extension_minutes: int = Field(20, ge=10, le=120)
    rounds_before_overnight: int = Field(2, ge=1, le=5)
    suggestion_expires_minutes: int = Field(5, ge=1, le=30)
    discuss_later_minutes: int = Field(120, ge=15, le=2880)

    @field_validator("minimum_minutes")
    @classmethod
    def _floor(cls, v: int) -> int:
        if v < MIN_TIMEOUT_MINUTES:
            raise ValueError(f"a time-out lasts at least {MIN_TIMEOUT_MINUTES} minutes; "
                             f"{v} is too short")
        if v > 240:
            raise ValueError(f"{v} minutes is more than 4 hours; agree on staying elsewhere instead")
        return v


class CallsPlan(_Strict):
    on_early_return: bool = True
    on_not_calm: bool = True
    on_no_answer: bool = True


class ChildrenPlan(_Strict):
    present: bool
    protection: Annotated[str, StringConstraints(strip_whitespace=True, max_length=400)] = ""

    @model_validator(mode="after")
    def _protection_when_present(self) -> ChildrenPlan:
        if self.present and not self.protection:
            raise ValueError("children are present: write down how they are protected during a "
                             "time-out (who stays with them)")
        return self


class Consent(_Strict):
    """What this partner allows to be shared with the care worker, per event category (R9)."""

    procedure: bool = False
    checkin: bool = False
    call: bool = False
    sensing: bool = False
    presence: bool = False
    evaluation: bool = False


class HouseholdPlan(_Strict):
    household: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{1,31}$")]
    partners: dict[Partner, PartnerPlan]
    timeout: TimeoutPlan = Field(default_factory=TimeoutPlan)
    calls: CallsPlan = Field(default_factory=CallsPlan)
    lead_when_disagreeing: Literal["a", "b", "stayer", "leaver"] = "stayer"
    evaluation_dates: list[dt.date] = Field(default_factory=list, max_length=24)
    children: ChildrenPlan
    consent: dict[Partner, Consent]
    retention_days: int = Field(90, ge=7, le=730)

    @field_validator("partners", "consent")
    @classmethod
    def _both_partners(cls, v: dict[str, Any]) -> dict[str, Any]:
        missing = [p for p in ("a", "b") if p not in v]
        if missing:
            raise ValueError(f"partner {' and '.join(missing)} is missing: the plan is made with both")
        return v

    @model_validator(mode="after")
    def _cross_checks(self) -> HouseholdPlan:
        problems = []
        tags = [(p, t.upper()) for p, pp in self.partners.items() for t in pp.tags]
        seen: dict[str, str] = {}
        for p, t in tags:
            if t in seen and seen[t] != p:
                problems.append(f"tag {t} is given to both partners")
            seen[t] = p
        for p, pp in self.partners.items():
            if not pp.tags and not pp.wearable:
                problems.append(f"partner {p} has no tag and no wearable: the hub cannot tell "
                                "whether they left")
            elif not pp.tags:
                problems.append(f"partner {p} has a wearable but no tag: the wearable only says "
                                "\"100 m from home or not\" during a time-out (its GNSS is off "
                                "otherwise), so the hub cannot tell whether they are home before "
                                "suggesting a break; give them a tag too")
            calls_on = self.calls.on_early_return or self.calls.on_not_calm or self.calls.on_no_answer
            if calls_on and not pp.contacts:
                problems.append(f"partner {p} has no contact person, but the plan says contacts "
                                "are called")
        if not any(pp.wearable or pp.sms_checkins for pp in self.partners.values()):
            problems.append("neither partner answers check-ins on a device of their own (a "
                            "wearable or sms_checkins): the shared panel cannot tell whose answer a "
                            "press is; give at least one partner their own way to answer")
        if problems:
            raise ValueError("\n".join(problems))
        return self

    def own_device(self, p: str) -> bool:
        """Partner p answers on a device of their own (wearable or SMS), never on the panel."""
        pp = self.partners[p]   # type: ignore[index]
        return pp.wearable or pp.sms_checkins


@dataclass(frozen=True)
class DateFinding:
    """An installer rule about the plan's dates. `install`: check-config refuses the plan for it;
    otherwise a warning. Never a reason for a running household's hub to stop (issue 20)."""

    path: str
    sentence: str
    install: bool


def date_findings(plan: HouseholdPlan, today: dt.date) -> list[DateFinding]:
    """Evaluation dates that have passed. Evaluations held are history (a warning); a plan whose
    every evaluation date has passed has none ahead, and the installer must plan the next one."""
    past = [d.isoformat() for d in plan.evaluation_dates if d < today]
    if not past:
        return []
    ahead = len(past) < len(plan.evaluation_dates)
    dates = f"{', '.join(past)} {'is' if len(past) == 1 else 'are'} in the past"
    if ahead:
        return [DateFinding("evaluation_dates", f"{dates} (held evaluations can be removed)", False)]
    return [DateFinding("evaluation_dates", f"{dates} and no evaluation is planned ahead; plan the "
                        "next evaluation with both partners", True)]


def validate_plan(data: dict[str, Any], *, today: dt.date | None = None,
                  source: str = "plan") -> HouseholdPlan:
    """The plan, or PlanError with every problem. Dates are not judged here (`date_findings`):
    a date that passes must never keep the hub from starting. `today` is accepted for callers
    that pin a date and has no effect on validity."""
    del today
    problems: list[tuple[str, str]] = []
    plan = None
    try:
        plan = HouseholdPlan.model_validate(data)
    except ValidationError as e:
        problems = problems_of(e, whole="(plan)")
    if problems or plan is None:
        raise PlanError(problems, source)
    return plan


def load_plan(path: Path, *, today: dt.date | None = None) -> HouseholdPlan:
    path = Path(path)
    data = read_toml(path, PlanError, "household.toml")
    return validate_plan(data, today=today, source=str(path))
