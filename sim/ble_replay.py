"""A bleak scanner backend that replays a trace: `BleakScanner(cb, backend=ReplayScanner,
source=ReplaySource(trace, clock))`. It hands bleak's own `BLEDevice`/`AdvertisementData` to the
callbacks at the trace's times on the injected clock, so the demo and the tests run the real
`BleakScanner` and our scanner code unchanged, at any clock speed.

The source outlives scanner instances (the supervisor rebuilds the scanner after a failure) and can
play the adapter's failures: `fail_starts(n, error)` (start raises), `stall()` (delivery stops until
the scan is restarted, like BlueZ's long-run stalls), `remove_adapter()`/`restore_adapter()`, and
`passive=False` (a BlueZ without advertisement monitors refuses passive scans, with bleak's error).
Like bleak's own backends, the replay backend keeps what it heard in `seen_devices`, so the
scanner's clearing of that table (R4) is exercised too.
"""
from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable, Iterator
from typing import Any

from bleak.backends.scanner import AdvertisementData, BaseBleakScanner
from bleak.exc import BleakError

from core.clock import Clock

POLL_S = 0.005  # real seconds between looks at the clock


class ReplaySource:
    """Adverts (t, address, rssi, manufacturer_data, service_data), t in seconds from `origin` on
    `clock.monotonic()` (default: when the source is made)."""

    def __init__(self, adverts: Iterable[tuple], clock: Clock, origin: float | None = None,
                 passive: bool = True):
        self.clock = clock
        self.passive = passive
        self.origin = clock.monotonic() if origin is None else origin
        self._adverts: Iterator[tuple] = iter(adverts)
        self._next: tuple | None = None
        self._lock = threading.Lock()
        self._fail_starts: list[BaseException] = []
        self._stalled = False
        self._adapter = True
        self.starts = 0
        self.mode: str | None = None  # scanning mode of the last scan that started
        self.delivered = 0
        self.exhausted = False

    # failures -------------------------------------------------------------------------------
    def fail_starts(self, n: int, error: BaseException | None = None) -> None:
        with self._lock:
            self._fail_starts += [error or BleakError("org.bluez.Error.NotReady: Resource Not Ready")] * n

    def stall(self) -> None:
        with self._lock:
            self._stalled = True

    def remove_adapter(self) -> None:
        with self._lock:
            self._adapter = False

    def restore_adapter(self) -> None:
        with self._lock:
            self._adapter = True

    # used by the backend --------------------------------------------------------------------
    def _on_start(self, mode: str) -> None:
        with self._lock:
            self.starts += 1
            if not self._adapter:
                raise BleakError("adapter 'hci0' not found")
            if self._fail_starts:
                raise self._fail_starts.pop(0)
            if mode == "passive" and not self.passive:  # bleak's message for this BlueZ
                raise BleakError("passive scanning on Linux requires BlueZ >= 5.56 with "
                                 "--experimental enabled and Linux kernel >= 5.10")
            self._stalled = False
            self.mode = mode

    def due(self) -> list[tuple]:
        """Adverts whose time has come; those that fell in a stall or outage are lost, as on air."""
        now = self.clock.monotonic() - self.origin
        out = []
        with self._lock:
            live = self._adapter and not self._stalled
            while True:
                if self._next is None:
                    self._next = next(self._adverts, None)
                    if self._next is None:
                        self.exhausted = True
                        break
                if self._next[0] > now:
                    break
                if live:
                    out.append(self._next)
                self._next = None
            self.delivered += len(out)
        return out


class ReplayScanner(BaseBleakScanner):
    """bleak backend fed by a `ReplaySource` (keyword `source=`)."""

    def __init__(self, detection_callback, service_uuids: list[str] | None = None,
                 scanning_mode: str = "active", *, source: ReplaySource, bluez: Any = None,
                 cb: Any = None, **kwargs: Any):
        super().__init__(detection_callback, service_uuids)
        self.source = source
        self.scanning_mode = scanning_mode
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        self.source._on_start(self.scanning_mode)
        self.seen_devices = {}
        self._task = asyncio.get_running_loop().create_task(self._run(), name="ble-replay")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

    async def _run(self) -> None:
        while True:
            for _t, address, rssi, mfr, svc in self.source.due():
                adv = AdvertisementData(local_name=None, manufacturer_data=dict(mfr or {}),
                                        service_data=dict(svc or {}), service_uuids=[],
                                        tx_power=None, rssi=int(rssi), platform_data=())
                device = self.create_or_update_device(address, address, None, None, adv)
                self.call_detection_callbacks(device, adv)
            await asyncio.sleep(POLL_S)
