"""Microphone capture through pyaudio, kept alive by a supervisor thread.

- The stream callback only converts int16 to float32 mono and puts the block in a bounded queue;
  when the queue is full the block is dropped and counted (`overflows`), so the audio thread
  never waits on the hub.
- A supervisor thread ("audio-capture") opens the stream and watches it. A stream that stopped,
  or that delivered nothing for STALL_SECONDS (USB microphone pulled, sound server gone), is a
  fault `mic.unplugged`; it closes everything, re-initialises PyAudio (portaudio only enumerates
  devices at initialisation) and retries with exponential backoff. The first block after a fault
  clears it with on_fault(None, "").
- R1: samples live only in the queue (emptied by stop()) and the caller's memory; nothing is
  written or sent.
"""
from __future__ import annotations

import argparse
import logging
import math
import os
import queue
import sys
import threading
import time
from collections.abc import Callable

import numpy as np
import pyaudio

from core.errors import HubError

log = logging.getLogger(__name__)

SUPPORTED_RATES = (16000, 44100, 48000)
STALL_SECONDS = 2.0
# A stream may take a while to deliver its first block (a PulseAudio null sink with nothing
# playing renders in 2 s chunks); after that, a gap of STALL_SECONDS means the device is gone.
FIRST_BLOCK_SECONDS = 5.0
# Closing a stream whose sound server vanished mid-read can block inside ALSA's pulse plugin
# (seen under load: the supervisor then never retried). The supervisor waits this long for a
# close, then leaves it to finish on its own and opens a new stream.
CLOSE_SECONDS = 3.0
_POLL = 0.2

FaultCallback = Callable[[str | None, str], None]


class AudioDeviceError(HubError, OSError):
    """The configured microphone is not among the input devices."""


class UnsupportedRateError(HubError, ValueError):
    pass


def _input_devices(pa) -> list[dict]:
    out = []
    for i in range(pa.get_device_count()):
        try:
            info = pa.get_device_info_by_index(i)
        except (OSError, ValueError):
            continue
        if info.get("maxInputChannels", 0) > 0:
            out.append(info)
    return out


def _names(devices: list[dict]) -> str:
    if not devices:
        return "there are no input devices (is a microphone plugged in?)"
    return "input devices: " + ", ".join(repr(d["name"]) for d in devices)


def find_input_device(pa, device: str | int | None) -> dict:
    """The device info for a name (case-insensitive substring, exact name first), an index
    (int or digits) or None (the system default). Raises AudioDeviceError listing what exists."""
    devices = _input_devices(pa)
    if device is None:
        try:
            return pa.get_default_input_device_info()
        except OSError:
            raise AudioDeviceError(f"There is no default input device; {_names(devices)}.") from None
    if isinstance(device, int) or (isinstance(device, str) and device.strip().isdigit()):
        index = int(device)
        for d in devices:
            if d["index"] == index:
                return d
        raise AudioDeviceError(f"Input device number {index} does not exist; {_names(devices)}.")
    wanted = str(device).strip().lower()
    exact = [d for d in devices if d["name"].lower() == wanted]
    partial = [d for d in devices if wanted and wanted in d["name"].lower()]
    if exact or partial:
        return (exact or partial)[0]
    raise AudioDeviceError(f"No input device matches {str(device)!r}; {_names(devices)}.")


def list_input_devices(pyaudio_module=pyaudio) -> list[tuple[int, str, int, float]]:
    """(index, name, input channels, default rate) of every input device, for the installer."""
    pa = pyaudio_module.PyAudio()
    try:
        return [(d["index"], d["name"], int(d["maxInputChannels"]), float(d["defaultSampleRate"]))
                for d in _input_devices(pa)]
    finally:
        pa.terminate()


_INT16_SCALE = np.float32(1.0 / 32768.0)


def to_mono_float(data: bytes, channels: int) -> np.ndarray:
    """int16 interleaved frames -> float32 mono in [-1, 1) (channels averaged). Runs in the audio
    callback: one new array per block, the one that is queued."""
    x = np.frombuffer(data, dtype=np.int16)
    if channels > 1:
        mono = x[: x.size - x.size % channels].reshape(-1, channels).mean(axis=1, dtype=np.float32)
        mono *= _INT16_SCALE
        return mono
    return np.multiply(x, _INT16_SCALE, dtype=np.float32)


class AudioCapture:
    """A microphone as a stream of float32 mono blocks: `start()`, then `read(timeout)`."""

    def __init__(self, device: str | int | None = None, rate: int = 16000,
                 block_seconds: float = 0.1, queue_seconds: float = 5.0,
                 on_fault: FaultCallback | None = None, retry_min: float = 1.0,
                 retry_max: float = 60.0, pyaudio_module=pyaudio):
        if rate not in SUPPORTED_RATES:
            raise UnsupportedRateError(
                f"The microphone rate {rate!r} Hz is not supported; use "
                f"{', '.join(str(r) for r in SUPPORTED_RATES[:-1])} or {SUPPORTED_RATES[-1]} Hz.")
        if not 0.01 <= block_seconds <= 1.0:
            raise ValueError(f"block_seconds must be between 0.01 and 1 s, not {block_seconds!r}.")
        if not queue_seconds >= block_seconds:
            raise ValueError("queue_seconds must hold at least one block.")
        if not 0 < retry_min <= retry_max:
            raise ValueError("The retry delays need 0 < retry_min <= retry_max.")
        self.device = device
        self.rate = int(rate)
        self.frames_per_block = round(rate * block_seconds)
        self.retry_min, self.retry_max = float(retry_min), float(retry_max)
        self._pa_mod = pyaudio_module
        self._on_fault = on_fault
        self._queue: queue.Queue[np.ndarray] = queue.Queue(
            maxsize=max(1, math.ceil(queue_seconds / block_seconds - 1e-9)))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._channels = 1
        self._last_block = 0.0     # monotonic time of the latest callback; 0: none since opening
        self._ever_ran = False
        self.fault: str | None = None
        self.device_name: str | None = None
        self.overflows = 0         # blocks dropped because the queue was full
        self.input_overflows = 0   # portaudio said the device overran its own buffer
        self.retries = 0           # times the microphone was opened again after a fault
        self.abandoned_closes = 0  # closes that had not finished after CLOSE_SECONDS

    # -- the audio thread -------------------------------------------------------------------
    def _callback(self, data, frame_count, time_info, status):
        self._last_block = time.monotonic()
        if status & self._pa_mod.paInputOverflow:
            self.input_overflows += 1
        try:
            self._queue.put_nowait(to_mono_float(data, self._channels))
        except queue.Full:
            self.overflows += 1
        return (None, self._pa_mod.paContinue)

    # -- public -----------------------------------------------------------------------------
    def start(self) -> AudioCapture:
        if self._thread is not None and self._thread.is_alive():
            return self
        self._stop.clear()
        self._thread = threading.Thread(target=self._supervise, name="audio-capture", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop capturing and drop the blocks nobody read (R1: no sound outlives the capture)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("the audio capture thread did not end within %.1f s", timeout)
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break

    def read(self, timeout: float | None = None) -> np.ndarray | None:
        """The next block (float32 mono), or None when none arrived within `timeout` seconds."""
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            return None

    @property
    def running(self) -> bool:
        """True while a stream is open and delivering sound."""
        return (self._thread is not None and self._thread.is_alive() and self.fault is None
                and self._last_block > 0 and time.monotonic() - self._last_block < STALL_SECONDS)

    # -- the supervisor ---------------------------------------------------------------------
    def _report(self, code: str | None, reason: str) -> None:
        if code == self.fault:
            return
        self.fault = code
        if code:
            log.warning("microphone fault %s: %s", code, reason)
        else:
            log.info("microphone %r delivers sound again", self.device_name)
        if self._on_fault is not None:
            try:
                self._on_fault(code, reason)
            except Exception:
                log.exception("the microphone fault handler failed")

    def _supervise(self) -> None:
        # portaudio's JACK host API otherwise tries to start a jackd at every initialisation
        os.environ.setdefault("JACK_NO_START_SERVER", "1")
        delay = self.retry_min
        while not self._stop.is_set():
            pa = stream = None
            healthy = False
            try:
                pa = self._pa_mod.PyAudio()
                stream = self._open(pa)
                healthy = self._watch(stream)
            except AudioDeviceError as e:
                self._report("mic.unplugged" if self._ever_ran else "mic.not_found", str(e))
            except OSError as e:
                self._report("mic.unplugged" if self._ever_ran else "mic.open_failed",
                             f"The microphone {self.device_name or self.device!r} could not be "
                             f"opened at {self.rate} Hz: {e}")
            except Exception as e:
                log.exception("microphone supervisor")
                self._report("mic.error", f"The microphone failed: {type(e).__name__}: {e}")
            finally:
                self._close(pa, stream)
            if healthy:
                delay = self.retry_min
            if self._stop.wait(delay):
                break
            log.info("retrying the microphone %r", self.device_name or self.device)
            self.retries += 1
            delay = min(delay * 2.0, self.retry_max)

    def _open(self, pa):
        info = find_input_device(pa, self.device)
        self.device_name = info["name"]
        self._last_block = 0.0
        last_error: OSError | None = None
        # Mono first; a device that only captures stereo is opened as such and mixed down.
        for channels in sorted({1, min(2, int(info["maxInputChannels"]))}):
            self._channels = channels
            try:
                stream = pa.open(format=self._pa_mod.paInt16, channels=channels, rate=self.rate,
                                 input=True, input_device_index=int(info["index"]),
                                 frames_per_buffer=self.frames_per_block,
                                 stream_callback=self._callback, start=False)
            except (OSError, ValueError) as e:
                last_error = OSError(str(e))
                continue
            stream.start_stream()
            log.info("microphone %r open: %d Hz, %d channel(s)", info["name"], self.rate, channels)
            return stream
        raise last_error or OSError("no channel count worked")

    def _watch(self, stream) -> bool:
        """Until stop or a stall; returns True if the stream delivered sound at all."""
        opened = time.monotonic()
        while not self._stop.wait(_POLL):
            now, last = time.monotonic(), self._last_block
            if last > 0:
                self._ever_ran = True
                self._report(None, "")  # clears a fault; nothing when there was none
            if not stream.is_active():
                why = "its audio stream stopped"
            elif last == 0 and now - opened > FIRST_BLOCK_SECONDS:
                why = f"no sound arrived within {FIRST_BLOCK_SECONDS:.0f} s of opening it"
            elif last > 0 and now - last > STALL_SECONDS:
                why = f"no sound arrived for {STALL_SECONDS:.0f} s"
            else:
                continue
            self._report("mic.unplugged", f"The microphone {self.device_name!r} stopped "
                                          f"delivering sound ({why}); retrying.")
            return last > 0
        return self._last_block > 0

    def _close(self, pa, stream) -> None:
        """Close without waiting on a dead device: close() on a running stream aborts it
        (portaudio cancels its audio thread) where stop_stream() would wait for it to drain;
        the sound is dropped anyway (R1). A close that still blocks is left behind."""
        if pa is None and stream is None:
            return

        def close() -> None:
            for step in (getattr(stream, "close", None), getattr(pa, "terminate", None)):
                if step is None:
                    continue
                try:
                    step()
                except Exception as e:
                    log.debug("closing the microphone: %s", e)

        closer = threading.Thread(target=close, name="audio-close", daemon=True)
        closer.start()
        closer.join(CLOSE_SECONDS)
        if closer.is_alive():
            self.abandoned_closes += 1
            log.warning("the microphone %r did not close within %.0f s (its sound server is "
                        "gone?); opening it again without waiting", self.device_name,
                        CLOSE_SECONDS)


def listen(device: str | int | None, rate: int, seconds: float,
           on_block: Callable[[np.ndarray], None]) -> str | None:
    """Hand `seconds` of the microphone to on_block, block by block (the installer's commands);
    returns the first fault's sentence, or None."""
    faults: list[str] = []
    cap = AudioCapture(device, rate=rate, on_fault=lambda c, r: faults.append(r) if c else None,
                       retry_min=60.0).start()
    got, deadline = 0, time.monotonic() + seconds + FIRST_BLOCK_SECONDS
    try:
        while time.monotonic() < deadline and got < seconds * rate and not faults:
            block = cap.read(0.5)
            if block is not None:
                got += block.size
                on_block(block)
    finally:
        cap.stop()
    return faults[0] if faults else None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m dsp.capture",
                                description="List microphones, show their level, calibrate.")
    p.add_argument("--list", action="store_true", help="list input devices (index and name)")
    p.add_argument("--device", default=None, help="name (part of it) or index; default: system's")
    p.add_argument("--rate", type=int, default=16000, choices=SUPPORTED_RATES)
    p.add_argument("--seconds", type=int, default=5, help="how long to show levels")
    p.add_argument("--calibrate", type=float, metavar="DB", default=None,
                   help="a calibrator of DB dB at 1 kHz is on the microphone: print the offset")
    a = p.parse_args(argv)
    if a.list:
        devices = list_input_devices()
        for index, name, channels, rate in devices:
            print(f"{index:3d}  {name}  ({channels} ch, default {rate:.0f} Hz)")
        if not devices:
            print("no input devices", file=sys.stderr)
            return 1
        return 0
    from dsp.levels import LevelMeter, calibration_offset

    meter, kept = LevelMeter(a.rate), []

    def on_block(block: np.ndarray) -> None:
        if a.calibrate is not None:
            kept.append(block)  # in memory only, for the offset below
        for level in meter.process(block).seconds:
            print(f"{level:7.1f} dBFS (A-weighted, LAeq 1 s)")

    fault = listen(a.device, a.rate, a.seconds, on_block)
    if fault:
        print(fault, file=sys.stderr)
        return 1
    if a.calibrate is not None and kept:
        x = np.concatenate(kept)[a.rate // 2:]  # skip the first half second (filters settling)
        try:
            print(f"calibration_offset_db = {calibration_offset(x, a.calibrate):.2f}")
        except ValueError as e:
            print(e, file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
