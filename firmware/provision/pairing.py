"""Tag pairing, "hold the tag against the hub": listen a few seconds and offer the strongest
advertiser that is not known yet. Only that one address leaves this module; every other
advertiser heard (the neighbours' phones, passers-by) is dropped with the scan (R4)."""
from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Any

HELD_RSSI_DBM = -60      # a tag held against the hub is far stronger than anything in the room
IRK_RE = re.compile(r"^irk:[0-9A-Fa-f]{32}$")


def strongest_unknown(heard: dict[str, int], known: set[str],
                      min_rssi: int = HELD_RSSI_DBM) -> tuple[str, int] | None:
    """The loudest address not in `known` and at least `min_rssi`, or None."""
    fresh = [(rssi, addr) for addr, rssi in heard.items()
             if addr.upper() not in known and rssi >= min_rssi]
    if not fresh:
        return None
    rssi, addr = max(fresh)
    return addr, rssi


def listen(seconds: float, backend: type | None = None, backend_kwargs: dict[str, Any] | None = None,
           tick: Callable[[float], None] | None = None) -> dict[str, int]:
    """Each address heard in `seconds` with its strongest RSSI. `backend` is bleak's scanner
    backend seam (the replayed trace in tests, BlueZ on the hub)."""
    from bleak import BleakScanner
    heard: dict[str, int] = {}

    def on_advert(device: Any, adv: Any) -> None:
        addr = device.address.upper()
        heard[addr] = max(adv.rssi, heard.get(addr, -200))

    async def run() -> None:
        kw: dict[str, Any] = dict(backend_kwargs or {})
        if backend is not None:
            kw["backend"] = backend
        async with BleakScanner(on_advert, None, "active", **kw):
            step, waited = 0.25, 0.0
            while waited < seconds:
                await asyncio.sleep(step)
                waited += step
                if tick:
                    tick(min(waited, seconds))
    asyncio.run(run())
    return heard
