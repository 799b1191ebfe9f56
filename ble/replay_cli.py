"""`timeout-hub presence-replay TRACE.jsonl --tag a=ID --tag b=ID [--json]`: the presence engine
on a recorded or generated trace; prints each partner's transitions."""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator

from ble.identity import TagIdError, parse_tag_id
from ble.presence import PresenceEngine, run_adverts
from core.errors import HubError


class TraceError(HubError, ValueError):
    """A trace line that is not {"t", "address", "rssi"[, "manufacturer_data", "service_data"]}."""


def _advert(line: str, n: int) -> tuple:
    try:
        d = json.loads(line)
        if not isinstance(d, dict):
            raise ValueError("not a JSON object")
        t, address, rssi = float(d["t"]), d["address"], float(d["rssi"])
        if not isinstance(address, str):
            raise ValueError("address is not a string")
        mfr = {int(k, 0) if k.lower().startswith("0x") else int(k): bytes.fromhex(v)
               for k, v in (d.get("manufacturer_data") or {}).items()}
        svc = {str(k).lower(): bytes.fromhex(v) for k, v in (d.get("service_data") or {}).items()}
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise TraceError(f"line {n} is not a trace advert ({type(e).__name__}: {e})") from None
    return t, address, rssi, mfr, svc


def read_trace(path: str) -> Iterator[tuple]:
    last = float("-inf")
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            adv = _advert(line, n)
            if adv[0] < last:
                raise TraceError(f"line {n}: time {adv[0]} goes back before {last}")
            last = adv[0]
            yield adv


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="timeout-hub presence-replay",
                                 description="Replay a BLE trace through the presence engine.")
    ap.add_argument("trace", help="JSON lines {\"t\", \"address\", \"rssi\"}")
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
        adverts = list(read_trace(args.trace))
    except OSError as e:
        print(f"presence-replay: cannot read {args.trace}: {e.strerror or e}", file=sys.stderr)
        return 2
    except (TraceError, UnicodeDecodeError) as e:
        print(f"presence-replay: {args.trace}: {e}", file=sys.stderr)
        return 2
    engine = PresenceEngine(tags, now=adverts[0][0] if adverts else 0.0)
    for tr in run_adverts(engine, adverts):  # the trace's end is not a silence: no padding
        if args.json:
            print(json.dumps({"t": round(tr.t, 3), "partner": tr.partner, "presence": tr.presence}))
        else:
            print(f"{tr.t:10.1f} s  partner {tr.partner}  {tr.presence}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
