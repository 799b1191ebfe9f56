"""`timeout-hub apart-replay GPSD_LOG --home LAT,LON [--json]`: the wearable's geofence on a
recorded gpsd log (`gpspipe -w > walk.json`). Prints each verdict change with the seconds since
the first TPV that carries a time (gpsd's own clock); the verdict starts as unknown. Never
prints a coordinate."""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from firmware.wearable.geofence import Geofence, Home, Verdict
from firmware.wearable.gps import Report, parse_line

EXIT_USAGE = 2


@dataclass(frozen=True)
class Change:
    t: float
    apart: Verdict


def replay(lines: Iterable[str], home: Home) -> tuple[list[Change], int]:
    """The verdict changes of a log, and how many TPV reports it had."""
    fence = Geofence(home)
    changes: list[Change] = []
    n = 0
    for t, r in _timed(parse_line(line) for line in lines):
        n += 1
        v = fence.observe(t, r.fix, r.time)
        if v is not None:
            changes.append(Change(round(t, 3), v))
    return changes, n


def _timed(reports: Iterable[Report | None]) -> Iterator[tuple[float, Report]]:
    """Each TPV with gpsd's own time as seconds since the first TPV that has one. A receiver
    without the time (a cold start) sends TPVs without it, one per sentence, so their count
    says nothing about seconds: they take the time of the TPV before (0 before any)."""
    first: datetime | None = None
    t = 0.0
    for r in reports:
        if r is None:
            continue
        if r.time is not None:
            if first is None:
                first = r.time
            t = max(t, (r.time - first).total_seconds())   # never backwards
        yield t, r


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="timeout-hub apart-replay",
                                description="Run the wearable's geofence on a recorded gpsd log "
                                            "(gpspipe -w); print each change of the verdict "
                                            "\"at least 100 m from home\".")
    p.add_argument("log", type=Path, metavar="GPSD_LOG")
    p.add_argument("--home", required=True, metavar="LAT,LON",
                   help="the home position in degrees, e.g. 52.3702,4.8952")
    p.add_argument("--json", action="store_true", help='one {"t": ..., "apart": ...} per line')
    args = p.parse_args(argv)
    try:
        home = Home.parse(args.home)
    except ValueError as e:
        print(f"timeout-hub apart-replay: --home: {e}.", file=sys.stderr)
        return EXIT_USAGE
    try:
        with args.log.open(encoding="utf-8", errors="replace") as f:
            changes, n = replay(f, home)
    except FileNotFoundError:
        print(f"timeout-hub apart-replay: {args.log} does not exist.", file=sys.stderr)
        return EXIT_USAGE
    except IsADirectoryError:
        print(f"timeout-hub apart-replay: {args.log} is a folder; give the file gpspipe -w wrote.",
              file=sys.stderr)
        return EXIT_USAGE
    except OSError as e:
        print(f"timeout-hub apart-replay: {args.log} cannot be read: {e.strerror or e}.",
              file=sys.stderr)
        return EXIT_USAGE
    if n == 0:
        print(f"timeout-hub apart-replay: {args.log} has no TPV report; record it with "
              "`gpspipe -w > FILE` while gpsd has a receiver.", file=sys.stderr)
        return EXIT_USAGE
    for c in changes:
        if args.json:
            print(json.dumps({"t": c.t, "apart": c.apart}))
        else:
            print(f"{c.t:9.1f} s  {c.apart:<7}  {_MEANING[c.apart]}")
    if not args.json:
        print(f"({n} TPV reports, {len(changes)} change(s); the verdict starts as unknown)")
    return 0


_MEANING = {"yes": "at least 100 m from home", "no": "at home (within 70 m)",
            "unknown": "no reliable fix, or between 70 and 100 m"}
