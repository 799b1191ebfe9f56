"""The caller's configuration: its own file (the only place phone numbers are kept) and what it
reads from the household plan, where each partner's language, SMS check-ins and calming tasks are
written once (issue 15). The plan refers to contacts by partner and position; the entries here
are those positions, in calling order."""
from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from core.config import StrictConfig, problems_of, read_toml, validate
from core.errors import ConfigError

E164 = Annotated[str, StringConstraints(pattern=r"^\+[1-9]\d{6,14}$")]
MAX_CONTACTS = 3
# written once, in the plan: a caller file that still holds them is told where they went
FROM_PLAN = ("sms_checkins", "language", "calming_tasks")


class ContactEntry(StrictConfig):
    """Contact n of a partner: the n-th entry, as the plan counts them."""

    number: E164
    language: Literal["nl", "en"] = "nl"


class PartnerPhone(StrictConfig):
    """A partner's own number (file); the rest comes from the plan when the file is loaded."""

    number: E164 | None = None
    sms_checkins: bool = False
    language: Literal["nl", "en"] = "nl"
    calming_tasks: list[str] = Field(default_factory=list, max_length=10,
                                     description="the partner's own tasks, read from the plan")


class CallerConfig(StrictConfig):
    """The caller's own file: the only place phone numbers are kept."""

    household: str
    code_word: Annotated[str, StringConstraints(pattern=r"^[A-Za-z][A-Za-z -]{1,30}$")] = Field(
        description="the word the contacts know the household by; never a name")
    credentials: str
    plan: str = Field("/etc/timeout-hub/household.toml", description=(
        "the household plan: the partners' languages, SMS check-ins and calming tasks"))
    state_dir: str = "/var/lib/timeout-hub/caller"
    host: str = "127.0.0.1"
    port: int = 1883
    modem_port: str = "/dev/ttyUSB2"
    ring_seconds: float = Field(35.0, ge=25.0, le=45.0)
    rounds: int = Field(2, ge=2, le=5)
    message_repeats: int = Field(3, ge=1, le=5)
    health_every_seconds: float = Field(300.0, ge=1.0, le=3600.0)
    dial_attempts: int = Field(4, ge=1, le=10, description=(
        "tries of one step when the modem refuses the dial (nothing rang) before the next step"))
    dial_backoff_seconds: float = Field(10.0, ge=1.0, le=120.0, description=(
        "wait before the second try of a refused dial; doubled before each further try"))
    power_gpio: int | None = None
    gnss_host: str = "127.0.0.1"
    gnss_port: int = Field(2947, ge=0, le=65535, description="gpsd with the modem's GNSS; 0: none")
    clock_flag: str = "/run/timeout-hub/clock-from-gnss"
    time_scale: float = Field(1.0, gt=0, le=1.0,
                              description="tests and demo only: ring times run this much faster")
    contacts: dict[Literal["a", "b"], list[ContactEntry]] = Field(default_factory=dict)
    partners: dict[Literal["a", "b"], PartnerPhone] = Field(default_factory=dict)


class CallerConfigError(ConfigError):
    """The caller's file is not valid, or not private."""


class _Lenient(BaseModel):
    # the hub validates the whole plan; the caller reads only its few facts and ignores the rest
    model_config = ConfigDict(extra="ignore", frozen=True, strict=True)


class PlanPartner(_Lenient):
    language: Literal["nl", "en"] = "nl"
    sms_checkins: bool = False
    calming_tasks: list[str] = Field(default_factory=list, max_length=10)


class PlanFacts(_Lenient):
    """What the caller needs from the household plan."""

    household: str
    partners: dict[Literal["a", "b"], PlanPartner] = Field(default_factory=dict)


def read_plan_facts(path: Path | str) -> PlanFacts:
    data = read_toml(path, CallerConfigError, "household.toml")
    try:
        return PlanFacts.model_validate(data)
    except ValidationError as e:
        raise CallerConfigError(problems_of(e), str(path)) from None


def _written_elsewhere(data: dict[str, Any]) -> list[tuple[str, str]]:
    """A caller file written before issue 15: say what to change, one sentence per setting."""
    problems: list[tuple[str, str]] = []
    partners = data.get("partners")
    for p, phone in (partners.items() if isinstance(partners, dict) else ()):
        for key in FROM_PLAN if isinstance(phone, dict) else ():
            if key in phone:
                problems.append((f"partners.{p}.{key}", "is written once, in the household plan "
                                 f"(partners.{p}.{key} there); remove it here"))
    contacts = data.get("contacts")
    for p, entries in (contacts.items() if isinstance(contacts, dict) else ()):
        for i, entry in enumerate(entries if isinstance(entries, list) else [], 1):
            if isinstance(entry, dict) and "ref" in entry:
                problems.append((f"contacts.{p}[{i}].ref", "is no longer used: the plan counts "
                                 "each partner's contacts and this file lists them in calling "
                                 "order; remove it here"))
    return problems


def load_caller_config(path: Path | str) -> CallerConfig:
    """The caller's file, private and valid, with each partner's plan facts filled in from the
    household plan it names; CallerConfigError with every problem otherwise."""
    cfg = load_caller_file(path)
    facts = read_plan_facts(cfg.plan)
    if facts.household != cfg.household:
        raise CallerConfigError([("household", f"is {cfg.household}, but the plan {cfg.plan} is "
                                  f"for {facts.household}")], str(path))
    partners = {p: PartnerPhone(number=cfg.partners[p].number if p in cfg.partners else None,
                                sms_checkins=f.sms_checkins, language=f.language,
                                calming_tasks=list(f.calming_tasks))
                for p, f in facts.partners.items()}
    return cfg.model_copy(update={"partners": partners})


def load_caller_file(path: Path | str) -> CallerConfig:
    """The caller's own file alone (private, valid), without reading the plan it names: what
    `check-config --caller` checks against the plan it is given."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except OSError:
        mode = 0   # read_toml says why (missing, a folder, no permission)
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise CallerConfigError([("(file)", f"{path} holds phone numbers and must be private: "
                                            f"chmod 600 {path}")], str(path))
    data = read_toml(path, CallerConfigError)
    old = _written_elsewhere(data)
    if old:
        raise CallerConfigError(old, str(path))
    cfg = validate(CallerConfig, data, str(path), CallerConfigError)
    for partner, entries in cfg.contacts.items():
        if len(entries) > MAX_CONTACTS:
            raise CallerConfigError([(f"contacts.{partner}", "at most 3 contacts per partner")],
                                    str(path))
    return cfg


def write_caller_config(path: Path, settings: dict[str, Any]) -> Path:
    """Write a caller file (mode 0600) from plain values: what the installer's tooling, the
    demo, the bench and the tests use instead of hand-written TOML. TOML has no null: a setting
    given as None is left out, so it takes its default when the file is read."""
    import tomli_w

    def plain(v: object) -> object:
        if isinstance(v, dict):
            return {str(k): plain(x) for k, x in v.items() if x is not None}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, os.PathLike):
            return os.fspath(v)
        return v
    text = tomli_w.dumps(plain(settings))
    path = Path(path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)
    return path
