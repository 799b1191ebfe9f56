"""The forms of a tag ID, shared by the household plan and the BLE engine (no dependencies, so the
plan can check tags without importing the radio stack): a fixed MAC address,
`ibeacon:UUID:MAJOR:MINOR`, `eddystone:NAMESPACE:INSTANCE` or `irk:HEX`."""
from __future__ import annotations

import re

_MAC = r"(?:[0-9A-Fa-f]{2}:){5}[0-9A-Fa-f]{2}"
_UUID = r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}"
TAG_ID_RE = re.compile(
    rf"^(?:{_MAC}|ibeacon:{_UUID}:\d{{1,5}}:\d{{1,5}}|eddystone:[0-9A-Fa-f]{{20}}:[0-9A-Fa-f]{{12}}"
    r"|irk:[0-9A-Fa-f]{32})$")
