"""`timeout-hub provision [--lang nl|en] [--answers FILE] [--dir DIR] [--state DIR]`: the steps
in order; a step already recorded in DIR/provision-state.json is skipped, so a rerun continues at
the first unfinished one. Exit 0 when doctor passed at the end, 1 when it did not (fix, start the
services, run again), 2 on a bad or missing answer (named)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from core.errors import ConfigError
from firmware.provision import steps
from firmware.provision.ask import Asker, BadAnswer
from firmware.provision.state import Progress
from firmware.provision.texts import t
from mqtt.errors import BrokerConfigError

STEPS = ("household", "plan", "contacts", "tags", "door", "microphone", "walk", "panel", "calls",
         "summary", "doctor")
RUN = {"household": steps.household_and_broker, "plan": steps.plan, "contacts": steps.contacts,
       "tags": steps.tags, "door": steps.door, "microphone": steps.microphone,
       "walk": steps.walk, "panel": steps.panel, "calls": steps.calls}


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="timeout-hub provision", description=(
        "The installer's guided set-up of a household; a rerun continues at the first unfinished "
        "step (docs/provision.md). Exit 0 when doctor passed, 1 when it did not, 2 on a bad answer."))
    ap.add_argument("--lang", choices=["nl", "en"], default="nl")
    ap.add_argument("--answers", type=Path, metavar="FILE", help="answer every question from this TOML file")
    ap.add_argument("--dir", type=Path, default=Path("/etc/timeout-hub"),
                    help="the configuration folder (default /etc/timeout-hub)")
    ap.add_argument("--state", type=Path, default=Path("/var/lib/timeout-hub"),
                    help="the state folder (default /var/lib/timeout-hub)")
    ap.add_argument("--again", choices=STEPS, action="append", default=[], metavar="STEP",
                    help="do this finished step again (e.g. walk, panel, calls); may be repeated")
    return ap


def main(argv: list[str], seams: steps.Seams | None = None) -> int:
    a = parser().parse_args(argv)
    answers: dict[str, Any] | None = None
    if a.answers is not None:
        from core.config import read_toml
        try:
            answers = read_toml(a.answers)
        except ConfigError as e:
            print(f"timeout-hub provision: {e.problems[0][1]}", file=sys.stderr)
            return 2
    try:
        a.dir.mkdir(parents=True, exist_ok=True)
        progress = Progress.load(a.dir)
    except (OSError, ValueError) as e:
        print(f"timeout-hub provision: {e}", file=sys.stderr)
        return 2
    for step in a.again:
        if step in progress.done:
            progress.done.remove(step)
    c = steps.Ctx(a.dir, a.state, a.lang, Asker(answers, a.lang), progress, seams or steps.Seams())
    titles = [(s, t(a.lang, s)) for s in STEPS]
    for n, (step, title) in enumerate(titles, 1):
        if step in progress.done:
            print(t(a.lang, "skip", n=n, title=title, result=progress.results.get(step, "")))
            continue
        print(t(a.lang, "step", n=n, total=len(STEPS), title=title), flush=True)
        try:
            if step == "summary":
                result = steps.summary(c, titles)
            elif step == "doctor":
                ok, result = steps.doctor(c)
                if not ok:
                    print(t(a.lang, "doctor_failed"), file=sys.stderr)
                    return 1
            else:
                result = RUN[step](c)
        except BadAnswer as e:
            print(f"timeout-hub provision: {e}", file=sys.stderr)
            return 2
        except steps.StepFailed as e:
            print(f"timeout-hub provision: step {n} ({title}): {e}", file=sys.stderr)
            return 1
        except EOFError:   # the terminal closed (Ctrl-D): the finished steps stay recorded
            print(f"timeout-hub provision: the input ended in step {n}; run it again to continue "
                  "there", file=sys.stderr)
            return 2
        except (BrokerConfigError, ConfigError, OSError) as e:
            print(f"timeout-hub provision: step {n} ({title}): {e}", file=sys.stderr)
            return 2
        progress.finish(step, result)
    print(t(a.lang, "finished", record=a.dir / steps.RECORD))
    return 0
