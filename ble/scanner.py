"""The BLE scanner: bleak's `BleakScanner` on an asyncio loop in its own thread, kept alive by a
supervisor.

- The detection callback only appends (address, rssi, time, manufacturer data, service data) to a
  bounded deque; everything else happens on the service's tick, so the radio path never blocks.
- Passive scanning (BlueZ advertisement monitor with or-patterns) where BlueZ supports it, else
  active. Duplicate adverts are delivered (bleak sets DuplicateData off for active scans).
- Any failure to start (BleakError: InProgress, NotReady, adapter not found; D-Bus gone when BlueZ
  restarts) -> `("scanner", False, reason)` event, rebuild with exponential backoff.
- No advert at all for `stall_after` seconds -> the scan is stopped and started again (BlueZ is
  known to stall after days of scanning), with a `("stall",)` event.
Events go into the same deque as adverts, so the consumer sees them in order.
"""
from __future__ import annotations

import asyncio
import logging
import re
import threading
from collections import deque
from typing import Any

from bleak import BleakScanner
from bleak.args.bluez import BlueZScannerArgs, OrPattern
from bleak.assigned_numbers import AdvertisementDataType

from ble.identity import Resolver
from ble.presence import PresenceConfig
from core.clock import Clock

log = logging.getLogger(__name__)

QUEUE_MAX = 20_000   # ~10 s of a very busy street; the oldest adverts are dropped first
BACKOFF_MIN, BACKOFF_MAX = 1.0, 60.0
_PRIVATE = re.compile(r"(?:[0-9A-Fa-f]{2}[:_]){5}[0-9A-Fa-f]{2}")


def safe_reason(error: BaseException) -> str:
    """An error as one line for the installer, without any device address in it."""
    text = _PRIVATE.sub("<address>", f"{type(error).__name__}: {error}".replace("\n", " "))
    return text[:120]


def or_patterns(resolver: Resolver, bthome: bool = False) -> list[OrPattern]:
    """What the passive monitor lets through: any advert with the common LE flags (fixed-MAC tags
    and phones), plus iBeacon and Eddystone frames, which often carry no flags, and with door
    sensors configured BTHome's service data (UUID 0xFCD2), which need not carry flags either."""
    pats = [OrPattern(0, AdvertisementDataType.FLAGS, bytes([f])) for f in (0x02, 0x06, 0x1A)]
    if resolver.wants_ibeacon:
        pats.append(OrPattern(0, AdvertisementDataType.MANUFACTURER_SPECIFIC_DATA, b"\x4c\x00\x02\x15"))
    if resolver.wants_eddystone:
        pats.append(OrPattern(0, AdvertisementDataType.SERVICE_DATA_UUID16, b"\xaa\xfe"))
    if bthome:
        pats.append(OrPattern(0, AdvertisementDataType.SERVICE_DATA_UUID16, b"\xd2\xfc"))
    return pats


class Scanner:
    def __init__(self, clock: Clock, stop: threading.Event, patterns: list[OrPattern],
                 backend: type | None = None, backend_kwargs: dict | None = None,
                 stall_after: float = PresenceConfig.stall_after, queue_max: int = QUEUE_MAX):
        self.clock = clock
        self.queue: deque[tuple] = deque(maxlen=queue_max)
        self._stop = stop
        self._patterns = patterns
        self._backend = backend
        self._backend_kwargs = backend_kwargs or {}
        self._stall_after = stall_after
        self._mode = "passive"
        self.last_advert = 0.0
        self._thread: threading.Thread | None = None
        self.restarts = 0
        self.failures = 0

    # the radio path: O(1), no decisions -----------------------------------------------------
    def _on_advert(self, device: Any, adv: Any) -> None:
        t = self.clock.monotonic()
        self.last_advert = t
        self.queue.append((device.address, adv.rssi, t, adv.manufacturer_data, adv.service_data))

    # lifecycle ------------------------------------------------------------------------------
    def start(self) -> Scanner:
        self._thread = threading.Thread(target=self._thread_main, name="ble-scanner", daemon=True)
        self._thread.start()
        return self

    def join(self, timeout: float = 5.0) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _thread_main(self) -> None:
        try:
            asyncio.run(self._supervise())
        except Exception:  # the supervisor catches everything it expects; this is a last resort
            log.exception("BLE scanner thread ended")

    def _event(self, *ev: Any) -> None:
        self.queue.append(ev)

    async def _sleep(self, seconds: float) -> None:
        """Sleep on the injected clock (the demo runs it faster), waking for stop."""
        end = self.clock.monotonic() + seconds
        while not self._stop.is_set() and self.clock.monotonic() < end:
            await asyncio.sleep(0.01)

    def _build(self) -> BleakScanner:
        kw: dict[str, Any] = dict(self._backend_kwargs)
        if self._backend is not None:
            kw["backend"] = self._backend
        if self._mode == "passive":
            return BleakScanner(self._on_advert, None, "passive",
                                bluez=BlueZScannerArgs(or_patterns=self._patterns), **kw)
        return BleakScanner(self._on_advert, None, "active", **kw)

    async def _supervise(self) -> None:
        backoff = BACKOFF_MIN
        while not self._stop.is_set():
            try:
                scanner = self._build()
                await scanner.start()
            except Exception as e:  # BleakError, D-Bus errors, OSError when BlueZ is gone
                if self._mode == "passive" and "passive" in str(e).lower():
                    log.info("passive scanning unavailable (%s); scanning actively", safe_reason(e))
                    self._mode = "active"
                    continue
                self.failures += 1
                reason = safe_reason(e)
                log.warning("BLE scanner did not start (%s); retrying in %.0f s", reason, backoff)
                self._event("scanner", False, reason, self.clock.monotonic())
                await self._sleep(backoff)
                backoff = min(BACKOFF_MAX, backoff * 2)
                continue
            log.info("BLE scanner running (%s)", self._mode)
            self._event("scanner", True, self._mode, self.clock.monotonic())
            self.last_advert = started = self.clock.monotonic()
            try:
                while not self._stop.is_set():
                    await self._sleep(1.0)
                    if self.last_advert > started:
                        backoff = BACKOFF_MIN  # adverts flow: the adapter is healthy again
                    backend = getattr(scanner, "_backend", None)
                    if backend is not None and hasattr(backend, "seen_devices"):
                        backend.seen_devices.clear()  # bleak's own table of passers-by (R4)
                    if self.clock.monotonic() - self.last_advert >= self._stall_after:
                        self.restarts += 1
                        log.warning("no BLE advert for %.0f s; restarting the scan", self._stall_after)
                        self._event("stall", self.clock.monotonic())
                        break
            finally:
                try:
                    await scanner.stop()
                except Exception as e:
                    log.info("BLE scanner stop failed (%s)", safe_reason(e))
