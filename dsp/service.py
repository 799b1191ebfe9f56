"""The sound service inside the hub: a source of samples -> SoundPipeline -> numbers out.

Runs on its own named thread so a stalled or unplugged microphone never holds up the procedure.
Only `Frame` numbers and fault descriptions leave this module (R1). The household baseline (numbers
only: normal levels and a pitch histogram) is saved now and then so that a restart keeps what the hub has learnt.
"""
from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import numpy as np

from dsp.detector import Baseline
from dsp.pipeline import Frame, SoundPipeline

log = logging.getLogger(__name__)
SAVE_EVERY_S = 600.0


class Source(Protocol):
    rate: int

    def start(self) -> object: ...
    def stop(self) -> None: ...
    def read(self, timeout: float) -> np.ndarray | None: ...


class ArraySource:
    """Samples from memory at `speed` x real time, in 0.1 s blocks: the demo's "microphone"."""

    def __init__(self, samples: np.ndarray, rate: int, speed: float = 1.0, block_s: float = 0.1):
        self.rate, self._x, self._speed = rate, np.asarray(samples, dtype=np.float32), speed
        self._n = max(1, int(rate * block_s))
        self._i = 0
        self._t0: float | None = None

    def start(self) -> ArraySource:
        self._t0 = time.monotonic()
        return self

    def stop(self) -> None:
        self._i = len(self._x)

    @property
    def done(self) -> bool:
        return self._i >= len(self._x)

    def read(self, timeout: float) -> np.ndarray | None:
        if self.done or self._t0 is None:
            time.sleep(min(timeout, 0.05))
            return None
        due = self._t0 + (self._i + self._n) / self.rate / self._speed
        wait = due - time.monotonic()
        if wait > timeout:
            time.sleep(timeout)
            return None
        if wait > 0:
            time.sleep(wait)
        block = self._x[self._i:self._i + self._n]
        self._i += self._n
        return block


def load_baseline(path: Path | None) -> Baseline | None:
    if path is None or not path.exists():
        return None
    try:
        return Baseline.from_dict(json.loads(path.read_text()))
    except (ValueError, KeyError, TypeError) as e:   # a damaged file: start from the defaults
        log.warning("sound baseline %s not usable (%s); starting from the defaults", path, e)
        return None


def save_baseline(path: Path, b: Baseline) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(b.to_dict()))
    os.replace(tmp, path)


class SoundService:
    def __init__(self, source: Source, pipeline: SoundPipeline, on_frame: Callable[[Frame], None],
                 *, baseline_path: Path | None = None):
        self.source, self.pipeline, self.on_frame = source, pipeline, on_frame
        self.baseline_path = baseline_path
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> SoundService:
        self.source.start()
        self._thread = threading.Thread(target=self._run, name="sound", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(5)
        self.source.stop()
        self._save()

    def _run(self) -> None:
        saved = time.monotonic()
        while not self._stop.is_set():
            block = self.source.read(0.5)
            if block is None or not len(block):
                continue
            try:   # the LevelMeter refuses a bad block (NaN) before it touches any state
                frames = self.pipeline.process(block)
            except Exception:
                log.exception("sound pipeline failed on a block; continuing with the next")
                continue
            for f in frames:
                try:
                    self.on_frame(f)
                except Exception:
                    log.exception("sound frame handler failed")
            if time.monotonic() - saved > SAVE_EVERY_S:
                self._save()
                saved = time.monotonic()

    def _save(self) -> None:
        if self.baseline_path is not None:
            try:
                save_baseline(self.baseline_path, self.pipeline.baseline)
            except OSError as e:
                log.warning("sound baseline not saved: %s", e)
