"""The procedure's whole state, typed, and its versioned snapshot (what the hub saves after every
step). Version 1 (plain JSON of the hub before procedure v2) is migrated on load, in the middle of
a running time-out; a snapshot from a newer hub, or one that does not fit, is refused with one
sentence instead of being guessed at."""
from __future__ import annotations

import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from core.errors import HubError
from firmware.hub.plan import HouseholdPlan, Partner
from mqtt.schemas import Phase

SNAPSHOT_VERSION = 2
PARTNERS: tuple[Partner, ...] = ("a", "b")
PresenceValue = Literal["home", "away", "unknown"]


class SnapshotError(HubError, ValueError):
    """The saved state cannot be used by this version of the hub."""


def _per_partner_int() -> dict[Partner, int]:
    return {"a": 0, "b": 0}


def _per_partner_none() -> dict[Partner, float | None]:
    return {"a": None, "b": None}


def _per_partner_false() -> dict[Partner, bool]:
    return {"a": False, "b": False}


def _apart_unknown() -> dict[Partner, bool | None]:
    return {"a": None, "b": None}


def _presence_unknown() -> dict[Partner, PresenceValue]:
    return {"a": "unknown", "b": "unknown"}


class _State(BaseModel):
    # strict about what is there (a typo in a field is an error, not a silent default);
    # mutable, because the procedure changes it step by step
    model_config = ConfigDict(extra="forbid")


class Timer(_State):
    due: float            # on this boot's monotonic clock
    left: float           # seconds left when saved: what a restart resumes from


class EndCheckin(_State):
    """The check-in at the end of a round's minimum."""
    q: str                # its question id
    start: float          # episode seconds when it was asked
    sent: int = 0         # prompts sent so far (END_PROMPTS_AT)
    answers: dict[Partner, int] = Field(default_factory=dict)


class Evaluation(_State):
    start: float
    step: dict[Partner, int] = Field(default_factory=_per_partner_int)
    q: dict[str, str] = Field(default_factory=dict)              # question key -> id
    answers: dict[Partner, dict[str, int]] = Field(default_factory=dict)


class Episode(_State):
    """One time-out, from its start to its end."""
    id: str
    elapsed: float = 0.0           # episode seconds at `mono`
    mono: float                    # the monotonic reading `elapsed` was taken at
    wall_at_save: str | None = None
    wall_trusted: bool = False
    p1: Partner | None             # who started it with their own button (None: the panel)
    leaver: Partner | None         # decided once, never moved to the other partner
    left: bool = False
    round: int = 1
    min_total: float               # episode seconds at which this round's minimum is over
    round_start: float = 0.0
    next_checkin: float
    reminder_at: list[float | None]
    reminders: dict[Partner, int] = Field(default_factory=_per_partner_int)
    overdue: bool = False
    end: EndCheckin | None = None
    calls: dict[str, str] = Field(default_factory=dict)     # "round:partner:reason" -> request id
    overnight: bool = False
    evaluation: Evaluation | None = None
    both_calm: bool | None = None
    indoor: bool = False
    # episode seconds since each partner was last seen going away (None: not away)
    away_since: dict[Partner, float | None] = Field(default_factory=_per_partner_none)
    back_early: bool = False
    periodic_q: str | None = None
    periodic_answered: list[Partner] = Field(default_factory=list)


class HubState(_State):
    version: int = SNAPSHOT_VERSION
    phase: Phase = Phase.MONITORING
    since_wall: str | None = None
    seq: int = 0                   # output ids derive from it: a replayed step repeats its ids
    boot: str | None = None        # the boot the saved monotonic readings belong to
    instance: str = Field(default_factory=lambda: str(uuid.uuid4()))
    thermometer: int = 0
    presence: dict[Partner, PresenceValue] = Field(default_factory=_presence_unknown)
    apart: dict[Partner, bool | None] = Field(default_factory=_apart_unknown)
    # the partner's "away" came with an exit door event (ble/ fusion): no 2-minute confirmation
    away_by_door: dict[Partner, bool] = Field(default_factory=_per_partner_false)
    short_presses: int = 0
    timers: dict[str, Timer] = Field(default_factory=dict)
    episode: Episode | None = None
    topics_for_session: int = 0
    # call request id -> partner, kept past the episode's end (a result may come later)
    recent_calls: dict[str, Partner] = Field(default_factory=dict)


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


def load_state(snapshot: dict[str, Any], plan: HouseholdPlan) -> HubState:
    """The typed state of a saved snapshot (migrated); SnapshotError when it does not fit."""
    try:
        return HubState.model_validate(migrate(snapshot, plan))
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(x) for x in first["loc"]) or "the snapshot"
        raise SnapshotError(f"the saved procedure state cannot be read ({where}: {first['msg']}, "
                            f"{e.error_count()} problem(s)); the hub needs a state it understands: "
                            "restore a backup or start without one") from None


def dump_state(state: HubState) -> dict[str, Any]:
    return state.model_dump(mode="json")
