"""Which partner's tag sent an advert: tag IDs, iBeacon/Eddystone-UID parsing and resolvable private
addresses (RPA) resolved with an identity resolving key (IRK).

A tag ID has the forms of the household plan (`ble.tag_ids.TAG_ID_RE`): a fixed MAC address,
`ibeacon:UUID:MAJOR:MINOR`, `eddystone:NAMESPACE:INSTANCE` or `irk:HEX`. `Resolver.match()` turns an
advert into a tag key or None; an advert that matches no tag leaves no trace (R4: no record of who
passes by), so the only memory it keeps is a bounded cache of addresses it *resolved* to an IRK.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from ble.tag_ids import TAG_ID_RE
from core.errors import HubError

APPLE = 0x004C
EDDYSTONE_UUID = "0000feaa-0000-1000-8000-00805f9b34fb"
RPA_CACHE_SIZE = 64  # a phone rotates its address every ~15 min: a few per tag is plenty

Kind = Literal["mac", "ibeacon", "eddystone", "irk"]


class TagIdError(HubError, ValueError):
    """A tag ID that is none of the four forms."""


@dataclass(frozen=True)
class TagId:
    kind: Kind
    key: str  # canonical form: upper-case MAC, lower-case hex and UUID

    def __str__(self) -> str:
        return self.key


def parse_tag_id(text: str) -> TagId:
    s = text.strip()
    if not TAG_ID_RE.match(s):
        raise TagIdError(f"tag {text!r} is not a MAC address, ibeacon:UUID:MAJOR:MINOR, "
                         "eddystone:NAMESPACE:INSTANCE or irk:KEY (32 hex digits)")
    if s.startswith("ibeacon:"):
        _, uuid, major, minor = s.split(":")
        if int(major) > 0xFFFF or int(minor) > 0xFFFF:
            raise TagIdError(f"tag {text!r}: iBeacon major and minor are 0..65535")
        return TagId("ibeacon", f"ibeacon:{uuid.lower()}:{int(major)}:{int(minor)}")
    if s.startswith("eddystone:"):
        _, ns, inst = s.split(":")
        return TagId("eddystone", f"eddystone:{ns.lower()}:{inst.lower()}")
    if s.startswith("irk:"):
        return TagId("irk", f"irk:{s[4:].lower()}")
    return TagId("mac", s.upper())


def ibeacon_key(manufacturer_data: Mapping[int, bytes]) -> str | None:
    """Apple iBeacon: 0x02 0x15, 16-byte UUID, major and minor big-endian, measured power."""
    d = manufacturer_data.get(APPLE)
    if d is None or len(d) < 22 or d[0] != 0x02 or d[1] != 0x15:
        return None
    u = d[2:18].hex()
    uuid = f"{u[:8]}-{u[8:12]}-{u[12:16]}-{u[16:20]}-{u[20:]}"
    return f"ibeacon:{uuid}:{int.from_bytes(d[18:20], 'big')}:{int.from_bytes(d[20:22], 'big')}"


def eddystone_uid_key(service_data: Mapping[str, bytes]) -> str | None:
    """Eddystone-UID frame: type 0x00, TX power, 10-byte namespace, 6-byte instance."""
    d = service_data.get(EDDYSTONE_UUID)
    if d is None or len(d) < 18 or d[0] != 0x00:
        return None
    return f"eddystone:{d[2:12].hex()}:{d[12:18].hex()}"


def ah(irk: bytes, prand: bytes) -> bytes:
    """Random address hash, Bluetooth Core Vol 3 Part H 2.2.2: e(k, padding || r) mod 2^24, with
    the key and data most significant octet first."""
    if len(irk) != 16 or len(prand) != 3:
        raise ValueError("ah() takes a 16-byte key and a 3-byte prand")
    enc = Cipher(algorithms.AES(irk), modes.ECB()).encryptor()
    return (enc.update(bytes(13) + prand) + enc.finalize())[-3:]


def is_rpa(address: str) -> bool:
    """A resolvable private address has 0b01 in the two most significant bits."""
    try:
        return (int(address[:2], 16) >> 6) == 0b01 and len(address) == 17
    except ValueError:
        return False


class _IrkCipher:
    """One AES-ECB encryptor per key, reused: ECB is stateless per block, and building a cipher
    costs more than the block itself."""

    def __init__(self, key: str):
        self.key = key
        self._enc = Cipher(algorithms.AES(bytes.fromhex(key[4:])), modes.ECB()).encryptor()

    def resolves(self, addr: bytes) -> bool:
        return self._enc.update(bytes(13) + addr[:3])[-3:] == addr[3:]


class Resolver:
    """Advert -> tag key of one of the household's tags, or None."""

    def __init__(self, tags: list[TagId], cache_size: int = RPA_CACHE_SIZE):
        self._macs = {t.key for t in tags if t.kind == "mac"}
        self._beacons = {t.key for t in tags if t.kind in ("ibeacon", "eddystone")}
        self._irks = [_IrkCipher(t.key) for t in tags if t.kind == "irk"]
        self._cache: OrderedDict[str, str] = OrderedDict()  # resolved RPA -> irk tag key only
        self._cache_size = cache_size
        self.wants_ibeacon = any(t.kind == "ibeacon" for t in tags)
        self.wants_eddystone = any(t.kind == "eddystone" for t in tags)

    def match(self, address: str, manufacturer_data: Mapping[int, bytes] | None = None,
              service_data: Mapping[str, bytes] | None = None) -> str | None:
        address = address.upper()
        if address in self._macs:
            return address
        if self._beacons:
            key = None
            if manufacturer_data and self.wants_ibeacon:
                key = ibeacon_key(manufacturer_data)
            if key is None and service_data and self.wants_eddystone:
                key = eddystone_uid_key(service_data)
            if key is not None and key in self._beacons:
                return key
        if self._irks and is_rpa(address):
            return self._resolve(address)
        return None

    def _resolve(self, address: str) -> str | None:
        hit = self._cache.get(address)
        if hit is not None:
            self._cache.move_to_end(address)
            return hit
        try:
            raw = bytes.fromhex(address.replace(":", ""))
        except ValueError:
            return None
        for c in self._irks:
            if c.resolves(raw):
                self._cache[address] = c.key
                if len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
                return c.key
        return None

    def cached_addresses(self) -> int:
        return len(self._cache)
