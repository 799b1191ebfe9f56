"""`timeout-hub calibrate`: the installer's two calibrations, on the hub's own microphone.

- `--reference-db 94` with a sound calibrator on the microphone: prints the offset for
  sensors.toml (`microphone.calibration_offset_db`), so levels read dB(A) instead of dBFS.
- without it: N seconds of the household talking normally (the installer asks both partners to
  chat for a minute) seed the household baseline the detector compares against. Only numbers are
  saved (R1): the normal levels and a 40-bin histogram of the voices' pitch (dsp/detector.py,
  `Baseline`); the audio is gone when the command ends.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="timeout-hub calibrate", description=__doc__.split("\n\n")[0])
    ap.add_argument("--sensors", type=Path, help="sensors.toml: which microphone (default: --device)")
    ap.add_argument("--device", default=None, help="microphone name (part of it) or index")
    ap.add_argument("--state-dir", type=Path, default=Path("/var/lib/timeout-hub/hub"),
                    help="the hub's state directory (the baseline is saved there)")
    ap.add_argument("--seconds", type=int, default=60, help="how long to listen (10-600)")
    ap.add_argument("--reference-db", type=float, default=None, metavar="DB",
                    help="a calibrator of DB dB SPL at 1 kHz is on the microphone: print the offset")
    a = ap.parse_args(argv)
    device, rate, offset = a.device, 16000, None
    if a.sensors:
        from firmware.hub.sensors import SensorsError, load_sensors
        try:
            mic = load_sensors(a.sensors).microphone
        except SensorsError as e:
            print(f"calibrate: {e}", file=sys.stderr)
            return 2
        device = device if device is not None else mic.device
        rate, offset = mic.rate, mic.calibration_offset_db
    if isinstance(device, str) and device.isdigit():
        device = int(device)
    if a.reference_db is not None:
        from dsp.capture import main as capture_main
        return capture_main((["--device", str(device)] if device is not None else [])
                            + ["--rate", str(rate), "--seconds", "5", "--calibrate", str(a.reference_db)])
    if not 10 <= a.seconds <= 600:
        print("calibrate: --seconds must be 10 to 600", file=sys.stderr)
        return 2
    return household_baseline(device, rate, offset, a.seconds, a.state_dir)


def reference_offset(device, rate: int, reference_db: float, seconds: float = 5.0) -> float:
    """The calibration offset (dB SPL minus dBFS) from a calibrator of `reference_db` on the
    microphone; ValueError with one sentence when there is no microphone or no tone. The
    provision wizard's step 6 writes it into sensors.toml; the samples stay in memory."""
    import numpy as np

    from dsp.capture import listen
    from dsp.levels import calibration_offset
    kept: list[np.ndarray] = []
    fault = listen(device, rate, seconds, kept.append)
    if fault:
        raise ValueError(fault)
    if not kept:
        raise ValueError("the microphone gave no sound")
    return calibration_offset(np.concatenate(kept)[rate // 2:], reference_db)  # skip filters settling


def household_baseline(device, rate: int, offset, seconds: int, state_dir: Path) -> int:
    from dsp.capture import listen
    from dsp.pipeline import SoundPipeline
    from dsp.service import save_baseline
    from firmware.hub.sensors import BASELINE_FILE

    p = SoundPipeline(rate, calibration_offset_db=offset, calibrate_seconds=seconds)
    print(f"listening for {seconds} s: please talk together as you normally do")
    fault = listen(device, rate, seconds, p.process)
    if fault:
        print(f"calibrate: {fault}", file=sys.stderr)
        return 1
    p.finish()
    b = p.baseline
    if not b.calibrated:
        print("calibrate: no speech was heard; the baseline was not changed. Ask both partners "
              "to talk normally near the hub and run it again.", file=sys.stderr)
        return 1
    Path(state_dir).mkdir(parents=True, exist_ok=True)
    save_baseline(Path(state_dir) / BASELINE_FILE, b)
    print(f"household baseline saved to {Path(state_dir) / BASELINE_FILE}: normal speech "
          f"{b.speech_db + (offset or 0):.1f} {p.unit}, voice reference {100 * 2 ** (b.f0_st / 12):.0f} Hz, "
          f"{b.seconds} s of speech. Restart the hub to use it.")
    return 0
