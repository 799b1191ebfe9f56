"""`timeout-hub wearable-home [--seconds 60]`: the installer stands at the front door with the
wearable and gets the home position for its config: the average of the fixes gpsd gives in that
time whose error is at most MAX_ERROR_M. Printed for the installer to put in the wearable's own
config (the only place it is kept, R4); nothing is written or sent."""
from __future__ import annotations

import argparse
import itertools
import sys
import time

from firmware.wearable.geofence import distance_m
from firmware.wearable.gps import GpsdStream

EXIT_USAGE = 2
MAX_ERROR_M = 25.0
MIN_FIXES = 10


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="timeout-hub wearable-home",
                                description="Average gpsd's fixes at the front door and print "
                                            "the `home = [LAT, LON]` line for the wearable's config.")
    p.add_argument("--seconds", type=float, default=60.0, help="how long to average (default 60)")
    p.add_argument("--gpsd", default="127.0.0.1:2947", metavar="HOST:PORT")
    args = p.parse_args(argv)
    host, _, port = args.gpsd.rpartition(":")
    gps = GpsdStream(host or "127.0.0.1", int(port) if port.isdigit() else 2947, timeout=2.0)
    # gpsd reports an epoch once per sentence; the last report of an epoch has its own error
    # (the first may still carry the error of the epoch before), so keep the last per epoch
    epochs: dict[object, tuple[float, float, float | None]] = {}
    try:
        gps.open()
        deadline = time.monotonic() + args.seconds
        while time.monotonic() < deadline:
            for r in gps.reports():
                if r.fix is not None and r.time is not None:
                    epochs[r.time] = (r.fix.lat, r.fix.lon, r.fix.error_m)
                if time.monotonic() >= deadline:
                    break
    except OSError as e:
        print(f"timeout-hub wearable-home: gpsd at {args.gpsd} cannot be read: {e}.", file=sys.stderr)
        return EXIT_USAGE
    finally:
        gps.close()
    # an epoch's own error comes with the next epoch's report (firmware/wearable/geofence.py):
    # a fix counts only when both are small; the last epoch has no next one and is left out
    seq = [epochs[t] for t in sorted(epochs, key=str)]
    good = [(a, b) for (a, b, err), (_, _, nxt) in itertools.pairwise(seq)
            if err is not None and nxt is not None and max(err, nxt) <= MAX_ERROR_M]
    lats, lons = [a for a, _ in good], [b for _, b in good]
    if len(lats) < MIN_FIXES:
        print(f"timeout-hub wearable-home: only {len(lats)} fix(es) with an error of at most "
              f"{MAX_ERROR_M:.0f} m in {args.seconds:.0f} s; stand outside the front door with a "
              "view of the sky and try again (or longer, with --seconds).", file=sys.stderr)
        return EXIT_USAGE
    lat, lon = sum(lats) / len(lats), sum(lons) / len(lons)
    spread = max(distance_m(lat, lon, a, b) for a, b in zip(lats, lons, strict=True))
    print(f"home = [{lat:.6f}, {lon:.6f}]   # {len(lats)} fixes, all within {spread:.0f} m")
    return 0
