"""`timeout-hub detect FILE`: the hub's own streaming pipeline on a recording.

Installers use it to check a room (what would the hub have said about this evening?), and the
evaluation uses it. The file is read in 0.1 s blocks exactly as the microphone delivers them.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from core.errors import HubError
from dsp.detector import ShoutDetector
from dsp.pipeline import SUPPORTED_RATES, SoundPipeline
from dsp.resample import resample

BLOCK_S = 0.1


class AudioFileError(HubError, OSError):
    """The file cannot be read as audio."""


def read_audio(path: Path) -> tuple[np.ndarray, int]:
    """Mono float samples and a rate the pipeline supports (other rates are resampled to 16 kHz)."""
    import soundfile
    try:
        x, fs = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, soundfile.LibsndfileError, OSError) as e:
        raise AudioFileError(f"{path}: cannot read it as WAV/OGG/FLAC audio ({e})") from None
    x = x.mean(axis=1)
    if not np.all(np.isfinite(x)):
        raise AudioFileError(f"{path}: holds samples that are not numbers (NaN or infinite)")
    if fs not in SUPPORTED_RATES:   # the hub's own resampler (dsp/resample.py), delay taken out
        x, fs = resample(x, fs, 16000).astype(np.float32), 16000
    return x, fs


def run(x: np.ndarray, fs: int, *, calibrate_seconds: int = 0,
        calibration_offset_db: float | None = None, detector: ShoutDetector | None = None):
    """Every per-second Frame of `x` and the pipeline (for its episodes and baseline); `detector`:
    another than the default one (the evaluation's recorders, a learnt score)."""
    p = SoundPipeline(fs, calibrate_seconds=calibrate_seconds,
                      calibration_offset_db=calibration_offset_db, detector=detector)
    n = max(1, int(fs * BLOCK_S))
    frames = []
    for i in range(0, len(x), n):
        frames.extend(p.process(x[i:i + n]))
    frames.extend(p.finish())
    return frames, p


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="timeout-hub detect", description=(
        "Run the hub's loudness and shouting detector on a WAV/OGG/FLAC file: one line per second "
        "(t, LAeq, shouting score 0..1) and the shouting episodes found."))
    ap.add_argument("file", type=Path)
    ap.add_argument("--calibrate-seconds", type=int, default=0, metavar="N",
                    help="the first N seconds are the household's normal sound (the installer's "
                         "calibration): the baseline is learnt from them, nothing is scored")
    ap.add_argument("--offset-db", type=float, default=None,
                    help="calibration offset dB SPL - dBFS from `timeout-hub calibrate`; without it "
                         "levels are dBFS")
    ap.add_argument("--json", action="store_true", help="JSON lines, then one line of episodes")
    a = ap.parse_args(argv)
    if a.calibrate_seconds < 0:
        print("detect: --calibrate-seconds must be 0 or more", file=sys.stderr)
        return 2
    try:
        x, fs = read_audio(a.file)
    except AudioFileError as e:
        print(f"detect: {e}", file=sys.stderr)
        return 2
    if len(x) < fs:
        print(f"detect: {a.file} is shorter than one second", file=sys.stderr)
        return 2
    frames, p = run(x, fs, calibrate_seconds=a.calibrate_seconds,
                    calibration_offset_db=a.offset_db)
    episodes = [e.as_dict() for e in p.episodes]
    if a.json:
        for f in frames:
            print(json.dumps(f.as_dict()))
        print(json.dumps({"episodes": episodes}))
    else:
        print(f"{'t':>6}  {'LAeq ' + p.unit:>10}  shout")
        for f in frames:
            mark = "  calibrating" if f.calibrating else ("  EPISODE" if f.in_episode else "")
            print(f"{f.t:6.0f}  {f.laeq_db:10.1f}  {f.shout:5.2f}{mark}")
        print(f"{len(episodes)} episode(s)" + "".join(
            f"\n  {e['start_s']:.0f} s - {e['end_s']:.0f} s, peak {e['peak']:.2f}" for e in episodes))
    return 0
