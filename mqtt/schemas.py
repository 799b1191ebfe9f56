"""Payload schemas of the MQTT contract, version 1 (docs/mqtt.md).

Every JSON payload carries `v` (schema version), `id` (uuid) and `ts` (ISO 8601 with offset).
Models are strict: unknown fields are refused, so a payload cannot smuggle in data the contract
does not name. No model has a field for names, phone numbers, audio or coordinates, and a last
guard refuses any free text that looks like a phone number (R4, R8, R14).
"""
from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Final, Literal, Union

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, model_validator

SCHEMA_VERSION: Final = 1

Partner = Literal["a", "b"]
Service = Literal["hub", "panel", "caller", "wearable-a", "wearable-b", "bridge"]
SERVICES: tuple[str, ...] = ("hub", "panel", "caller", "wearable-a", "wearable-b", "bridge")
PARTNERS: tuple[str, ...] = ("a", "b")

# Machine words only (codes, keys): no spaces, no digits runs that could carry a number.
Code = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_.]{0,47}$")]
# Short human-readable reason for a fault, for installers; checked for phone numbers below.
Reason = Annotated[str, StringConstraints(max_length=160)]
Choice = Annotated[int, Field(ge=1, le=3, description="mood button / SMS digit 1..3")]
ContactIndex = Annotated[int, Field(ge=1, le=3, description="contact 1..3 of that partner")]

_PHONE_LIKE = re.compile(r"(?:\+|\b)\d(?:[\s().\-/]*\d){7,}")


# An ISO date or time ("2027-01-15", "20:05:00") or a uuid is not a number to call: the
# evaluation outcome carries the next session's date, a call's events the ladder's request id
# (about one uuid4 in eight has a run of 8+ digits between its dashes).
_NOT_A_NUMBER = re.compile(
    r"\b\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?\b"
    r"|\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b")


def _looks_like_phone_number(text: str) -> bool:
    return bool(_PHONE_LIKE.search(_NOT_A_NUMBER.sub(" ", text)))


def now_utc() -> datetime:
    return datetime.now(UTC)


class Envelope(BaseModel):
    """Fields every JSON message has."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    v: Literal[1] = Field(SCHEMA_VERSION, description="schema version of this contract")
    id: uuid.UUID = Field(default_factory=uuid.uuid4,
                          description="unique message id; receivers drop a repeated id")
    ts: AwareDatetime = Field(default_factory=now_utc,
                              description="when the message was made, ISO 8601 with offset")

    @model_validator(mode="after")
    def _no_phone_numbers(self) -> Envelope:
        for path, text in _strings(self):
            if _looks_like_phone_number(text):
                raise ValueError(f"{path} looks like a phone number; numbers never travel on the bus")
        return self


def _strings(value: Any, path: str = "") -> list[tuple[str, str]]:
    """Every free-text string inside a model, with its field path."""
    found: list[tuple[str, str]] = []
    if isinstance(value, str):
        found.append((path or "payload", value))
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            found += _strings(getattr(value, name), f"{path}.{name}" if path else name)
    elif isinstance(value, dict):
        for k, v in value.items():
            found += _strings(v, f"{path}.{k}")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            found += _strings(v, f"{path}[{i}]")
    return found


class Fault(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    code: Code = Field(description="fault class, e.g. `mic.unplugged`, `modem.no_sim`, `ble.adapter_down`")
    service: Service
    since: AwareDatetime
    reason: Reason = Field(description="one sentence for the installer; never personal data")


class Phase(StrEnum):
    """The procedure's phases (docs/procedure.md), shared by the hub's procedure and the contract.
    A StrEnum: it is its own value in JSON, in snapshots and in comparisons with plain strings."""

    MONITORING = "monitoring"
    SUGGESTION = "suggestion"
    LEAVING = "leaving"          # started; the leaver has the grace period to go
    TIMEOUT = "timeout"
    CHECKIN = "checkin"          # the end check-in of a round
    EXTENDED = "extended"        # a further round
    EVALUATION = "evaluation"    # both calm: meeting again and looking back


class OpenQuestion(BaseModel):
    """A question the mood buttons may answer now (the panel lights them only then)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: uuid.UUID
    kind: Literal["checkin", "evaluation"]
    key: Code = Field(description="which question, e.g. `checkin.how_do_you_feel`; the text lives on the device")
    options: Annotated[int, Field(ge=1, le=3)]


class State(Envelope):
    """Everything the panel needs to show the truth; retained."""

    phase: Phase
    since: AwareDatetime
    ends_at: AwareDatetime | None = Field(None, description="earliest end of the time-out, if one runs")
    leaver: Partner | None = None
    thermometer: Annotated[int, Field(ge=0, le=10)] | None = Field(
        None, description="tension 0-10 from the microphone; null: no sound data (no microphone, "
        "or it has sent nothing for a few seconds), never a frozen old value")
    time_left: Annotated[int, Field(ge=0, le=10)] | None = Field(
        None, description="while a time-out runs: tenths of the current round's minimum still to "
        "run (the panel's bar shows it instead of the thermometer)")
    returned_early: bool = Field(False, description="the leaver is back before the minimum")
    sensing: Literal["on", "partial", "off"] = Field(
        "off", description="R5 indicator, from the real health of the hub's own sensors: `on` every "
        "installed sensor (microphone, tags) works; `partial` some do; `off` none is installed or works")
    suggestion: bool = False
    both_calm: bool | None = Field(
        None, description="only the joint verdict; one partner's answers never appear here (R9)")
    question: OpenQuestion | None = None
    faults: list[Fault] = Field(default_factory=list, max_length=32)


EventType = Literal[
    "suggestion", "suggestion_expired", "started", "left", "leave_overdue", "returned_early", "returned",
    "reminder", "checkin_requested", "checkin_answered", "checkin_unanswered", "both_calm",
    "not_calm", "extended", "overnight_suggested", "may_meet_again", "evaluation",
    "evaluation_outcome", "ended", "panel_answer_ignored", "reminder_cancelled",
    "call_requested", "call_step", "call_result", "fault", "fault_cleared", "access", "service",
]
EventCategory = Literal["procedure", "checkin", "call", "sensing", "presence", "evaluation",
                        "fault", "access", "service"]
Scalar = Union[  # noqa: UP007 - a pydantic union with a None member
    bool, int, float, Annotated[str, StringConstraints(max_length=64)], None]
DataKey = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,31}$")]
_FORBIDDEN_KEYS = {"lat", "lon", "lng", "latitude", "longitude", "coords", "coordinates",
                   "position", "location", "phone", "number", "msisdn", "name", "audio",
                   "samples", "text", "message"}


class Event(Envelope):
    """One procedure event (QoS 1, through the outbox); what evaluation is made of."""

    type: EventType
    category: EventCategory
    partner: Partner | None = Field(None, description="whose input or state the event is about")
    timeout_id: uuid.UUID | None = Field(None, description="the time-out episode it belongs to")
    data: dict[DataKey, Scalar] = Field(default_factory=dict, max_length=16,
                                        description="small typed details: numbers, codes, flags")

    @model_validator(mode="after")
    def _no_personal_keys(self) -> Event:
        bad = sorted(_FORBIDDEN_KEYS.intersection(self.data))
        if bad:
            raise ValueError(f"data.{bad[0]} is not allowed: events never carry names, numbers, "
                             "text, audio or coordinates")
        return self


class Sound(Envelope):
    """Derived sound numbers, at most 1 per second, local only (R1: never audio)."""

    level_db: Annotated[float, Field(ge=-200, le=200)]
    unit: Literal["dBA", "dBFS"] = Field(description="dBA when the installer calibrated, else dBFS")
    shout: Annotated[float, Field(ge=0, le=1)]
    thermometer: Annotated[int, Field(ge=0, le=10)]


class Presence(Envelope):
    presence: Literal["home", "away", "unknown"]
    since: AwareDatetime


DoorKind = Literal["gpio", "bthome"]


class DoorState(Envelope):
    """An exit door's last known state; retained. Only the service that owns the sensor publishes
    it (the door id says which: `hub-1`, `panel-1`). Nothing about who opened it (R4)."""

    state: Literal["open", "closed", "unknown"] = Field(
        description="`unknown`: the sensor is silent, its battery is dead or its wire reads stuck")
    since: AwareDatetime
    kind: DoorKind = Field(description="`gpio`: a reed contact on a Pi; `bthome`: a BTHome v2 BLE sensor")
    battery: Annotated[int, Field(ge=0, le=100)] | None = Field(
        None, description="percent, from a BLE sensor; null for a wired contact")


class DoorEvent(Envelope):
    """The door opened or closed (debounced; a BLE sensor's decrypted, fresh advert only)."""

    state: Literal["open", "closed"]
    kind: DoorKind


class TagHeard(BaseModel):
    """One partner's tags as a receiver heard them in the last window: no address, no device."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    partner: Partner
    ago_s: Annotated[float, Field(ge=0, le=60)] = Field(
        description="seconds between the last advert heard and `ts` (clock-free: no shared clock needed)")
    rssi: Annotated[int, Field(ge=-127, le=20)] = Field(description="median level of the window, dBm")
    adverts: Annotated[int, Field(ge=1, le=1000)]


class TagsHeard(Envelope):
    """A second receiver's summary (the panel's Pi scanning for the household's tags, issue 14):
    sent every `window_s` while it scans, also empty (so silence there means something). Only the
    household's tags, per partner; never addresses or other devices; not retained, not stored (R4)."""

    window_s: Annotated[float, Field(gt=0, le=30)]
    scanning: bool = Field(description="false: its radio is down; its silence says nothing")
    heard: list[TagHeard] = Field(default_factory=list, max_length=16)


class Apart(Envelope):
    """The wearable's own verdict; coordinates never leave the wearable (R4)."""

    apart: bool | None = Field(description="at least 100 m from home; null without a GPS fix")
    fix: bool


class Heartbeat(Envelope):
    """A wearable is alive (every few minutes); the hub raises `wearable.silent.<p>` when they
    stop (docs/wearable.md). Never where it is (R4)."""

    battery: Annotated[int, Field(ge=0, le=100)] | None = Field(
        None, description="percent; null when the wearable cannot measure it")
    gnss: bool = Field(description="its GNSS receiver is on (during a time-out)")
    link: Literal["home", "organisation"] | None = Field(
        None, description="how it reaches the hub: the home broker, or the organisation's broker "
        "when it is away from home Wi-Fi; sent on every (re)connect and switch")


class PanelPress(Envelope):
    press: Literal["long", "short"]
    held_s: Annotated[float, Field(ge=0, le=600)]
    queued: bool = Field(False, description="held back while the hub was offline, sent on its return")


class PanelAnswer(Envelope):
    question_id: uuid.UUID
    choice: Choice


class PartnerInput(Envelope):
    """A partner's own input. Which partner is taken from the topic, never from the payload."""

    kind: Literal["button", "answer"]
    via: Literal["wearable", "sms"]
    question_id: uuid.UUID | None = None
    choice: Choice | None = None

    @model_validator(mode="after")
    def _answer_needs_question(self) -> PartnerInput:
        if self.kind == "answer" and (self.question_id is None or self.choice is None):
            raise ValueError("an answer needs question_id and choice")
        if self.kind == "button" and (self.question_id is not None or self.choice is not None):
            raise ValueError("a button press carries no question_id or choice")
        return self


class PartnerPrompt(Envelope):
    """Something the hub asks or tells one partner; texts live on the device, keyed."""

    question_id: uuid.UUID
    kind: Literal["checkin", "evaluation", "reminder", "notice"]
    key: Code
    options: Annotated[int, Field(ge=0, le=3)] = 0
    task: Annotated[int, Field(ge=1, le=10)] | None = Field(
        None, description="which of the partner's own calming tasks to remind of")


class CallRequest(Envelope):
    """Ask the caller to reach a partner's contacts; contacts are referenced, never numbers."""

    partner: Partner
    reason: Literal["early_return", "not_calm", "no_answer", "test"]
    timeout_id: uuid.UUID | None = None
    contact: ContactIndex | None = Field(None, description="only this contact (test call); else the ladder")


class CallResult(Envelope):
    """One step of the escalation ladder, answering a request by its id."""

    request_id: uuid.UUID
    partner: Partner
    contact: ContactIndex | None = None
    round: Annotated[int, Field(ge=1, le=10)] = 1
    step: Literal["dial", "sms", "ladder"]
    outcome: Literal["acknowledged", "answered_no_ack", "busy", "no_answer", "rejected",
                     "failed", "sms_sent", "sms_failed", "exhausted"]
    final: bool = Field(description="true on the last result for this request")
    error: Reason | None = None


class Health(Envelope):
    """A service's own current faults; retained. An empty list means healthy."""

    faults: list[Fault] = Field(default_factory=list, max_length=32)


class Applied(Envelope):
    """The hub has applied and saved these inputs of the reader (by message id): the sender may
    forget them (docs/reliability.md, "Acknowledgement")."""

    ids: list[uuid.UUID] = Field(min_length=1, max_length=64)


class ShareStatus(Envelope):
    """What the care organisation sees of a household until the consent filter exists
    (docs/fleet.md): whether the equipment works. Fault codes only, no service names of a
    partner's device, no reasons, no phase, nothing about either partner (R9, R11)."""

    hub: Literal["online", "offline", "stopped", "unknown"]
    panel: Literal["online", "offline", "stopped", "unknown"]
    caller: Literal["online", "offline", "stopped", "unknown"]
    wearables_online: Annotated[int, Field(ge=0, le=2)] = Field(
        description="how many wearables are connected, never whose")
    faults: list[Code] = Field(default_factory=list, max_length=32,
                               description="current fault codes of all services, sorted, once each")


AVAILABILITY = ("online", "offline", "stopped")


SealedKind = Literal["timeout", "topics", "consent", "wipe", "access"]


class Sealed(Envelope):
    """What travels on `share/summary`: an age ciphertext only the care organisation opens
    (mqtt/seal.py, R11); the broker and the bridge see the household and the kind, nothing else."""

    household: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,31}$")
    kind: SealedKind
    age: str = Field(min_length=1, max_length=65536, description="base64 of the age ciphertext")


ShareCategory = Literal["procedure", "checkin", "call", "sensing", "presence", "evaluation"]


class ShareRequest(Envelope):
    """A partner's own request, sent by SMS from their own number and relayed by the caller (the
    topic names the partner): withdraw their consent (no categories: all of them), or read the
    household's access log (R6, R9). Giving consent again goes through the installer."""

    kind: Literal["withdraw", "access_log"]
    categories: list[ShareCategory] = Field(default_factory=list, max_length=6)


class AccessEntry(BaseModel):
    """One line of the household's access log: who (`installer`, `a`, `b`, `worker.<id>`), what
    and when; never an answer, a name or a number."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ts: AwareDatetime
    who: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_.]{0,63}$")] = Field(
        description="installer, a, b or worker.<the care worker's account id>")
    action: Code
    detail: Annotated[str, StringConstraints(pattern=r"^[a-z0-9_.,:-]{0,64}$")] = ""
    allowed: bool = True


class ShareReply(Envelope):
    """The share service's answer to that partner's request, texted by the caller to that
    partner's own number only: what was withdrawn, or the last entries of the access log."""

    kind: Literal["withdrawn", "access_log"]
    categories: list[ShareCategory] = Field(default_factory=list, max_length=6)
    entries: list[AccessEntry] = Field(default_factory=list, max_length=10)


class AccessNotice(Envelope):
    """The organisation read or changed something of this household (R6): who (a care worker's
    account id, never a partner), what and whether it was allowed. Mirrored into the household's
    access log, which both partners can see."""

    worker: Code = Field(description="the care worker's account id at the organisation")
    action: Literal["report", "export", "list", "wipe", "consent", "bridge"]
    allowed: bool
