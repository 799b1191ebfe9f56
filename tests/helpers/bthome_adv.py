"""BTHome v2 adverts as a door sensor sends them, built from the spec (bthome.io, "Encryption"):
AES-CCM with the 16-byte bind key, a 4-byte tag (MIC), nonce = MAC (6) + UUID 0xFCD2 (2, little
endian) + the adv-info byte + the counter (4, little endian); the frame is adv-info, the ciphertext
of the objects, the counter, the MIC. Objects: 0x00 packet id, 0x01 battery %, 0x2D window
(Shelly BLU Door/Window: 1 = open)."""
from __future__ import annotations

from cryptography.hazmat.primitives.ciphers.aead import AESCCM

UUID = "0000fcd2-0000-1000-8000-00805f9b34fb"
ENCRYPTED_V2, PLAIN_V2 = 0x41, 0x40


def objects(packet_id: int, *, open: bool | None = None, battery: int | None = None) -> bytes:
    out = bytes([0x00, packet_id & 0xFF])
    if battery is not None:
        out += bytes([0x01, battery])
    if open is not None:
        out += bytes([0x2D, 1 if open else 0])
    return out


def encrypted(mac: str, key: bytes, counter: int, data: bytes) -> dict[str, bytes]:
    c = counter.to_bytes(4, "little")
    nonce = bytes.fromhex(mac.replace(":", "")) + b"\xd2\xfc" + bytes([ENCRYPTED_V2]) + c
    sealed = AESCCM(key, tag_length=4).encrypt(nonce, data, None)
    return {UUID: bytes([ENCRYPTED_V2]) + sealed[:-4] + c + sealed[-4:]}


def plain(data: bytes) -> dict[str, bytes]:
    return {UUID: bytes([PLAIN_V2]) + data}
