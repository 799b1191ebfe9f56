"""Generates the reference part of docs/mqtt.md from mqtt/contract.py and mqtt/schemas.py.

    python -m mqtt.docgen --write docs/mqtt.md     (or `make docs`)

Only the text between the BEGIN/END markers is replaced; tests fail when it is out of date.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mqtt import contract, schemas
from mqtt.faults import DROPPED, FAULT_CLASSES, OWNERS, PER_SERVICE

BEGIN = "<!-- BEGIN GENERATED: python -m mqtt.docgen --write docs/mqtt.md -->"
END = "<!-- END GENERATED -->"


def _roles(roles: frozenset[str]) -> str:
    return ", ".join(sorted(roles)) or "—"


def generate() -> str:
    out = [f"### Topic table (contract v{contract.CONTRACT_VERSION})", "",
           "All topics are below `timeout/<household>/`. `{partner}` is `a` or `b`; "
           "`{service}` is one of " + ", ".join(f"`{s}`" for s in schemas.SERVICES) + "; "
           "`{door}` is one of " + ", ".join(f"`{d}`" for d in contract.DOORS) + " and `{owner}` "
           "is the service its id starts with.", "",
           "| topic | payload | QoS | retained | outbox | published by | read by | meaning |",
           "|---|---|---|---|---|---|---|---|"]
    for spec in contract.TOPICS:
        words = spec.words or schemas.AVAILABILITY
        name = spec.schema.__name__ if spec.schema else " / ".join(f"`{w}`" for w in words)
        readers = _roles(spec.subscribers)
        if spec.pattern == "{service}/available":
            readers += " (all services read `hub/available`)"
        out.append(f"| `{spec.pattern}` | {name} | {spec.qos} | {'yes' if spec.retain else 'no'} | "
                   f"{'yes' if spec.durable else 'no'} | {_roles(spec.publishers)} | {readers} | "
                   f"{spec.description}{' Confirmed by the hub on `applied/<sender>`.' if spec.confirmed else ''} |")
    out += ["", "### Fault classes (`mqtt/faults.py`)", "",
            "What a code in `<service>/health` and `state.faults` means. *Action*: the fault LED "
            "lights only for faults the household or the installer must act on; an unknown code "
            "counts as needing action. A code ending in `.` is a family (`ble.tag_missing.a.1`).", "",
            "| code | panel pattern | action | meaning (en) | betekenis (nl) |",
            "|---|---|---|---|---|"]
    out += [f"| `{fc.code}` | {fc.group} | {'yes' if fc.action else 'no'} | {fc.en} | {fc.nl} |"
            for fc in FAULT_CLASSES]
    out += ["", "Who reported a fault is the service whose `<service>/health` topic it came on (its "
            "`service` field is set from the topic). Families only one service can know about are "
            "refused from any other: " + "; ".join(
                f"`{family}` from {', '.join(sorted(services))}" for family, services in OWNERS.items())
            + f". At most {PER_SERVICE} faults per service reach `state.faults`: the most important "
            f"(needing action, then the oldest) and `{DROPPED}` saying how many more there were."]
    out += ["", "### Access per role (the generated Mosquitto ACL, household `home`)", "",
            "```", contract.acl_text("home").strip(), "```", "", "### Payload schemas (JSON Schema)", ""]
    seen: set[str] = set()
    for spec in contract.TOPICS:
        if spec.schema is None or spec.schema.__name__ in seen:
            continue
        seen.add(spec.schema.__name__)
        schema = spec.schema.model_json_schema()
        out += [f"#### {spec.schema.__name__}", "", (spec.schema.__doc__ or "").strip(), "",
                "```json", json.dumps(schema, indent=2, sort_keys=True), "```", ""]
    return "\n".join(out).rstrip() + "\n"


def splice(doc: str) -> str:
    if BEGIN not in doc or END not in doc:
        raise SystemExit(f"docs/mqtt.md has no generated section (markers {BEGIN!r} ... {END!r})")
    head, rest = doc.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{generate()}{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    a = argparse.ArgumentParser(prog="python -m mqtt.docgen")
    a.add_argument("--write", type=Path, help="splice into this markdown file")
    args = a.parse_args(argv)
    if args.write:
        args.write.write_text(splice(args.write.read_text()))
    else:
        sys.stdout.write(generate())
    return 0


if __name__ == "__main__":
    sys.exit(main())
