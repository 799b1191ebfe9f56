"""The shouting detector on the generated evaluation set, `timeout-hub detect`, and R1 (no audio
leaves dsp/: nothing written but the baseline's numbers, only numbers on the bus)."""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np
import pytest

from dsp.detector import Baseline
from dsp.pipeline import SoundPipeline
from sim import evalset
from sim.sound_eval import detector_episodes, evaluate, loudness_episodes, summarise

ROOT = Path(__file__).resolve().parents[1]


# Seed 2: a development seed (docs/evaluation.md), but not seed 0, the one the detector's weights
# were chosen on (docs/sound.md), so these tests do not grade the detector on its own tuning clips.
# Seeds 4-7 are held out: run once at the end of a change, never in a test (a failing test would
# show their clips and invite tuning on them).
@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    return evalset.build(n_per_category=2, seed=2, cache_dir=tmp_path_factory.mktemp("evalset"))


@pytest.fixture(scope="module")
def wavs(clips, tmp_path_factory):
    d = tmp_path_factory.mktemp("wav")
    out = {}
    for c in clips:
        out[c.name] = d / f"{c.name}.wav"
        evalset.write_wav(c, out[c.name])
    return out


def test_raised_voices_are_episodes_and_loud_tv_music_impulses_are_not(clips):
    s = summarise(evaluate(clips, detector_episodes))
    assert s.recall >= 0.9, f"missed {s.missed}"
    assert s.false_episodes == 0, s.false_by_category
    # ... where a plain loudness threshold, on the same clips, fires on the loud negatives
    base = summarise(evaluate(clips, loudness_episodes))
    assert base.false_episodes >= 4, base.false_by_category


def test_an_episode_starts_soon_after_sustained_shouting_and_ends_after_it(clips):
    for c in (c for c in clips if c.positive):
        _frames, p = _run(c)
        assert p.episodes, c.name
        e = p.episodes[0]
        assert e.start_s >= c.shout_spans[0][0], f"{c.name}: episode before anyone shouted"
        assert e.end_s is not None and e.end_s > c.shout_spans[-1][1] - 1, c.name
        assert e.start_s - c.sustained_at <= 8.0, f"{c.name}: onset {e.start_s - c.sustained_at:.1f} s"


def _run(c):
    from dsp.detect_cli import run
    return run(c.audio, c.fs, calibrate_seconds=int(evalset.CALIBRATE_S),
               calibration_offset_db=evalset.CAL_OFFSET_DB)


def test_the_thermometer_rises_with_shouting_and_stays_low_for_loud_speech(clips):
    shout = next(c for c in clips if c.positive)
    loud = next(c for c in clips if c.category == "loud-speech")
    f_shout, _ = _run(shout)
    f_loud, _ = _run(loud)
    assert max(f.thermometer for f in f_shout) >= 8
    assert max(f.thermometer for f in f_loud) <= 4
    # the loud speech is as loud as the shouting: the level alone cannot be what decides
    assert max(f.laeq_db for f in f_loud) >= max(f.laeq_db for f in f_shout) - 6


def test_streaming_gives_the_same_answer_whatever_the_block_size(clips):
    c = next(c for c in clips if c.positive)
    results = []
    for block in (160, 1600, 7919):
        p = SoundPipeline(c.fs, calibrate_seconds=10)
        frames = []
        for i in range(0, len(c.audio), block):
            frames.extend(p.process(c.audio[i:i + block]))
        results.append([(f.t, round(f.laeq_db, 6), f.shout) for f in frames])
    assert results[0] == results[1] == results[2]


@pytest.mark.parametrize("fs", [44100, 48000])
def test_44k1_and_48k_capture_find_the_same_episodes(clips, fs):
    from scipy.signal import resample_poly
    c = next(c for c in clips if c.positive)
    x = resample_poly(c.audio, fs // 100, c.fs // 100).astype(np.float32)
    from dsp.detect_cli import run
    _, p16 = _run(c)
    _, p = run(x, fs, calibrate_seconds=10, calibration_offset_db=evalset.CAL_OFFSET_DB)
    assert len(p.episodes) == len(p16.episodes) == 1
    assert abs(p.episodes[0].start_s - p16.episodes[0].start_s) <= 1.0


def test_detect_prints_one_frame_a_second_and_the_episodes(wavs, clips):
    c = next(c for c in clips if c.positive)
    r = subprocess.run([sys.executable, "-m", "firmware.cli", "detect", str(wavs[c.name]),
                        "--calibrate-seconds", "10", "--json"], capture_output=True, text=True,
                       cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stderr
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    frames, tail = lines[:-1], lines[-1]
    # one line for each whole second of the file, none skipped, the last one included
    assert [f["t"] for f in frames] == [float(t) for t in range(1, int(len(c.audio) / c.fs) + 1)]
    assert set(frames[0]) == {"t", "laeq_db", "shout"}
    assert len(tail["episodes"]) == 1 and set(tail["episodes"][0]) == {"start_s", "end_s", "peak"}
    text = subprocess.run([sys.executable, "-m", "firmware.cli", "detect", str(wavs[c.name]),
                           "--calibrate-seconds", "10"], capture_output=True, text=True, cwd=ROOT)
    assert "1 episode(s)" in text.stdout and "calibrating" in text.stdout


def test_detect_scores_the_last_second_of_a_file():
    # the pipeline scores a second once it has the analysis window's overlap (20 ms) past it;
    # finish() scores the last one of a file that ends exactly on a whole second
    from dsp.detect_cli import run
    x = (np.random.default_rng(0).standard_normal(3 * 16000) * 0.01).astype(np.float32)
    frames, _ = run(x, 16000)
    assert [f.t for f in frames] == [1.0, 2.0, 3.0]


def test_detect_refuses_what_is_not_audio(tmp_path):
    bad = tmp_path / "notes.wav"
    bad.write_text("this is not a recording")
    short = tmp_path / "short.wav"
    import soundfile
    soundfile.write(str(short), np.zeros(800, dtype=np.float32), 16000)
    nan = tmp_path / "nan.wav"
    soundfile.write(str(nan), np.full(32000, np.nan, dtype=np.float32), 16000, subtype="FLOAT")
    for path, words in ((bad, "cannot read it as"), (short, "shorter than one second"),
                        (nan, "not numbers"),
                        (tmp_path / "missing.flac", "cannot read it as")):
        r = subprocess.run([sys.executable, "-m", "firmware.cli", "detect", str(path)],
                           capture_output=True, text=True, cwd=ROOT)
        assert r.returncode == 2 and words in r.stderr, r.stderr
        assert "Traceback" not in r.stderr


def test_a_garbled_block_is_skipped_and_the_sound_service_goes_on(caplog):
    from dsp.service import ArraySource, SoundService
    from tests.conftest import wait_until
    x = np.zeros(16000 * 4, dtype=np.float32)
    x[16000:17600] = np.nan                       # one 0.1 s block of garbage from the driver
    frames = []
    src = ArraySource(x, 16000, speed=20.0)
    svc = SoundService(src, SoundPipeline(16000), frames.append).start()
    assert wait_until(lambda: src.done, timeout=10)
    svc.stop()
    assert "failed on a block" in caplog.text
    assert len(frames) == 3 and all(np.isfinite(f.laeq_db) for f in frames)


def test_a_damaged_baseline_file_falls_back_to_the_defaults(tmp_path, caplog):
    from dsp.service import load_baseline, save_baseline
    p = tmp_path / "b.json"
    save_baseline(p, Baseline(speech_db=-40.0, f0_st=9.0, hi_ratio_db=-10.0, seconds=12, calibrated=True))
    assert load_baseline(p).speech_db == -40.0 and load_baseline(p).calibrated
    p.write_text('{"speech_db": "NaN", "f0_st": 1, "hi_ratio_db": 2}')
    assert load_baseline(p) is None and "not usable" in caplog.text


# -- R1: no audio sample is written or published ------------------------------------------------
def _files(dirs) -> dict[Path, int]:
    """Sizes of the files under dirs (the repository without .git and .venv, one level of /tmp)."""
    out = {}
    for d in dirs:
        deep = d != Path(tempfile.gettempdir())
        for p in (d.rglob("*") if deep else d.glob("*")):
            if any(part in (".git", ".venv", "__pycache__", ".pytest_cache", ".hypothesis") for part in p.parts):
                continue
            try:
                if p.is_file():
                    out[p] = p.stat().st_size
            except OSError:
                pass
    return out


_writes: list[str] = []
_recording = threading.Event()


def _audit(event, args):
    if event == "open" and _recording.is_set():
        path, mode, flags = ([*list(args), None, None])[:3]
        writing = (isinstance(mode, str) and any(ch in mode for ch in "wax+")) or (
            isinstance(flags, int) and flags & 0o3)
        if writing:
            _writes.append(str(path))


sys.addaudithook(_audit)


def test_r1_only_numbers_leave_the_sound_pipeline(clips, tmp_path, broker, bus):
    """The hub's sound service on a shouting clip: nothing but the baseline file is opened for
    writing, and all that reaches the bus is small numeric payloads."""
    import datetime as dt

    from core.clock import ManualClock
    from dsp.service import ArraySource
    from firmware.hub.plan import load_plan
    from firmware.hub.sensors import BASELINE_FILE, Microphone, start_sound
    from firmware.hub.service import Hub
    from tests.conftest import wait_until
    from tests.helpers.rawmqtt import Raw

    plan = load_plan(ROOT / "examples" / "household.toml", today=dt.date(2026, 11, 21))
    c = next(c for c in clips if c.positive)
    # every reader of what the hub publishes (the broker's ACL gives each its share)
    spies = [Raw(broker.port, s, broker.creds(s).password, s) for s in ("panel", "bridge", "caller")]
    for spy in spies:
        assert spy.wait_connack() == 0
        spy.subscribe_and_ack("#")
    # only the hub itself reads sensor/sound (the panel shows the thermometer from state)
    hub_bus = bus("hub", start=False)
    heard: list = []
    hub_bus.on("sensor/sound", heard.append)
    hub = Hub(plan, hub_bus, ManualClock(), tmp_path / "hub", tick_seconds=0.05).start()
    hub.presence("a", "home")
    hub.presence("b", "home")
    src = ArraySource(c.audio, c.fs, speed=20.0)
    watched = [tmp_path, Path(tempfile.gettempdir()), ROOT]
    before = _files(watched)
    _writes.clear()
    _recording.set()
    try:
        svc = start_sound(hub, Microphone(calibration_offset_db=evalset.CAL_OFFSET_DB),
                          ManualClock(), tmp_path / "hub", source=src)
        assert wait_until(lambda: src.done, timeout=30)
        svc.stop()
    finally:
        _recording.clear()
    assert wait_until(lambda: hub.public_state()["phase"] == "suggestion", timeout=5)
    assert {Path(p).name for p in _writes} <= {BASELINE_FILE, Path(BASELINE_FILE).stem + ".tmp"}, _writes
    # writes from C (libsndfile, sqlite) pass no audit hook: no file that grew meanwhile holds a
    # run of the clip's samples (as float32 or int16), and none but the databases grew much
    grown = {p: n - before.get(p, 0) for p, n in _files(watched).items() if n > before.get(p, 0)}
    pcm = [c.audio, (c.audio * 32767).astype(np.int16)]
    needles = [x[i:i + 32].tobytes() for x in pcm for i in range(len(c.audio) // 2, len(c.audio), len(c.audio) // 12)]
    for path in grown:
        data = path.read_bytes()
        assert not any(n in data for n in needles), f"{path} holds audio samples"
    assert sum(n for p, n in grown.items() if "sqlite" not in p.name) < 10_000, grown
    saved = json.loads((tmp_path / "hub" / BASELINE_FILE).read_text())
    assert set(saved) == {"speech_db", "f0_st", "hi_ratio_db", "seconds", "calibrated", "f0_hist",
                          "hist_seconds"}
    # the voices' pitch is a histogram of shares (40 numbers), not a trace of the evening
    assert len(saved["f0_hist"]) == 40 and all(isinstance(v, float) for v in saved["f0_hist"])
    received = [m for spy in spies for m in spy.received]
    assert not [t for t, _ in received if t.endswith("/sensor/sound")]
    sound = [json.loads(m.payload.model_dump_json()) for m in heard]
    assert len(sound) >= int(len(c.audio) / c.fs) - 2
    assert all(set(m) == {"v", "id", "ts", "level_db", "unit", "shout", "thermometer"} for m in sound)
    audio_bytes = c.audio.astype(np.int16).nbytes
    assert sum(len(p) for _, p in received) + sum(len(json.dumps(m)) for m in sound) < audio_bytes / 100
    for spy in spies:
        spy.close()
    hub.stop()


def test_a_calibration_as_long_as_the_recording_still_seeds_the_baseline(clips):
    from dsp.detect_cli import run
    c = clips[0]
    _, p = run(c.audio[:10 * c.fs], c.fs, calibrate_seconds=10)
    assert p.baseline.calibrated and p.baseline.seconds >= 5
