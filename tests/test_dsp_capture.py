"""Capture through the real audio path: paplay -> PulseAudio null sink -> its monitor -> ALSA's
pulse plugin -> portaudio -> pyaudio -> AudioCapture -> LevelMeter."""
from __future__ import annotations

import math
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from dsp.capture import AudioCapture, UnsupportedRateError, to_mono_float
from dsp.levels import LevelMeter
from tests.conftest import wait_until

FS = 16000
FIRST_BLOCK = 8.0  # s; a null sink with nothing playing hands out its first data after ~2 s


class Faults:
    def __init__(self):
        self.seen: list[tuple[str | None, str]] = []
        self._lock = threading.Lock()

    def __call__(self, code, reason):
        with self._lock:
            self.seen.append((code, reason))

    def codes(self):
        with self._lock:
            return [c for c, _ in self.seen]


def level_db(x: np.ndarray) -> float:
    return 10 * math.log10(max(float(np.mean(np.square(x, dtype=np.float64))), 1e-12))


def first_block(cap: AudioCapture) -> np.ndarray:
    deadline = time.monotonic() + FIRST_BLOCK
    while time.monotonic() < deadline:
        block = cap.read(0.2)
        if block is not None:
            return block
    pytest.fail("no audio arrived from the pulse device")


def test_a_played_tone_is_captured_at_its_level_with_silence_around_it(pulse_server):
    faults = Faults()
    cap = AudioCapture(device="pulse", rate=FS, block_seconds=0.1, on_fault=faults).start()
    try:
        block = first_block(cap)
        assert block.dtype == np.float32 and block.size == FS // 10
        before = [block] + [cap.read(2.0) for _ in range(5)]
        amplitude = 0.25                            # -15.05 dBFS RMS
        t = np.arange(2 * FS) / FS
        player = pulse_server.play(amplitude * np.sin(2 * np.pi * 1000 * t), FS, wait=False)
        meter, seconds, during = LevelMeter(FS), [], []
        for b in before:
            seconds += meter.process(b).seconds
        while player.poll() is None:
            b = cap.read(2.0)
            assert b is not None, "capture stalled while the tone played"
            during.append(b)
            seconds += meter.process(b).seconds
        after = [cap.read(2.0) for _ in range(10)]
        for b in after:
            seconds += meter.process(b).seconds
    finally:
        cap.stop()
    assert player.returncode == 0
    assert faults.seen == [] and cap.overflows == 0
    expected = 20 * math.log10(amplitude / math.sqrt(2))
    assert max(level_db(b) for b in before) < -90           # silence before
    assert max(level_db(b) for b in after[-5:]) < -90       # and after
    assert max(seconds) == pytest.approx(expected, abs=1.0), seconds
    loud = [level_db(b) for b in during + after if level_db(b) > expected - 3]
    assert len(loud) >= 15                                  # ~2 s of tone at 100 ms a block
    assert np.median(loud) == pytest.approx(expected, abs=1.0)


def test_server_gone_is_a_fault_and_capture_recovers_when_it_returns(pulse_server):
    faults = Faults()
    cap = AudioCapture(device="pulse", rate=FS, on_fault=faults, retry_min=0.3, retry_max=1.0)
    cap.start()
    try:
        first_block(cap)
        assert cap.running
        pulse_server.kill()
        assert wait_until(lambda: "mic.unplugged" in faults.codes(), 6.0), faults.seen
        assert not cap.running
        _code, reason = faults.seen[-1]
        assert "pulse" in reason and "retrying" in reason
        # the hub keeps reading: leftovers, then None, never an exception
        leftovers = 0
        while cap.read(0.05) is not None:
            leftovers += 1
            assert leftovers < 100
        retries = cap.retries
        assert wait_until(lambda: cap.retries >= retries + 2, 10.0)   # retried while it is gone
        assert cap.read(0.2) is None
        assert faults.codes() == ["mic.unplugged"]          # reported once, not per retry
        pulse_server.restart()
        assert wait_until(lambda: faults.codes()[-1:] == [None], 15.0), faults.seen
        assert faults.seen[-1] == (None, "")
        assert first_block(cap) is not None and cap.running
    finally:
        cap.stop()
    assert not cap._thread.is_alive()


def test_a_hung_sound_server_does_not_stop_the_retries(pulse_server):
    """Closing a stream whose server hangs blocks inside ALSA's pulse plugin; the supervisor
    must not wait on it, or it never opens the microphone again (seen in CI under load)."""
    faults = Faults()
    cap = AudioCapture(device="pulse", rate=FS, on_fault=faults, retry_min=0.3, retry_max=1.0)
    cap.start()
    try:
        first_block(cap)
        pulse_server.hang()
        assert wait_until(lambda: "mic.unplugged" in faults.codes(), 8.0), faults.seen
        assert wait_until(lambda: cap.retries >= 1, 10.0), "no retry while the server hangs"
        assert cap.abandoned_closes >= 1
        pulse_server.restart()
        assert wait_until(lambda: faults.codes()[-1:] == [None], 15.0), faults.seen
        assert first_block(cap) is not None
    finally:
        cap.stop()


def test_unknown_device_is_a_fault_naming_the_devices_that_exist(pulse_server):
    faults = Faults()
    cap = AudioCapture(device="Blue Yeti", on_fault=faults, retry_min=5.0).start()
    try:
        assert wait_until(lambda: faults.codes() == ["mic.not_found"], 10.0), faults.seen
        reason = faults.seen[0][1]
        assert "'Blue Yeti'" in reason and "'pulse'" in reason
        assert cap.read(0.1) is None and not cap.running
    finally:
        cap.stop()
    assert not cap._thread.is_alive()


def test_a_full_queue_drops_and_counts_blocks_at_48_khz(pulse_server):
    cap = AudioCapture(device="pulse", rate=48000, block_seconds=0.05, queue_seconds=0.1)
    cap.start()
    try:
        assert wait_until(lambda: cap.overflows >= 5, FIRST_BLOCK + 2), "nothing was dropped"
        kept = [cap.read(0.5) for _ in range(2)]            # the queue held two blocks
        assert all(b is not None and b.size == 2400 for b in kept)
        assert cap.running
    finally:
        cap.stop()
    assert cap.read(0.05) is None                           # stop() dropped what was queued


def test_list_shows_input_devices_by_name(pulse_server):
    out = subprocess.run([sys.executable, "-m", "dsp.capture", "--list"], capture_output=True,
                         text=True, timeout=30, env=dict(os.environ))
    assert out.returncode == 0, out.stderr
    assert any(line.split()[1:2] == ["pulse"] for line in out.stdout.splitlines()), out.stdout


def test_unsupported_rate_names_the_supported_ones():
    with pytest.raises(UnsupportedRateError, match="16000, 44100 or 48000"):
        AudioCapture(rate=22050)
    with pytest.raises(ValueError):
        AudioCapture(rate=8000)


def test_stereo_is_mixed_down_to_mono():
    left = np.array([1000, -2000, 32767], dtype=np.int16)
    right = np.array([3000, 2000, 32767], dtype=np.int16)
    data = np.column_stack([left, right]).astype(np.int16).tobytes()
    mono = to_mono_float(data, 2)
    assert mono.dtype == np.float32
    assert mono * 32768 == pytest.approx([2000, 0, 32767])
    # a trailing half frame is dropped; mono input is scaled exactly, full scale is -1.0
    assert to_mono_float(data + left[:1].tobytes(), 2).size == 3
    one = to_mono_float(np.array([-32768, 0, 16384, 32767], dtype=np.int16).tobytes(), 1)
    assert one.dtype == np.float32 and one.tolist() == [-1.0, 0.0, 0.5, 32767 / 32768]


def test_installer_calibration_from_a_calibrator_tone(pulse_server):
    # 94 dB at the microphone reads as a 1 kHz sine of amplitude 0.1 (-23.0 dBFS)
    t = np.arange(8 * FS) / FS
    player = pulse_server.play(0.1 * np.sin(2 * np.pi * 1000 * t), FS, wait=False)
    try:
        out = subprocess.run([sys.executable, "-m", "dsp.capture", "--device", "pulse",
                              "--seconds", "2", "--calibrate", "94"], capture_output=True,
                             text=True, timeout=30, env=dict(os.environ))
    finally:
        player.kill()
        player.wait()
    assert out.returncode == 0, out.stderr
    offset = float(out.stdout.strip().splitlines()[-1].split("=")[1])
    assert offset == pytest.approx(94.0 - 20 * math.log10(0.1 / math.sqrt(2)), abs=0.3)
