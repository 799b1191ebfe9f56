"""Sound (issue 4): CPU per second of 16 kHz audio, resident memory, and detection quality on the
generated evaluation set, beside a plain loudness threshold run on the same clips. Quality is judged
on the development seeds 0-2 pooled; held-out seeds 4-7 are printed apart (docs/evaluation.md).

CPU baseline: the level meter alone (A-weighting, Fast/Slow, LAeq) on the same audio, so the ratio
shows what the shouting features cost on top of a sound level meter.
Memory: a fresh interpreter imports what the hub imports for sound (dsp.pipeline, dsp.service), runs
the pipeline over 60 s of audio and reports its peak RSS, beside the same interpreter that only
imported numpy; it also says whether scipy got imported (the run-time path is numpy only: scipy
would count against us, ~70 MB for scipy.signal).
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.stats import percentile

CPU_TARGET_MS = 5.0
ONSET_TARGET_S = 2.0
RECALL_TARGET = 0.9
RSS_TARGET_MB = 60.0
# docs/evaluation.md, "Protocol": the targets are judged on the development seeds pooled; the
# held-out seeds are printed on their own line and never tuned on. Seed 3 has been looked at
# (development, not held out) and is not run here.
DEV_SEEDS = (0, 1, 2)
HELD_OUT_SEEDS = (4, 5, 6, 7)   # 6-7 since 2026-11-30 (docs/evaluation.md, log)

_RSS_SCRIPT = r"""
import sys, json
def hwm():   # VmHWM, not ru_maxrss: that one carries the parent's peak across fork+exec
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
import numpy
base = hwm()
frames = 0
if sys.argv[1] != "base":
    fs = int(sys.argv[1])
    from dsp.pipeline import SoundPipeline   # what firmware/hub/sensors.py imports for sound
    from dsp.service import SoundService     # noqa: F401
    rng = numpy.random.default_rng(1)
    p = SoundPipeline(fs, calibrate_seconds=10)
    for _ in range(600):                     # 60 s in 0.1 s blocks, as from the microphone
        frames += len(p.process((rng.standard_normal(fs // 10) * 0.05).astype("float32")))
print(json.dumps({"base": base, "peak": hwm(), "frames": frames, "scipy": "scipy" in sys.modules}))
"""


def _cpu(audio: np.ndarray, scorer=None) -> tuple[float, float]:
    """Best of three ms per audio second: the pipeline (with `scorer` when given: a learnt score,
    dsp/learnt.py) and the level meter alone."""
    from dsp.detector import ShoutDetector
    from dsp.levels import LevelMeter
    from dsp.pipeline import SoundPipeline
    seconds = len(audio) / 16000
    blocks = [audio[i:i + 1600] for i in range(0, len(audio), 1600)]
    best_p = best_m = float("inf")
    for _ in range(3):   # best of three: the machine is shared
        p = SoundPipeline(16000, calibrate_seconds=10,
                          detector=None if scorer is None else ShoutDetector(scorer=scorer))
        t0 = time.process_time()
        for b in blocks:
            p.process(b)
        best_p = min(best_p, (time.process_time() - t0) / seconds * 1000)
        m = LevelMeter(16000)
        t0 = time.process_time()
        for b in blocks:
            m.process(b)
        best_m = min(best_m, (time.process_time() - t0) / seconds * 1000)
    return best_p, best_m


def _rss(mode: str) -> dict:
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run([sys.executable, "-c", _RSS_SCRIPT, mode], cwd=root, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)


def run() -> bool:
    from sim import evalset
    from sim.sound_eval import LOUDNESS_THRESHOLD_DBA, detector_episodes, evaluate, loudness_episodes
    from sim.sound_eval import summarise as summ

    print("== sound: loudness, shouting detector, thermometer (issue 4) ==")
    ok = True
    t0 = time.monotonic()
    sets: dict[int, list] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in DEV_SEEDS + HELD_OUT_SEEDS:
            sets[seed] = evalset.build(seed=seed, cache_dir=Path(tmp))
    dev = [c for sd in DEV_SEEDS for c in sets[sd]]
    held = [c for sd in HELD_OUT_SEEDS for c in sets[sd]]
    print(f"evaluation set (docs/evaluation.md, protocol): development seeds {_seeds(DEV_SEEDS)} "
          f"{sum(c.positive for c in dev)} positive, {sum(not c.positive for c in dev)} negative clips; "
          f"held-out seeds {_seeds(HELD_OUT_SEEDS)} {sum(c.positive for c in held)} positive, "
          f"{sum(not c.positive for c in held)} negative; built in {time.monotonic() - t0:.1f} s")

    audio = np.concatenate([c.audio for c in sets[DEV_SEEDS[0]][:6]]).astype(np.float32)
    cpu_ms, meter_ms = _cpu(audio)
    good = cpu_ms <= CPU_TARGET_MS
    ok &= good
    print(f"CPU per 1 s of 16 kHz audio: {cpu_ms:.2f} ms (real-time factor {cpu_ms / 1000:.4f}; "
          f"target <= {CPU_TARGET_MS:.0f} ms) {'ok' if good else 'MISSED'}; "
          f"baseline level meter alone {meter_ms:.2f} ms (x{cpu_ms / meter_ms:.1f})")

    base, full, full48 = _rss("base"), _rss("16000"), _rss("48000")
    assert full["frames"] >= 58 and full48["frames"] >= 58, (full, full48)   # it really ran
    detector_mb = full["peak"] - base["base"]
    good = detector_mb <= RSS_TARGET_MB
    ok &= good
    print(f"resident memory: detector {detector_mb:.1f} MB above Python+numpy after 60 s of "
          f"16 kHz audio ({full['peak']:.1f} MB whole process, {base['base']:.1f} MB without it; "
          f"target <= {RSS_TARGET_MB:.0f} MB) {'ok' if good else 'MISSED'}; at 48 kHz "
          f"{full48['peak'] - base['base']:.1f} MB")
    scipy_in = full["scipy"] or full48["scipy"]
    ok &= not scipy_in
    print(f"scipy imported by the run-time path (dsp.pipeline, dsp.service, 60 s of audio): "
          f"{'yes: MISSED (it must be numpy only)' if scipy_in else 'no, ok'}")

    results = {sd: evaluate(sets[sd], detector_episodes) for sd in DEV_SEEDS + HELD_OUT_SEEDS}
    det = summ([r for sd in DEV_SEEDS for r in results[sd]])
    loud = summ(evaluate(dev, loudness_episodes))
    p95 = percentile(det.latencies, 95) if det.latencies else float("inf")
    checks = [("recall", det.recall >= RECALL_TARGET), ("negatives", det.false_episodes == 0),
              ("onset", p95 <= ONSET_TARGET_S)]
    print(f"development seeds {_seeds(DEV_SEEDS)} pooled (the targets are judged here):")
    for name, s in (("detector", det), (f"loudness >= {LOUDNESS_THRESHOLD_DBA:.0f} dB(A)", loud)):
        print(f"  {name:24s} {_line(s)}")
    for sd in DEV_SEEDS:
        print(f"    seed {sd}: {_line(summ(results[sd]))}")
    print(f"targets: recall >= {RECALL_TARGET}, 0 episodes on negatives, onset p95 <= "
          f"{ONSET_TARGET_S:.0f} s after the sustained condition: "
          + ", ".join(f"{n} {'ok' if g else 'MISSED'}" for n, g in checks))
    if det.missed:
        print(f"  missed: {', '.join(det.missed)}")
    held_s = summ([r for sd in HELD_OUT_SEEDS for r in results[sd]])
    print(f"held out, never tuned on: seeds {_seeds(HELD_OUT_SEEDS)} pooled (printed, not judged):")
    print(f"  {'detector':24s} {_line(held_s)}")
    for sd in HELD_OUT_SEEDS:
        print(f"    seed {sd}: {_line(summ(results[sd]))}")
    # no clip names here: a held-out clip that is named gets looked at, and then tuned for
    # issue 19 is not resolved (blocked on its targets, docs/sound.md): its targets are printed
    # (MISSED where missed) but not judged in the total, which holds the targets of the resolved
    # issues; resolving it makes this `ok &= ...`
    _loso()
    return ok and all(g for _, g in checks)


def _loso() -> bool:
    """Leave-one-source-out (sim/loso.py, issue 19): the per-fold table, the worst tuning fold
    against the targets, the level-only baseline on the same folds, and the held-out pair apart."""
    from sim import loso
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        clips = loso.build(cache_dir=Path(tmp))
    print(f"leave-one-source-out (sim/loso.py): {len(clips)} clips of {loso.CALIBRATE_S} s calibration + "
          f"{loso.TEST_S:.0f} s test, built in {time.monotonic() - t0:.1f} s; targets on the worst tuning "
          "fold: recall >= 0.9 near and far, onset p95 <= 5 s, >= 95 % of each negative kind quiet")
    recs = loso.record_all(clips)
    w, lines = loso.report(clips, lambda c: recs[c.name].episodes, "detector", held_out=True, names=False)
    print("\n".join(lines))
    print("\n".join(loso.report(loso.tuning_clips(clips), loso.level_episodes,
                                "level only (LAeq >= 70 dB(A), same rule)", names=False)[1]))
    # why the onset target is where it is: what the 4-s rule costs even a perfect judge of each
    # step, and what shorter rules cost the detector in negatives (docs/sound.md)
    print("\n".join(loso.floor_report(clips, recs)))
    print(f"LOSO worst tuning fold: {'ok' if w.meets() else 'MISSED'} "
          "(issue 19, not resolved: printed, not judged in the total)")
    return w.meets()


def episodes_with(scorer, calibrate_s: float):
    """Episodes of a clip through the real pipeline with `scorer` (None: the default detector)."""
    from dsp.detect_cli import run as through_pipeline
    from dsp.detector import ShoutDetector
    from sim.evalset import CAL_OFFSET_DB

    def episodes(c) -> list[tuple[float, float | None]]:
        _, p = through_pipeline(c.audio, c.fs, calibrate_seconds=int(calibrate_s),
                                calibration_offset_db=CAL_OFFSET_DB,
                                detector=None if scorer is None else ShoutDetector(scorer=scorer))
        return [(e.start_s, e.end_s) for e in p.episodes]
    return episodes


def compare_learnt(cache_dir: Path | None = None) -> None:
    """The learnt score (dsp/learnt.py, `python -m sim.train_detector`) beside the default detector,
    both through the real pipeline: the LOSO tuning folds (worst fold), the original development
    seeds (the targets), and the CPU on the same audio in the same run. Tuning clips only."""
    from dsp import learnt
    from sim import evalset, loso
    from sim.sound_eval import evaluate
    from sim.sound_eval import summarise as summ
    model = learnt.load()
    clips = loso.tuning_clips(loso.build(cache_dir=cache_dir))
    sets = {sd: evalset.build(seed=sd, cache_dir=cache_dir) for sd in DEV_SEEDS}
    audio = np.concatenate([c.audio for c in sets[DEV_SEEDS[0]][:6]]).astype(np.float32)
    for label, scorer in (("default detector", None), ("learnt score", model)):
        _, lines = loso.report(clips, episodes_with(scorer, loso.CALIBRATE_S), label)
        print("\n".join(lines))
        dev = summ([r for sd in DEV_SEEDS for r in evaluate(sets[sd], episodes_with(scorer, evalset.CALIBRATE_S))])
        p95 = percentile(dev.latencies, 95) if dev.latencies else float("inf")
        cpu, meter = _cpu(audio, scorer)
        met = dev.recall >= RECALL_TARGET and dev.false_episodes == 0 and p95 <= ONSET_TARGET_S
        print(f"{label}: development seeds {_seeds(DEV_SEEDS)} {_line(dev)}; targets {'met' if met else 'MISSED'}"
              f"; CPU {cpu:.2f} ms per audio second (level meter {meter:.2f})")


def _seeds(seeds: tuple[int, ...]) -> str:
    return ",".join(str(s) for s in seeds)


def _line(s) -> str:
    lat = (f"onset median {np.median(s.latencies):.1f} s, p95 {percentile(s.latencies, 95):.1f} s, "
           f"max {max(s.latencies):.1f} s" if s.latencies else "onset -")
    return (f"recall {s.recall:.2f} ({s.found}/{s.positives}), precision {s.precision:.2f}, "
            f"episodes on negatives {s.false_episodes}/{s.negatives} clips "
            f"{dict(sorted(s.false_by_category.items())) or ''}, {lat}")

if __name__ == "__main__":
    sys.exit(0 if run() else 1)
