"""The topic contract: one table from which the broker ACL, the client's checks and the generated
part of docs/mqtt.md are all made, so they cannot drift apart.

Topics are relative to `timeout/<household>/`. `{partner}` stands for `a` or `b`, `{service}` for
a service name; the roles allowed on such a topic are expanded with the same value, which is how
"partner a's wearable can only write partner/a/..." is enforced by the broker.
"""
from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from pydantic import BaseModel

from mqtt import schemas
from mqtt.errors import ContractError

CONTRACT_VERSION = 1
ROOT = "timeout"
HOUSEHOLD_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,31}$")

# The installer's tools (`timeout-hub doctor`, `reset`) are a role of their own, not a service:
# with their own password they read what the services report without taking over a service's
# session (the broker uses the user name as client id), and they publish nothing.
TOOLS: tuple[str, ...] = ("doctor",)
ROLES: tuple[str, ...] = (*schemas.SERVICES, *TOOLS)
ALL = frozenset(ROLES)
# Exit-door sensors: the id names the service that owns the sensor, so the broker's ACL (made
# from this table like every other entry) lets only that service publish the door.
DOORS: tuple[str, ...] = ("hub-1", "hub-2", "hub-3", "panel-1", "panel-2")
DOOR_ID_RE = re.compile(r"^(hub|panel)-[1-9]$")


@dataclass(frozen=True)
class TopicSpec:
    pattern: str
    schema: type[BaseModel] | None  # None: plain-text availability
    qos: int
    retain: bool
    publishers: frozenset[str]
    subscribers: frozenset[str]
    description: str
    # An input the hub confirms on `applied/<sender>` once applied and saved; the sender keeps
    # it in its outbox until then (docs/reliability.md, "Acknowledgement").
    confirmed: bool = False
    # Sent to a partner's wearable away from home, through the bridge to the organisation's
    # broker (mqtt/bridge_config.py), if that wearable reads it. Only what it needs to work away.
    away: bool = False
    # a plain-text topic whose words are not the availability words (the broker's own notices)
    words: tuple[str, ...] | None = None

    @property
    def durable(self) -> bool:
        """Goes through the sender's persistent outbox (must not be lost)."""
        return self.qos == 1 and self.schema is not None

    def expand(self) -> Iterator[tuple[str, frozenset[str], frozenset[str]]]:
        """Concrete topics with the roles allowed on each."""
        if "{partner}" in self.pattern:
            for p in schemas.PARTNERS:
                yield (self.pattern.replace("{partner}", p),
                       frozenset(r.replace("{partner}", p) for r in self.publishers),
                       frozenset(r.replace("{partner}", p) for r in self.subscribers))
        elif "{door}" in self.pattern:
            for d in DOORS:
                owner = d.split("-")[0]
                yield (self.pattern.replace("{door}", d),
                       frozenset(owner if r == "{owner}" else r for r in self.publishers),
                       self.subscribers)
        elif "{service}" in self.pattern:
            for s in schemas.SERVICES:
                def sub(roles: frozenset[str], s: str = s) -> frozenset[str]:
                    return frozenset(s if r == "{service}" else r for r in roles)
                yield self.pattern.replace("{service}", s), sub(self.publishers), sub(self.subscribers)
        else:
            yield self.pattern, self.publishers, self.subscribers


def _roles(*names: str) -> frozenset[str]:
    return frozenset(names)


TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec("{service}/available", None, 1, True, _roles("{service}"), _roles("hub", "doctor", "bridge"),
              "`online` while connected, `offline` (last will), `stopped` on a clean exit. "
              "Everyone may read `hub/available` (see below).", away=True),
    TopicSpec("{service}/health", schemas.Health, 1, True, _roles("{service}"), _roles("hub", "doctor", "bridge"),
              "A service's current faults; the hub folds them into `state.faults` (and adds "
              "`service.offline` when a service's last will arrives)."),
    TopicSpec("state", schemas.State, 1, True, _roles("hub"),
              _roles("hub", "panel", "wearable-a", "wearable-b"),
              "Everything the panel shows. Only the joint check-in verdict, never one partner's answer (R9)."),
    TopicSpec("events", schemas.Event, 1, False, _roles("hub"), _roles("hub", "bridge"),
              "Every procedure event, for the event log and (consented categories only) the care organisation."),
    # The panel shows the thermometer from `state`; no other service reads the sound numbers
    # (the installer's doctor reads them to see that the microphone gives a plausible level).
    TopicSpec("sensor/sound", schemas.Sound, 0, False, _roles("hub"), _roles("hub", "doctor"),
              "Derived sound numbers at most once per second; local only, never bridged (R1)."),
    TopicSpec("partner/{partner}/presence", schemas.Presence, 1, True, _roles("hub"), _roles("hub"),
              "Home/away of that partner's tag, from BLE. Presence, never location (R4)."),
    TopicSpec("partner/{partner}/apart", schemas.Apart, 1, True, _roles("wearable-{partner}"), _roles("hub"),
              "The wearable's verdict \"at least 100 m from home\"; never coordinates (R4)."),
    TopicSpec("partner/{partner}/heartbeat", schemas.Heartbeat, 0, False, _roles("wearable-{partner}"),
              _roles("hub"), "That partner's wearable is alive (every 10 minutes): battery and "
              "whether its GNSS is on. Silent for an hour: the hub shows `wearable.silent.<p>`."),
    TopicSpec("partner/{partner}/input", schemas.PartnerInput, 1, False,
              _roles("wearable-{partner}", "caller"), _roles("hub"),
              "That partner's button or answer (wearable, or an SMS reply relayed by the caller).",
              confirmed=True),
    TopicSpec("partner/{partner}/prompt", schemas.PartnerPrompt, 1, False, _roles("hub"),
              _roles("hub", "wearable-{partner}", "caller"),
              "A check-in, evaluation question or calming-task reminder for that partner only.",
              away=True),
    TopicSpec("panel/press", schemas.PanelPress, 1, False, _roles("panel"), _roles("hub", "doctor"),
              "The time-out button: long press (start) or short press (ignored, counted).",
              confirmed=True),
    TopicSpec("panel/answer", schemas.PanelAnswer, 1, False, _roles("panel"), _roles("hub"),
              "A mood button pressed while a question is open.", confirmed=True),
    TopicSpec("call/request", schemas.CallRequest, 1, False, _roles("hub"), _roles("hub", "caller"),
              "Reach a partner's contact persons; contacts referenced as (partner, index)."),
    TopicSpec("call/result", schemas.CallResult, 1, False, _roles("caller"), _roles("hub"),
              "Each step of the ladder, with `request_id` of the request it answers.",
              confirmed=True),
    TopicSpec("door/{door}", schemas.DoorState, 1, True, _roles("{owner}"), _roles("hub"),
              "An exit door's last state (open/closed/unknown), published only by the service that "
              "owns the sensor: `hub-N` by the hub (a BTHome sensor or a hub GPIO), `panel-N` by "
              "the panel (its GPIO). Never who opened it (R4)."),
    TopicSpec("door/{door}/event", schemas.DoorEvent, 1, False, _roles("{owner}"), _roles("hub"),
              "The door opened or closed; with the tags it tells a departure or a return."),
    TopicSpec("panel/tags_heard", schemas.TagsHeard, 0, False, _roles("panel"), _roles("hub"),
              "The panel Pi as a second BLE receiver: per partner, when and how strongly it heard "
              "their tags in the last window (every few seconds, also empty). For the door fusion "
              "only; never addresses, never kept (R4)."),
    TopicSpec("share/status", schemas.ShareStatus, 1, True, _roles("bridge"), _roles("bridge"),
              "The equipment status the care organisation sees; the bridge to the organisation "
              "sends out only `share/` "
              "(docs/fleet.md)."),
    TopicSpec("share/summary", schemas.Sealed, 1, False, _roles("bridge"), _roles("bridge"),
              "A consented summary (a time-out, topics kept) or a consent change, sealed to the care "
              "organisation's age key by the consent filter; the bridge forwards it (R9, R11)."),
    TopicSpec("org/access", schemas.AccessNotice, 1, False, _roles("bridge"), _roles("bridge"),
              "The organisation read or changed this household's data: into the household's "
              "access log, which both partners can see (R6)."),
    TopicSpec("partner/{partner}/share-request", schemas.ShareRequest, 1, False, _roles("caller"),
              _roles("bridge"),
              "That partner's own SMS (from their own number): withdraw their consent, or read the "
              "access log; the consent filter applies it at once (R6, R9)."),
    TopicSpec("partner/{partner}/share-reply", schemas.ShareReply, 1, False, _roles("bridge"),
              _roles("caller"),
              "The consent filter's answer to that partner's request, texted to that partner only."),
    TopicSpec("bridge/link", None, 1, True, frozenset(), _roles("bridge"),
              "The household broker's own notice whether its bridge to the organisation is up "
              "(`1`) or down (`0`); the consent filter hands summaries to the bus only while it is "
              "up, so nothing waits in the broker's bridge queue (docs/care.md).",
              words=("0", "1")),
    TopicSpec("applied/{service}", schemas.Applied, 0, False, _roles("hub"), _roles("{service}"),
              "The ids of that service's inputs the hub has applied and saved; until then the "
              "service keeps them and sends them again when the hub comes (back) online.", away=True),
)

# Every service may see whether the hub is there (the panel shows "hub offline").
HUB_AVAILABILITY_READERS = ALL


def away_topics(partner: str) -> list[str]:
    """What partner p's wearable reads when it is away from home (via the organisation's broker):
    the `away` topics it subscribes to. Never `state` (the thermometer, faults and the question
    stay in the home), never the other partner's prompts."""
    role = f"wearable-{partner}"
    return sorted(c.topic for c in CONCRETE.values() if c.spec.away and role in c.subscribers)


def check_household(household: str) -> str:
    if not HOUSEHOLD_RE.match(household or ""):
        raise ContractError(
            f"household id {household!r} is not valid: use 2-32 lowercase letters, digits or '-', "
            "starting with a letter or digit (it becomes part of every topic)")
    return household


def prefix(household: str) -> str:
    return f"{ROOT}/{check_household(household)}/"


@dataclass(frozen=True)
class Concrete:
    topic: str  # relative
    spec: TopicSpec
    publishers: frozenset[str]
    subscribers: frozenset[str]
    partner: str | None


def _build_index() -> dict[str, Concrete]:
    index: dict[str, Concrete] = {}
    for spec in TOPICS:
        for topic, pubs, subs in spec.expand():
            if topic == "hub/available":
                subs = HUB_AVAILABILITY_READERS
            parts = topic.split("/")
            partner = parts[1] if parts[0] == "partner" else None
            index[topic] = Concrete(topic, spec, pubs, subs, partner)
    return index


CONCRETE: dict[str, Concrete] = _build_index()


def lookup(relative_topic: str) -> Concrete:
    try:
        return CONCRETE[relative_topic]
    except KeyError:
        raise ContractError(f"topic {relative_topic!r} is not in the contract") from None


def expand_pattern(pattern: str) -> list[str]:
    """`partner/{partner}/input` -> both partners' concrete topics (the broker ACL does not let a
    reader subscribe with wildcards it has no entry for, so we never subscribe with `+`)."""
    out = [c.topic for c in CONCRETE.values()
           if c.spec.pattern == pattern or c.topic == pattern]
    if not out:
        raise ContractError(f"topic {pattern!r} is not in the contract")
    return out


def permissions(role: str) -> dict[str, str]:
    """Relative topic -> mosquitto ACL access (`read`, `write`, `readwrite`) for one role."""
    if role not in ALL:
        raise ContractError(f"unknown role {role!r}")
    out: dict[str, str] = {}
    for c in CONCRETE.values():
        r, w = role in c.subscribers, role in c.publishers
        if r or w:
            out[c.topic] = "readwrite" if r and w else ("read" if r else "write")
    return out


def acl_text(household: str) -> str:
    """The mosquitto ACL file: one block per role, nothing for anonymous clients."""
    pre = prefix(household)
    lines = [f"# timeout-hub ACL, contract v{CONTRACT_VERSION}, household {household}.",
             "# Generated by `timeout-hub broker-config`; edit mqtt/contract.py instead.", ""]
    for role in ROLES:
        lines.append(f"user {role}")
        for topic, access in sorted(permissions(role).items()):
            lines.append(f"topic {access} {pre}{topic}")
        lines.append("")
    return "\n".join(lines)
