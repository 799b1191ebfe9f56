from __future__ import annotations

import logging
import sys

from bench import (
    ble_bench,
    caller_bench,
    care_bench,
    dsp_bench,
    fleet_bench,
    hub_bench,
    mqtt_bench,
    panel_bench,
    soak_bench,
    wearable_bench,
)


def main() -> int:
    logging.basicConfig(level=logging.ERROR)
    print("timeout-hub benchmarks (this machine; baselines measured in the same run)\n")
    ok = mqtt_bench.run()
    ok = hub_bench.run(mqtt_bench.BARE_MEDIAN_MS) and ok
    ok = panel_bench.run(mqtt_bench.BARE_MEDIAN_MS) and ok
    ok = caller_bench.run() and ok
    ok = dsp_bench.run() and ok
    ok = ble_bench.run() and ok
    ok = fleet_bench.run() and ok
    ok = care_bench.run() and ok
    ok = wearable_bench.run() and ok
    ok = soak_bench.run(300.0) and ok   # 5 minutes; `make soak` runs it for an hour
    print("\nall targets met" if ok else "\nSOME TARGETS MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
