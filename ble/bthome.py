"""BTHome v2 door/window sensors (e.g. Shelly BLU Door/Window) heard by the hub's scanner.

Decoding and AES-CCM decryption are bthome-ble's (Home Assistant's own parser). On top of it the
hub accepts an advert only when it is what the household's own sensor can send:
- encrypted (a sensor with a bind key never sends plain text: a plain advert is forged, or the
  sensor was reset);
- decrypted with the installer's bind key (the 4-byte tag is checked: a neighbour without the key
  cannot make one);
- newer than the last one accepted: its encryption counter, which is part of the nonce and so
  cannot be changed without the key, must be higher. A recorded advert played again (same or older
  counter, so also the same or an older packet id) is refused.
Every refusal has a one-sentence reason; the sensor's address is never in it (the door id is).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

from bleak.backends.device import BLEDevice

BTHOME_UUID = "0000fcd2-0000-1000-8000-00805f9b34fb"
# binary objects a door/window sensor may use for "open" (BTHome object ids 0x11, 0x1A, 0x2D)
OPEN_KEYS = ("door", "window", "opening")
_ADV_INFO, _TAIL = 1, 8  # the adv-info byte; counter (4) + MIC (4) at the end of an encrypted frame

# the library logs every refusal itself, with part of the address; the hub logs its own reasons
logging.getLogger("bthome_ble").setLevel(logging.ERROR)

Refused = Literal["malformed", "unencrypted", "bad_key", "replay", "repeat"]


@dataclass(frozen=True)
class Reading:
    open: bool | None       # None: this advert carried no open/closed object (battery only)
    battery: int | None     # percent
    counter: int


@dataclass(frozen=True)
class Refusal:
    kind: Refused
    reason: str


def bind_key(text: str) -> bytes:
    """The bind key as the sensor's app shows it: 32 hex digits. ValueError with one sentence."""
    t = text.strip().lower()
    if len(t) != 32 or any(c not in "0123456789abcdef" for c in t):
        raise ValueError("must be the sensor's bind key: 32 hex digits (0-9, a-f)")
    return bytes.fromhex(t)


class BTHomeDoor:
    """One configured sensor: its address, its bind key, and the last counter accepted (in memory:
    after a hub restart the first fresh advert is accepted, then the counter guards again)."""

    def __init__(self, door_id: str, address: str, key: bytes):
        # imported here: a hub without door sensors runs without bthome-ble and its dependencies
        from bthome_ble import BTHomeBluetoothDeviceData
        from habluetooth import BluetoothServiceInfoBleak
        self._info = BluetoothServiceInfoBleak
        self.door_id = door_id
        self.address = address.upper()
        self._parser = BTHomeBluetoothDeviceData(bindkey=key)
        self.last_counter: int | None = None
        self._last_raw: bytes | None = None

    def decode(self, t: float, rssi: int, service_data: dict[str, bytes]) -> Reading | Refusal | None:
        """None when the advert carries no BTHome data (the sensor's other frames)."""
        raw = service_data.get(BTHOME_UUID)
        if raw is None:
            return None
        raw = bytes(raw)
        if not raw or (raw[0] >> 5) & 7 != 2:
            return Refusal("malformed", f"door {self.door_id}: not a BTHome v2 advert; ignored")
        if not raw[0] & 1:
            return Refusal("unencrypted", f"door {self.door_id}: an unencrypted advert (the sensor "
                           "has a bind key, so it is forged or the sensor was reset); ignored")
        if len(raw) < _ADV_INFO + 2 + _TAIL:
            return Refusal("malformed", f"door {self.door_id}: a truncated BTHome advert; ignored")
        counter = int.from_bytes(raw[-_TAIL:-4], "little")
        if self.last_counter is not None and counter <= self.last_counter:
            if raw == self._last_raw:   # sensors send each advert several times: not an attack
                return Refusal("repeat", f"door {self.door_id}: the same advert again")
            return Refusal("replay", f"door {self.door_id}: counter {counter} is not newer than "
                           f"{self.last_counter} (a replayed or old advert); ignored")
        try:
            update = self._parser.update(self._info(
                name="", address=self.address, rssi=rssi, manufacturer_data={},
                service_data={BTHOME_UUID: raw}, service_uuids=[BTHOME_UUID], source="hub",
                device=BLEDevice(self.address, "", None), advertisement=None, connectable=False,
                time=t, tx_power=None))
        except Exception as e:   # a garbled frame must never reach the presence thread
            return Refusal("malformed", f"door {self.door_id}: undecodable advert ({type(e).__name__})")
        if not self._parser.bindkey_verified or self._parser.encryption_counter != counter:
            return Refusal("bad_key", f"door {self.door_id}: the advert does not decrypt with the "
                           "configured bind key (wrong key, or not this sensor); ignored")
        self.last_counter, self._last_raw = counter, raw
        is_open = next((v.native_value for k, v in update.binary_entity_values.items()
                        if k.key in OPEN_KEYS), None)
        battery = next((v.native_value for k, v in update.entity_values.items() if k.key == "battery"),
                       None)
        return Reading(None if is_open is None else bool(is_open),
                       None if battery is None else int(battery), counter)
