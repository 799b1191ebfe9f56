"""The wizard's steps, in order. Each takes the run's `Ctx`, asks what it needs, writes its file
and returns one line for the summary (no phone numbers); it raises `BadAnswer` to stop."""
from __future__ import annotations

import datetime as dt
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import ConfigError
from firmware.provision.ask import Asker, BadAnswer
from firmware.provision.pairing import HELD_RSSI_DBM, IRK_RE, listen, strongest_unknown
from firmware.provision.state import Progress
from firmware.provision.texts import t


@dataclass
class Seams:
    """The hardware the wizard talks to, replaceable in tests by the project's own simulations."""
    ble_backend: type | None = None
    ble_kwargs: dict[str, Any] = field(default_factory=dict)
    # the walk test's backend kwargs per (partner, place): tests replay a trace for each place
    walk_kwargs: Callable[[str, str], dict[str, Any]] | None = None
    pin_factory: Any = None    # gpiozero's pin factory: the Pi's own by default, MockFactory in tests


@dataclass
class Ctx:
    etc: Path                  # /etc/timeout-hub: plan, caller file, sensors, broker, record
    state: Path                # /var/lib/timeout-hub
    lang: str
    ask: Asker
    progress: Progress
    seams: Seams
    say: Callable[[str], None] = print

    @property
    def plan_path(self) -> Path:
        return self.etc / "household.toml"

    def tr(self, key: str, **kw: object) -> str:
        return t(self.lang, key, **kw)


class StepFailed(Exception):
    """A step could not be done (the modem does not answer, ...): one sentence, exit 1, the step
    stays unrecorded so a rerun tries it again."""


def yes_no(c: Ctx) -> Callable[[Any], bool]:
    def parse(v: Any) -> bool:
        if isinstance(v, bool):
            return v
        if str(v).strip().lower() in ("y", "yes", "j", "ja"):
            return True
        if str(v).strip().lower() in ("n", "no", "nee"):
            return False
        raise ValueError(c.tr("yes_no"))
    return parse


def _toml(path: Path) -> dict[str, Any]:
    return tomllib.loads(path.read_text(encoding="utf-8"))


def _write_toml(path: Path, data: dict[str, Any], mode: int = 0o644) -> None:
    import os

    import tomli_w
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        f.write(tomli_w.dumps(data))
    os.replace(tmp, path)


# 1 -----------------------------------------------------------------------------------------------
def household_and_broker(c: Ctx) -> str:
    from mqtt.broker_config import write_broker_config

    def household(v: Any) -> str:
        v = str(v).strip()
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]{1,31}", v):
            raise ValueError(c.tr("bad_household", v=v))
        return v

    def port(v: Any) -> int:
        try:
            p = int(v)
        except (TypeError, ValueError):
            p = 0
        if not 0 < p < 65536:
            raise ValueError(c.tr("bad_port", v=v))
        return p
    hh = c.ask.ask("household.id", c.tr("q_household"), household)
    p = c.ask.ask("household.port", c.tr("q_port"), port, default=1883)
    creds = write_broker_config(c.etc / "broker", hh, port=p)
    c.progress.facts.update(household=hh, port=p)
    return f"household {hh}, broker on 127.0.0.1:{p}, {len(creds)} service passwords"


# 2 -----------------------------------------------------------------------------------------------
def plan(c: Ctx) -> str:
    """A prepared plan file, or the interview; either may leave the tags to step 4."""
    from firmware.hub.plan import date_findings
    from firmware.provision.interview import draft_plan, interview, load_draft
    hh = c.progress.facts["household"]

    def prepared(v: Any) -> dict[str, Any] | None:
        if str(v).strip().lower() == "interview":
            return None
        path = Path(str(v)).expanduser()
        if not path.is_file():
            raise ValueError(c.tr("no_file", v=path))
        try:
            p = load_draft(path)
        except ConfigError as e:
            raise ValueError(c.tr("bad_plan", why="; ".join(f"{w}: {s}" for w, s in e.problems))) from None
        refused = [f.sentence for f in date_findings(p, dt.date.today()) if f.install]
        if refused:
            raise ValueError(c.tr("bad_plan", why="; ".join(refused)))
        if p.household != hh:
            raise ValueError(c.tr("other_household", plan=p.household, hh=hh))
        return _toml(path)
    if _in_answers(c) and c.ask.given("plan.file") is None and c.ask.given("plan.interview") is not None:
        data = None
    else:
        data = c.ask.ask("plan.file", c.tr("q_plan"), prepared)
    how = "prepared plan"
    if data is None:
        c.say(c.tr("interview_start"))
        data = interview(c.ask, c.lang, hh, dt.date.today())
        try:
            draft_plan(data)
        except ConfigError as e:
            raise BadAnswer("plan.interview", c.tr("bad_plan", why="; ".join(
                s for _, s in e.problems))) from None
        how = "plan from the interview"
    _write_toml(c.plan_path, data)
    p = load_draft(c.plan_path)
    tags_later = [q for q, pp in p.partners.items() if not pp.tags]
    return (f"{how} valid: at least {p.timeout.minimum_minutes} min, contacts a "
            f"{p.partners['a'].contacts}, b {p.partners['b'].contacts}"
            + (f"; tags of {' and '.join(tags_later)} in step 4" if tags_later else ""))


# 3 -----------------------------------------------------------------------------------------------
E164 = re.compile(r"^\+[1-9]\d{6,14}$")


def contacts(c: Ctx) -> str:
    from firmware.caller.config import load_caller_file, write_caller_config
    from firmware.config_check import mismatches
    from firmware.provision.interview import load_draft
    p = load_draft(c.plan_path)   # the tags may come only in step 4

    def numbers(partner: str, want: int) -> Callable[[Any], list[str]]:
        def parse(v: Any) -> list[str]:
            items = v if isinstance(v, list) else [x for x in str(v).split(",") if x.strip()]
            out = [str(x).strip() for x in items]
            for n in out:
                if not E164.match(n):
                    raise ValueError(c.tr("bad_number", v=n))
            if len(out) != want:
                raise ValueError(c.tr("count", p=partner, n=want, m=len(out)))
            return out
        return parse

    def word(v: Any) -> str:
        v = str(v).strip()
        if not re.fullmatch(r"[A-Za-z][A-Za-z -]{1,30}", v):
            raise ValueError(c.tr("q_code_word"))
        return v
    settings: dict[str, Any] = {
        "household": p.household,
        "code_word": c.ask.ask("contacts.code_word", c.tr("q_code_word"), word),
        "credentials": str(c.etc / "broker" / "credentials" / "caller.json"),
        "plan": str(c.plan_path), "state_dir": str(c.state / "caller"),
        "port": c.progress.facts["port"],
        "modem_port": c.ask.ask("contacts.modem_port", c.tr("q_modem"), str, default="/dev/ttyUSB2"),
        "contacts": {}, "partners": {}}
    for partner in ("a", "b"):
        pp = p.partners[partner]   # type: ignore[index]
        if pp.contacts:
            settings["contacts"][partner] = [
                {"number": n} for n in c.ask.ask(f"contacts.{partner}", c.tr("q_contacts", p=partner),
                                                 numbers(partner, pp.contacts))]
        if pp.sms_checkins:
            settings["partners"][partner] = {"number": c.ask.ask(
                f"contacts.phone_{partner}", c.tr("q_phone", p=partner), numbers(partner, 1))[0]}
    # the installer's own settings of the caller (ring time, GNSS) pass through, checked below
    extra = c.ask.given("contacts.caller") if c.ask.answers is not None else None
    settings.update(extra or {})
    path = write_caller_config(c.etc / "caller.toml", settings)
    try:
        found = mismatches(p, load_caller_file(path))
    except ConfigError as e:
        raise BadAnswer("contacts.caller", "; ".join(f"{w}: {s}" for w, s in e.problems)) from None
    if found:
        raise BadAnswer("contacts", "; ".join(found))
    n = {k: len(v) for k, v in settings["contacts"].items()}
    return f"caller file written (mode 0600): contacts a {n.get('a', 0)}, b {n.get('b', 0)}; fits the plan"


# 4 -----------------------------------------------------------------------------------------------
def tags(c: Ctx) -> str:
    from firmware.hub.plan import load_plan, validate_plan
    data = _toml(c.plan_path)
    seconds = float(c.ask.given("tags.listen_seconds") or 5.0) if c.ask.answers is not None else 5.0
    said = []

    def choice(v: Any) -> str:
        v = str(v).strip()
        if v.lower() in ("pair", "keep") or IRK_RE.match(v):
            return v if v.startswith("irk:") else v.lower()
        raise ValueError(c.tr("bad_tag", v=v))
    yes = yes_no(c)
    for partner in ("a", "b"):
        pp = data["partners"][partner]
        how = c.ask.ask(f"tags.{partner}", c.tr("q_tag", p=partner), choice, default="pair")
        if how == "keep":
            said.append(f"{partner}: {len(pp.get('tags', []))} kept")
            continue
        if how.startswith("irk:"):
            pp["tags"] = [how]
            said.append(f"{partner}: phone (IRK)")
            continue
        while True:
            known = {str(x).upper() for q in ("a", "b") if q != partner
                     for x in data["partners"][q].get("tags", [])}
            c.say(c.tr("hold_tag", p=partner, s=seconds))
            heard = _listen_with_progress(c, seconds)
            found = strongest_unknown(heard, known)
            heard.clear()   # R4: nothing else heard is kept
            if found is None:
                if c.ask.answers is not None:
                    raise BadAnswer(f"tags.{partner}", c.tr("no_tag_heard", min=HELD_RSSI_DBM))
                c.say("  " + c.tr("no_tag_heard", min=HELD_RSSI_DBM))
                continue
            addr, rssi = found
            if c.ask.ask(f"tags.{partner}_confirm", c.tr("offer_tag", addr=addr, rssi=rssi, p=partner),
                         yes, default=True if c.ask.answers is not None else None):
                pp["tags"] = [addr]
                said.append(f"{partner}: tag paired at {rssi} dBm")
                break
            if c.ask.answers is not None:
                raise BadAnswer(f"tags.{partner}_confirm", c.tr("not_this_tag"))
            c.say("  " + c.tr("not_this_tag"))
    try:
        validate_plan(data)
    except ConfigError as e:
        raise BadAnswer("tags", c.tr("bad_plan", why="; ".join(f"{w}: {s}" for w, s in e.problems))) from None
    _write_toml(c.plan_path, data)
    load_plan(c.plan_path)
    return "; ".join(said)


def _listen_with_progress(c: Ctx, seconds: float) -> dict[str, int]:
    seams = c.seams
    try:
        from rich.progress import Progress as Bar  # only when the venv has it; never required
    except ImportError:
        return listen(seconds, seams.ble_backend, seams.ble_kwargs,
                      tick=lambda s: c.say(f"  {s:.0f}/{seconds:.0f} s") if s % 1 == 0 else None)
    with Bar(transient=True) as bar:
        task = bar.add_task("BLE", total=seconds)
        return listen(seconds, seams.ble_backend, seams.ble_kwargs,
                      tick=lambda s: bar.update(task, completed=s))


# 5 -----------------------------------------------------------------------------------------------
def door(c: Ctx) -> str:
    from firmware.hub.sensors import SensorsError, load_sensors

    def kind(v: Any) -> str:
        v = str(v).strip().lower()
        if v not in ("none", "gpio", "bthome"):
            raise ValueError(c.tr("bad_door", v=v))
        return v
    path = c.etc / "sensors.toml"
    data: dict[str, Any] = _toml(path) if path.exists() else {
        "microphone": {"enabled": True}, "ble": {"enabled": True, "adapter": "hci0"}}
    k = c.ask.ask("door.kind", c.tr("q_door"), kind, default="none")
    data["doors"] = []
    if k != "none":
        d: dict[str, Any] = {"id": "hub-1", "kind": k}
        if k == "gpio":
            d["pin"] = c.ask.ask("door.pin", c.tr("q_pin"), int)
        else:
            d["mac"] = c.ask.ask("door.mac", c.tr("q_mac"), lambda v: str(v).strip().upper())
            d["bind_key"] = c.ask.ask("door.bind_key", c.tr("q_key"), lambda v: str(v).strip().lower())
        data["doors"] = [d]
    _write_toml(path, data)
    try:
        load_sensors(path)
    except SensorsError as e:
        path.unlink()
        raise BadAnswer("door", c.tr("bad_sensors", why="; ".join(s for _, s in e.problems))) from None
    return "no door sensor" if k == "none" else f"door hub-1: {k}"


def not_built(c: Ctx) -> str:
    c.say("  " + c.tr("not_built"))
    return "NOT BUILT: do it by hand (installer guide)"


def _in_answers(c: Ctx) -> bool:
    return c.ask.answers is not None


# 6 -----------------------------------------------------------------------------------------------
def microphone(c: Ctx) -> str:
    """The calibrate command's own functions: the 94 dB calibrator's offset into sensors.toml, and
    a minute of the household's normal talk as the baseline (numbers only, R1)."""
    from firmware.hub.calibrate_cli import household_baseline, reference_offset
    from firmware.hub.sensors import SensorsError, load_sensors
    path = c.etc / "sensors.toml"
    data = _toml(path)
    mic = data.setdefault("microphone", {"enabled": True})
    yes = yes_no(c)
    device = c.ask.ask("microphone.device", c.tr("q_mic_device"), lambda v: str(v).strip(),
                       default=str(mic.get("device", "default")))
    if device != "default":
        mic["device"] = int(device) if device.isdigit() else device
    dev = mic.get("device")
    rate = int(mic.get("rate", 16000))
    said = []
    if c.ask.ask("microphone.calibrator", c.tr("q_calibrator"), yes, default=True):
        ref = c.ask.ask("microphone.reference_db", c.tr("q_reference_db"), float, default=94.0)
        c.say(c.tr("listening_calibrator"))
        try:
            offset = reference_offset(dev, rate, ref)
            if not 60 <= offset <= 200:
                raise ValueError(c.tr("no_tone", offset=offset))
        except ValueError as e:
            c.say("  " + str(e))
            said.append(c.tr("calibrator_not_ok"))
        else:
            mic["calibration_offset_db"] = round(offset, 2)
            said.append(c.tr("calibrator_ok", offset=offset, ref=ref))
    _write_toml(path, data)
    try:
        load_sensors(path)
    except SensorsError as e:
        raise StepFailed(c.tr("bad_sensors", why="; ".join(s for _, s in e.problems))) from None
    if c.ask.ask("microphone.talk", c.tr("q_talk"), yes, default=True):
        def secs(v: Any) -> int:
            if not str(v).strip().isdigit() or not 10 <= int(v) <= 600:
                raise ValueError(c.tr("q_talk_seconds"))
            return int(v)
        seconds = c.ask.ask("microphone.seconds", c.tr("q_talk_seconds"), secs, default=60)
        if household_baseline(dev, rate, mic.get("calibration_offset_db"), seconds, c.state / "hub") == 0:
            said.append(c.tr("talk_ok"))
        else:
            said.append(c.tr("talk_not_ok"))
    return "; ".join(said) or c.tr("mic_nothing")


# 7 -----------------------------------------------------------------------------------------------
def walk(c: Ctx) -> str:
    from ble.presence import PresenceConfig
    from firmware.provision.walk import PLACES, judge, tag_levels
    cfg = PresenceConfig()      # the engine's own floor and margin
    plan_tags = {p: list(_toml(c.plan_path)["partners"][p].get("tags", [])) for p in ("a", "b")}

    def secs(v: Any) -> float:
        try:
            f = float(v)
        except (TypeError, ValueError):
            f = 0.0
        if not 1 <= f <= 120:
            raise ValueError(c.tr("bad_walk_seconds"))
        return f
    seconds = c.ask.ask("walk.listen_seconds", c.tr("q_walk_seconds"), secs, default=10)
    said, weak = [], False
    for partner in ("a", "b"):
        tags_ = [x for x in plan_tags[partner] if not str(x).startswith("irk:")]
        if not tags_:
            said.append(c.tr("walk_no_tag", p=partner))
            continue
        for place in PLACES:
            where = c.tr(f"place_{place}")
            if c.ask.answers is None:
                c.ask.read(c.tr("carry_tag", p=partner, where=where) + " ")
            else:
                c.say(c.tr("carry_tag", p=partner, where=where))
            kw = c.seams.walk_kwargs(partner, place) if c.seams.walk_kwargs else c.seams.ble_kwargs
            r = judge(partner, place, tag_levels(tags_[0], seconds, c.seams.ble_backend, kw), cfg)
            if r.margin_db is None:
                line = c.tr("walk_not_heard", p=partner, where=where)
            elif r.passed(cfg):
                line = c.tr("walk_ok", p=partner, where=where, m=r.margin_db)
            else:
                line = c.tr("walk_weak", p=partner, where=where, m=r.margin_db, need=cfg.margin)
            weak = weak or not r.passed(cfg)
            c.say("  " + line)
            said.append(line)
    if weak:
        c.say("  " + c.tr("walk_what_to_do"))
    return "; ".join(said)


# 8 -----------------------------------------------------------------------------------------------
def panel(c: Ctx) -> str:
    from firmware.panel.service import PanelConfig, PanelConfigError, PanelPins
    from firmware.provision.panel_check import button_pins, light_pins, show_light, wait_press
    pins = PanelPins()
    if (c.etc / "panel.toml").exists():     # the panel's own wiring, when it is not the default
        from core.config import load_config
        try:
            pins = load_config(c.etc / "panel.toml", PanelConfig, PanelConfigError).pins
        except PanelConfigError as e:
            raise StepFailed(c.tr("bad_panel", why="; ".join(s for _, s in e.problems))) from None
    yes = yes_no(c)
    all_lights = c.ask.given("panel.lights") if _in_answers(c) else None
    seconds = float(c.ask.given("panel.button_seconds") or 30) if _in_answers(c) else 30.0
    failed: list[str] = []
    try:
        for key, numbers in light_pins(pins):
            name = c.tr(f"light_{key}")

            def confirm(key: str = key, name: str = name) -> bool:
                return c.ask.ask(f"panel.light_{key}", c.tr("q_light", light=name), yes,
                                 default=all_lights)
            if not show_light(key, numbers, c.seams.pin_factory, confirm):
                failed.append(name)
        for key, pin in button_pins(pins):
            name = c.tr(f"button_{key}")
            c.say(c.tr("press_button", button=name, s=seconds))
            if not wait_press(pin, c.seams.pin_factory, seconds):
                c.say("  " + c.tr("button_not_heard", button=name))
                failed.append(name)
    except Exception as e:   # gpiozero: pins busy (a running panel service) or no GPIO at all
        if isinstance(e, BadAnswer | EOFError):
            raise
        raise StepFailed(c.tr("gpio_failed", why=e)) from None
    if failed:
        c.say("  " + c.tr("panel_what_to_do"))
        return c.tr("panel_not_ok", which=", ".join(failed))
    return c.tr("panel_ok", lights=len(light_pins(pins)), buttons=len(button_pins(pins)))


# 9 -----------------------------------------------------------------------------------------------
def calls(c: Ctx) -> str:
    from firmware.caller.config import load_caller_config
    from firmware.caller.modem.errors import ModemError
    from firmware.provision.calls import ContactTest, line, test_contacts
    cfg = load_caller_config(c.etc / "caller.toml")
    found: dict[tuple[str, int], ContactTest] = {}
    only: set[tuple[str, int]] | None = None
    while True:
        try:
            for r in test_contacts(cfg, c.lang, c.say, only):
                found[(r.partner, r.position)] = r
        except ModemError as e:
            raise StepFailed(c.tr("modem_failed", why=e)) from None
        only = {k for k, r in found.items() if not r.passed}
        if not only:
            break
        c.say("  " + c.tr("call_what_to_do"))
        if not c.ask.ask("calls.retry", c.tr("q_retry_calls"), yes_no(c),
                         default=False if _in_answers(c) else None):
            break
    if not found:
        return c.tr("no_contacts")
    return "; ".join(line(found[k], c.lang) for k in sorted(found))


# 10 ----------------------------------------------------------------------------------------------
RECORD = "provision-record.md"


def summary(c: Ctx, titles: list[tuple[str, str]]) -> str:
    """What was set up and what passed, for the household file: no phone numbers (they are only
    in caller.toml), no tag addresses."""
    lines = [f"# {c.tr('summary')}: {c.progress.facts.get('household')}", "",
             f"{dt.date.today().isoformat()}", ""]
    for step, title in titles:
        if step in ("summary", "doctor"):
            continue
        lines.append(f"- {title}: {c.progress.results.get(step, '-')}")
    text = "\n".join(lines) + "\n"
    (c.etc / RECORD).write_text(text, encoding="utf-8")
    c.say(text)
    return f"written to {c.etc / RECORD}"


# 11 ----------------------------------------------------------------------------------------------
def doctor(c: Ctx) -> tuple[bool, str]:
    from firmware.doctor import Where, report, run_checks
    where = Where(etc=c.etc, state=c.state, port=int(c.progress.facts["port"]))
    text, code = report(run_checks(where, listen_s=3.0), as_json=False)
    c.say(text)
    return code == 0, text.splitlines()[-1]
