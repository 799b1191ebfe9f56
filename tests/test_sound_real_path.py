"""The hub hearing a room through the real audio path: paplay -> PulseAudio null sink -> monitor ->
ALSA pulse plugin -> portaudio -> pyaudio -> AudioCapture -> SoundPipeline -> Hub -> Mosquitto.

Raised voices become an episode and a break suggestion on the panel's state; equally loud normal
speech does not. The household baseline comes from the clip's own first 10 s, as the installer's
calibration would have made it on the day."""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest

from core.clock import ManualClock
from dsp.detect_cli import run
from dsp.service import save_baseline
from firmware.hub.plan import load_plan
from firmware.hub.sensors import BASELINE_FILE, Microphone, start_sound
from firmware.hub.service import Hub
from sim import evalset
from tests.conftest import wait_until
from tests.helpers.collect import Collect

ROOT = Path(__file__).resolve().parents[1]
PLAN = load_plan(ROOT / "examples" / "household.toml", today=dt.date(2026, 11, 21))


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    return {c.category: c for c in evalset.build(n_per_category=1, seed=0,
                                                 cache_dir=tmp_path_factory.mktemp("evalset"))}


def _hear(clip, pulse_server, broker, bus, tmp_path):
    state_dir = tmp_path / "hub"
    state_dir.mkdir()
    calib = clip.audio[:int(evalset.CALIBRATE_S * clip.fs)]
    _, p = run(calib, clip.fs, calibrate_seconds=int(evalset.CALIBRATE_S),
               calibration_offset_db=evalset.CAL_OFFSET_DB)
    save_baseline(state_dir / BASELINE_FILE, p.baseline)

    panel = bus("panel", start=False)
    sound, states = Collect(payloads=True), Collect(payloads=True)
    panel.on("state", states)
    panel.start()
    assert panel.wait_subscribed(10)
    hub_bus = bus("hub", start=False)     # only the hub reads sensor/sound (the panel reads state)
    hub_bus.on("sensor/sound", sound)
    hub = Hub(PLAN, hub_bus, ManualClock(), state_dir, tick_seconds=0.05).start()
    hub.presence("a", "home")
    hub.presence("b", "home")
    svc = start_sound(hub, Microphone(device="pulse", calibration_offset_db=evalset.CAL_OFFSET_DB),
                      ManualClock(), state_dir)
    try:
        assert wait_until(lambda: len(sound) >= 2, timeout=15), pulse_server.log_tail()
        pulse_server.play(clip.audio[int(evalset.CALIBRATE_S * clip.fs):], clip.fs)
        wait_until(lambda: False, timeout=3)    # the last second reaches the detector
    finally:
        svc.stop()
    phases = [s.phase for s in states]
    hub.stop()
    return list(sound), phases


def test_raised_voices_through_the_microphone_suggest_a_break(clips, pulse_server, broker, bus, tmp_path):
    sound, phases = _hear(clips["shout-en"], pulse_server, broker, bus, tmp_path)
    assert "suggestion" in phases, str([(round(m.level_db), m.shout, m.thermometer) for m in sound])
    assert max(m.thermometer for m in sound) >= 8
    assert max(m.shout for m in sound) >= 0.5
    assert {m.unit for m in sound} == {"dBA"}
    assert max(m.level_db for m in sound) >= 75


def test_equally_loud_normal_speech_does_not(clips, pulse_server, broker, bus, tmp_path):
    sound, phases = _hear(clips["loud-speech"], pulse_server, broker, bus, tmp_path)
    assert "suggestion" not in phases
    assert max(m.level_db for m in sound) >= 75      # a level threshold would have fired
    assert max(m.thermometer for m in sound) <= 4


def test_the_installer_calibrates_the_household_baseline_through_the_microphone(clips, pulse_server, tmp_path):
    import subprocess
    import sys
    calm = clips["calm"].audio[:int(evalset.CALIBRATE_S * 16000)]
    cmd = [sys.executable, "-m", "firmware.cli", "calibrate", "--device", "pulse", "--seconds", "10",
           "--state-dir", str(tmp_path / "hub")]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    import time
    time.sleep(3)                     # the null sink hands out its first data after ~2 s
    player = pulse_server.play(np.concatenate([calm, calm]), 16000, wait=False)
    out, err = proc.communicate(timeout=60)
    player.kill()
    assert proc.returncode == 0, err[-800:]
    saved = json.loads((tmp_path / "hub" / BASELINE_FILE).read_text())
    assert saved["calibrated"] and saved["seconds"] >= 4
    assert "household baseline saved" in out
