"""`timeout-hub presence-replay TRACE.jsonl --tag a=ID --tag b=ID [--json]`: the presence engine
on a recorded or generated trace; prints each partner's transitions. Lines are adverts
{"t", "address", "rssi"[, "receiver", "manufacturer_data", "service_data"]}, exit-door events
{"t", "door", "state": "open"|"closed"} (a trace with door lines has a door sensor installed) and
door sensor health {"t", "door", "ok": true|false}."""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator

from ble.identity import TagIdError, parse_tag_id
from ble.presence import PresenceEngine, run_events
from core.errors import HubError


class TraceError(HubError, ValueError):
    """A trace line that is neither an advert nor a door line."""


def _advert(d: dict) -> tuple:
    t, address, rssi = float(d["t"]), d["address"], float(d["rssi"])
    if not isinstance(address, str):
        raise ValueError("address is not a string")
    receiver = d.get("receiver", "hub")
    if not isinstance(receiver, str) or not receiver:
        raise ValueError("receiver is not a name")
    mfr = {int(k, 0) if k.lower().startswith("0x") else int(k): bytes.fromhex(v)
           for k, v in (d.get("manufacturer_data") or {}).items()}
    svc = {str(k).lower(): bytes.fromhex(v) for k, v in (d.get("service_data") or {}).items()}
    return t, address, rssi, mfr, svc, receiver


def _door(d: dict) -> tuple:
    t, door = float(d["t"]), d["door"]
    if not isinstance(door, str) or not door:
        raise ValueError("door is not a name")
    if "ok" in d:
        if not isinstance(d["ok"], bool):
            raise ValueError('"ok" must be true or false')
        return "door_health", t, door, d["ok"]
    if d.get("state") not in ("open", "closed"):
        raise ValueError('"state" must be "open" or "closed"')
    return "door", t, door, d["state"]


def _line(line: str, n: int) -> tuple:
    """("advert", t, address, rssi, mfr, svc, receiver), ("door", t, id, state) or
    ("door_health", t, id, ok)."""
    try:
        d = json.loads(line)
        if not isinstance(d, dict):
            raise ValueError("not a JSON object")
        ev = _door(d) if "door" in d else ("advert", *_advert(d))
        if ev[1] != ev[1] or ev[1] in (float("inf"), float("-inf")):
            raise ValueError("t is not a number")
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        what = "door line" if '"door"' in line else "trace advert"
        raise TraceError(f"line {n} is not a {what} ({type(e).__name__}: {e})") from None
    return ev


def read_events(path: str) -> Iterator[tuple]:
    """The trace's lines in order, as `_line` gives them; times must not go back."""
    last = float("-inf")
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            ev = _line(line, n)
            if ev[1] < last:
                raise TraceError(f"line {n}: time {ev[1]} goes back before {last}")
            last = ev[1]
            yield ev


def read_trace(path: str) -> Iterator[tuple]:
    """Only the adverts (t, address, rssi, mfr, svc, receiver)."""
    for ev in read_events(path):
        if ev[0] == "advert":
            yield ev[1:]


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="timeout-hub presence-replay",
                                 description="Replay a BLE trace through the presence engine.")
    ap.add_argument("trace", help="JSON lines {\"t\", \"address\", \"rssi\"[, \"receiver\"]} and "
                                  "{\"t\", \"door\", \"state\": \"open\"|\"closed\"}")
    ap.add_argument("--tag", action="append", default=[], metavar="PARTNER=ID",
                    help="a=AA:BB:CC:DD:EE:FF, b=ibeacon:UUID:MAJOR:MINOR, eddystone:NS:INSTANCE, irk:HEX")
    ap.add_argument("--json", action="store_true", help="one JSON object per transition")
    args = ap.parse_args(argv)
    tags: dict[str, list[str]] = {}
    try:
        for spec in args.tag:
            partner, sep, tag = spec.partition("=")
            if not sep or partner not in ("a", "b"):
                raise TagIdError(f"--tag {spec!r} must be a=ID or b=ID")
            parse_tag_id(tag)
            tags.setdefault(partner, []).append(tag)
        if not tags:
            raise TagIdError("give at least one --tag a=ID or --tag b=ID")
    except TagIdError as e:
        print(f"presence-replay: {e}", file=sys.stderr)
        return 2
    try:
        events = list(read_events(args.trace))
    except OSError as e:
        print(f"presence-replay: cannot read {args.trace}: {e.strerror or e}", file=sys.stderr)
        return 2
    except (TraceError, UnicodeDecodeError) as e:
        print(f"presence-replay: {args.trace}: {e}", file=sys.stderr)
        return 2
    engine = PresenceEngine(tags, now=events[0][1] if events else 0.0)
    for tr in run_events(engine, events):  # the trace's end is not a silence: no padding
        if args.json:
            print(json.dumps({"t": round(tr.t, 3), "partner": tr.partner, "presence": tr.presence}))
        else:
            print(f"{tr.t:10.1f} s  partner {tr.partner}  {tr.presence}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
