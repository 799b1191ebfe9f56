"""`timeout-hub procedure-replay INPUTS.jsonl --plan PLAN [--json]`: what would the hub have done?

Runs the real procedure (firmware/hub/procedure.py) on a scripted evening, on a manual clock that
is advanced to each input's time and ticks the procedure every second of evening time on the way,
so its timers fire when they would on the hub. After the last input it keeps ticking until the
procedure is back in monitoring with no timer left (or `--until`). Every output is printed: events,
prompts (with the text that partner reads in their own language) and call requests. The format of
the inputs and of the output lines: docs/procedure-replay.md.

Nothing is published and nothing is saved; the ids are derived from a fixed instance, so the same
evening gives the same lines on every run.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union, get_args

from core import texts
from core.clock import ManualClock
from core.config import refuse
from core.errors import HubError
from firmware.hub import procedure as P
from firmware.hub.plan import HouseholdPlan, PlanError, load_plan
from mqtt import schemas

EXIT_USAGE = 2
DEFAULT_AFTER_LAST_S = 3 * 3600.0
TICK_S = 1.0
# The evening's wall clock (the date decides which evaluation date is "the next session");
# fixed, so a replay gives the same lines on every run and every day.
DEFAULT_START = dt.datetime(2026, 11, 21, 19, 0, tzinfo=dt.UTC)
INSTANCE = "procedure-replay"   # the procedure derives every id from this and its sequence
PARTNERS = ("a", "b")
OUTCOMES: tuple[str, ...] = get_args(schemas.CallResult.model_fields["outcome"].annotation)


class ScriptError(HubError, ValueError):
    """A line of the inputs file that is not one of the inputs (docs/procedure-replay.md)."""

    def __init__(self, line: int, why: str):
        super().__init__(why)
        self.line, self.why = line, why


# -- inputs -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AnswerOpen:
    """An answer to whatever question is open for `source` when it arrives (the wearable, an SMS
    reply or the panel fill in the question id; the script does not know it)."""

    source: str        # "a", "b" or "panel"
    choice: int


@dataclass(frozen=True)
class OutcomeForPartner:
    """A call result for that partner's most recent call request that has no final result yet."""

    partner: str
    outcome: str
    final: bool


Action = Union[  # noqa: UP007 - a runtime alias
    P.Sound, P.PresenceSeen, P.ApartSeen, P.PanelPress, P.PartnerButton, AnswerOpen,
    OutcomeForPartner]


@dataclass(frozen=True)
class Step:
    line: int          # 1-based line number in the inputs file
    t: float           # seconds of evening time from the start
    action: Action


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


# input name -> {field: (check, what it must be)}
_Check = tuple[Any, str]
_PARTNER: _Check = (lambda v: v in PARTNERS, '"a" or "b"')
_BOOL: _Check = (lambda v: isinstance(v, bool), "true or false")
FIELDS: dict[str, dict[str, _Check]] = {
    "presence": {"partner": _PARTNER,
                 "presence": (lambda v: v in ("home", "away", "unknown"), '"home", "away" or "unknown"')},
    "sound": {"thermometer": (lambda v: isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 10,
                              "a whole number 0-10"),
              "episode": _BOOL},
    "panel_press": {"long": _BOOL},
    "partner_button": {"partner": _PARTNER},
    "apart": {"partner": _PARTNER,
              "apart": (lambda v: v is None or isinstance(v, bool), "true, false or null")},
    "answer": {"source": (lambda v: v in ("a", "b", "panel"), '"a", "b" or "panel"'),
               "choice": (lambda v: isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 3,
                          "1, 2 or 3")},
    "call_outcome": {"partner": _PARTNER,
                     "outcome": (lambda v: v in OUTCOMES, "one of " + ", ".join(OUTCOMES)),
                     "final": _BOOL},
}
OPTIONAL = {"comment"}   # free text for the reader of the script; ignored


def parse_line(text: str, n: int) -> tuple[float, Action]:
    """One line of the script as (t, action), or ScriptError saying why not."""
    try:
        d = json.loads(text)
    except ValueError as e:
        raise ScriptError(n, f"not JSON ({e})") from None
    if not isinstance(d, dict):
        raise ScriptError(n, "not a JSON object {...}")
    if "t" not in d:
        raise ScriptError(n, 'missing field "t"')
    t = d["t"]
    if not _is_number(t) or not math.isfinite(t) or t < 0:
        raise ScriptError(n, f'"t" must be a number of seconds from the start (0 or more), not {t!r}')
    kind = d.get("input")
    if kind is None:
        raise ScriptError(n, 'missing field "input"')
    if kind not in FIELDS:
        raise ScriptError(n, f"unknown input {kind!r}; known: {', '.join(FIELDS)}")
    fields = FIELDS[kind]
    for name, (ok, what) in fields.items():
        if name not in d:
            raise ScriptError(n, f'{kind}: missing field "{name}"')
        if not ok(d[name]):
            raise ScriptError(n, f'{kind}: "{name}" must be {what}, not {json.dumps(d[name])}')
    extra = sorted(set(d) - set(fields) - {"t", "input"} - OPTIONAL)
    if extra:
        raise ScriptError(n, f'{kind}: unknown field "{extra[0]}" (a typing error?)')
    if "comment" in d and not isinstance(d["comment"], str):
        raise ScriptError(n, '"comment" must be text')
    action: Action
    if kind == "presence":
        action = P.PresenceSeen(d["partner"], d["presence"])
    elif kind == "sound":
        action = P.Sound(d["thermometer"], episode=d["episode"])
    elif kind == "panel_press":
        action = P.PanelPress(long=d["long"])
    elif kind == "partner_button":
        action = P.PartnerButton(d["partner"])
    elif kind == "apart":
        action = P.ApartSeen(d["partner"], d["apart"])
    elif kind == "answer":
        action = AnswerOpen(d["source"], d["choice"])
    else:
        action = OutcomeForPartner(d["partner"], d["outcome"], d["final"])
    return float(t), action


def parse_script(lines: Iterable[str]) -> list[Step]:
    """Every input of the script, in order; blank lines are skipped. Time never goes back."""
    steps: list[Step] = []
    last = 0.0
    for n, text in enumerate(lines, 1):
        if not text.strip():
            continue
        t, action = parse_line(text, n)
        if t < last:
            raise ScriptError(n, f'"t" {_num(t)} goes back before {_num(last)} of the line before')
        last = t
        steps.append(Step(n, t, action))
    return steps


def read_script(path: Path) -> list[Step]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ScriptError(0, f"{path} does not exist") from None
    except IsADirectoryError:
        raise ScriptError(0, f"{path} is a folder, not an inputs file") from None
    except UnicodeDecodeError:
        raise ScriptError(0, f"{path} is not UTF-8 text") from None
    except OSError as e:
        raise ScriptError(0, f"{path} cannot be read: {e.strerror or e}") from None
    return parse_script(text.splitlines())


# -- the run ------------------------------------------------------------------------------------
def _num(t: float) -> int | float:
    return int(t) if float(t).is_integer() else round(t, 3)


def open_question(proc: P.Procedure, source: str) -> tuple[str, int] | None:
    """(question id, options) of the question open for `source` now, or None.

    The panel answers what it shows: the question of the retained state (for the one partner
    without a device of their own, docs/procedure.md). A partner answers the end check-in, the periodic
    check-in while the time-out runs, or their own current evaluation question."""
    ps = proc.public_state()
    if source == "panel":
        q = ps["question"]
        return (q["id"], q["options"]) if q else None
    return proc.open_question(source)


def prompt_text(plan: HouseholdPlan, o: P.PromptOut) -> tuple[str, str]:
    """(language, text) of a prompt as that partner reads it, like their wearable or SMS would."""
    pp = plan.partners[o.partner]   # type: ignore[index]
    return pp.language, texts.prompt_text(o.key, pp.language, o.task, list(pp.calming_tasks))


def output_line(plan: HouseholdPlan, t: float, o: P.Output) -> dict[str, Any]:
    if isinstance(o, P.EventOut):
        return {"t": _num(t), "kind": "event", "id": o.id, "type": o.type, "category": o.category,
                "partner": o.partner, "timeout_id": o.timeout_id, "data": o.data}
    if isinstance(o, P.PromptOut):
        lang, text = prompt_text(plan, o)
        line: dict[str, Any] = {"t": _num(t), "kind": "prompt", "id": o.id, "partner": o.partner,
                                "prompt": o.kind, "key": o.key, "question_id": o.question_id,
                                "options": o.options}
        if o.task is not None:
            line["task"] = o.task
        line.update(lang=lang, text=text)
        return line
    return {"t": _num(t), "kind": "call", "id": o.id, "partner": o.partner, "reason": o.reason,
            "timeout_id": o.timeout_id}


def replay(plan: HouseholdPlan, steps: list[Step], *, until: float | None = None,
           tick: float = TICK_S, start: dt.datetime = DEFAULT_START) -> list[dict[str, Any]]:
    """Run the procedure on `steps`; every output as a JSON-able line, in order, ending with one
    `{"kind": "end"}` line (where the evening stopped, in which phase, and why)."""
    last_t = steps[-1].t if steps else 0.0
    horizon = last_t + DEFAULT_AFTER_LAST_S if until is None else until
    if horizon < last_t:
        raise ValueError(f"--until {_num(horizon)} is before the last input (t {_num(last_t)})")
    clock = ManualClock(start=start, trusted=True)
    proc = P.Procedure(plan, clock, instance=INSTANCE)
    lines: list[dict[str, Any]] = []
    now = 0.0
    ticks = 0                       # ticks are at whole multiples of `tick`: no drift

    calls: dict[str, list[str]] = {p: [] for p in PARTNERS}   # open call requests, oldest first

    def say_all(outputs: list[P.Output]) -> None:
        for o in outputs:
            if isinstance(o, P.CallOut):
                calls[o.partner].append(o.id)
            lines.append(output_line(plan, now, o))

    def advance_to(target: float) -> None:
        nonlocal now, ticks
        while (ticks + 1) * tick <= target:
            ticks += 1
            clock.advance(ticks * tick - now)
            now = ticks * tick
            say_all(proc.tick())
        if now < target:
            clock.advance(target - now)
            now = target
            say_all(proc.tick())

    def note(step: Step, text: str) -> None:
        lines.append({"t": _num(now), "kind": "note", "line": step.line, "note": text})

    for step in steps:
        advance_to(step.t)
        a = step.action
        if isinstance(a, AnswerOpen):
            q = open_question(proc, a.source)
            if q is None:
                who = "the panel" if a.source == "panel" else f"partner {a.source}"
                note(step, f"answer ignored: no question is open for {who} "
                           f"(phase {proc.public_state()['phase']})")
                continue
            if a.source == "panel" and a.choice > q[1]:   # the panel refuses it (firmware/panel)
                note(step, f"answer ignored: the open question has {q[1]} options, not {a.choice}")
                continue
            out = proc.handle(P.Answer(a.source, q[0], a.choice))
            if not out:
                note(step, f"the procedure did not take the answer {a.choice} to question {q[0]}")
            say_all(out)
        elif isinstance(a, OutcomeForPartner):
            if not calls[a.partner]:
                note(step, f"call outcome ignored: partner {a.partner} has no open call request")
                continue
            rid = calls[a.partner][-1]
            if a.final:
                calls[a.partner].pop()
            out = proc.handle(P.CallOutcome(rid, a.outcome, a.final))
            if not out and a.final:
                note(step, f"the procedure did not log the final outcome {a.outcome} of call {rid}")
            say_all(out)
        else:
            say_all(proc.handle(a))
    def settled() -> bool:
        return proc.public_state()["phase"] == "monitoring" and not proc.pending()

    while not settled() and now < horizon:
        advance_to(min(horizon, (ticks + 1) * tick))
    lines.append({"t": _num(now), "kind": "end", "phase": proc.public_state()["phase"],
                  "why": "settled" if settled() else "until"})
    return lines



# -- printing -----------------------------------------------------------------------------------
def clock_text(t: float) -> str:
    """Evening time as mm:ss (minutes go past 59: 125:00 is two hours and five minutes in)."""
    m, sec = divmod(int(t), 60)
    return f"{m:3d}:{sec:02d}"


def readable(line: dict[str, Any]) -> str:
    when = clock_text(line["t"])
    kind = line["kind"]
    if kind == "event":
        who = f"partner {line['partner']}" if line["partner"] else "hub"
        details = ", ".join(f"{k}={v}" for k, v in line["data"].items())
        return f"{when}  {who:<10} {line['type']}" + (f" ({details})" if details else "")
    if kind == "prompt":
        return f"{when}  to {line['partner']:<7} {line['prompt']}: {line['text']}"
    if kind == "call":
        return f"{when}  caller     call partner {line['partner']}'s contacts ({line['reason']})"
    if kind == "note":
        return f"{when}  (line {line['line']}) {line['note']}"
    if line["why"] == "settled":
        return f"{when}  end: back in {line['phase']}, nothing left to do"
    return f"{when}  end: --until reached, the procedure is still in {line['phase']}"


def _refuse(e: Exception) -> int:
    return refuse("procedure-replay", e)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="timeout-hub procedure-replay",
                                 description="Run the real procedure on a scripted evening and "
                                             "print what the hub would have done "
                                             "(docs/procedure-replay.md).")
    ap.add_argument("inputs", type=Path, metavar="INPUTS.jsonl",
                    help='one input per line: {"t": seconds, "input": ..., ...}')
    ap.add_argument("--plan", type=Path, required=True, help="the household plan TOML")
    ap.add_argument("--json", action="store_true", help="one JSON object per output")
    ap.add_argument("--until", type=float, metavar="SECONDS",
                    help="stop at this evening time at the latest (default: 3 hours after the "
                         "last input); the replay stops earlier once the hub is back in monitoring")
    ap.add_argument("--start", metavar="ISO",
                    help="the evening's date and time, e.g. 2027-02-01T20:00+01:00 (default "
                         f"{DEFAULT_START.isoformat()}); it decides which evaluation date is next")
    a = ap.parse_args(argv)
    start = DEFAULT_START
    if a.start:
        try:
            start = dt.datetime.fromisoformat(a.start)
        except ValueError:
            return _refuse(ValueError(f"--start {a.start!r} is not a time like 2027-02-01T20:00+01:00"))
        if start.tzinfo is None:
            start = start.replace(tzinfo=dt.UTC)
    if a.until is not None and not (math.isfinite(a.until) and a.until >= 0):
        return _refuse(ValueError(f"--until {a.until} is not a number of seconds (0 or more)"))
    try:
        # A replay may be of an evening long past: evaluation dates before it are not a mistake
        # here (every other rule of the plan applies as on the hub).
        plan = load_plan(a.plan, today=dt.date.min)
    except PlanError as e:
        return _refuse(e)
    try:
        steps = read_script(a.inputs)
    except ScriptError as e:
        where = f"{a.inputs}:{e.line}: " if e.line else "timeout-hub procedure-replay: "
        print(f"{where}{e.why}", file=sys.stderr)
        return EXIT_USAGE
    if a.until is not None and steps and a.until < steps[-1].t:
        return _refuse(ValueError(f"--until {_num(a.until)} is before the last input "
                                  f"(t {_num(steps[-1].t)}, line {steps[-1].line})"))
    try:
        for line in replay(plan, steps, until=a.until, start=start):
            print(json.dumps(line, ensure_ascii=False) if a.json else readable(line))
        sys.stdout.flush()
    except BrokenPipeError:      # `| head`: the reader has seen enough
        import os
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
