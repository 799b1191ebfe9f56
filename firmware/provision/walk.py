"""Step 7, the walk test: each paired tag is carried to the farthest room and to the exit door
while the hub listens for that one tag. It passes when the tag's typical level (the median of its
adverts) stays the presence engine's margin above its floor, so the hub will not think a partner
left while they are home. Only the tag's own levels are kept, and only until the result (R4)."""
from __future__ import annotations

import asyncio
import statistics
from dataclasses import dataclass
from typing import Any

from ble.presence import PresenceConfig

PLACES = ("room", "door")


@dataclass(frozen=True)
class WalkResult:
    partner: str
    place: str
    adverts: int
    median_dbm: float | None
    margin_db: float | None     # over the presence floor; None: not heard

    def passed(self, cfg: PresenceConfig) -> bool:
        return self.margin_db is not None and self.margin_db >= cfg.margin


def tag_levels(address: str, seconds: float, backend: type | None = None,
               backend_kwargs: dict[str, Any] | None = None) -> list[int]:
    """The RSSIs of `address` heard in `seconds`; every other advertiser is ignored as it arrives."""
    from bleak import BleakScanner
    want, levels = address.upper(), []

    def on_advert(device: Any, adv: Any) -> None:
        if device.address.upper() == want:
            levels.append(adv.rssi)

    async def run() -> None:
        kw: dict[str, Any] = dict(backend_kwargs or {})
        if backend is not None:
            kw["backend"] = backend
        async with BleakScanner(on_advert, None, "active", **kw):
            await asyncio.sleep(seconds)
    asyncio.run(run())
    return levels


def judge(partner: str, place: str, levels: list[int], cfg: PresenceConfig) -> WalkResult:
    if not levels:
        return WalkResult(partner, place, 0, None, None)
    median = float(statistics.median(levels))
    return WalkResult(partner, place, len(levels), median, median - cfg.floor_dbm)
