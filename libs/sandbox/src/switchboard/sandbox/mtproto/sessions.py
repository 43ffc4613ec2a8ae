"""Auth keys as Telethon `StringSession` strings, encoded exactly as Telethon 1.x does.

`"1" + urlsafe_b64(struct.pack(">B4sH256s", dc_id, ipv4, port, key))`, so the Telethon
adapter loads a session the fake issued and the fake recognises what Telethon exports.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import struct

VERSION = "1"
DC_ID = 2
DC_ADDRESS = "149.154.167.51"  # Telegram's production DC 2
DC_PORT = 443
KEY_SIZE = 256


def encode_session(
    key: bytes, *, dc_id: int = DC_ID, address: str = DC_ADDRESS, port: int = DC_PORT
) -> str:
    """The StringSession string of an auth key."""
    if len(key) != KEY_SIZE:
        raise ValueError(f"an auth key has {KEY_SIZE} bytes")
    ip = ipaddress.ip_address(address).packed
    packed = struct.pack(f">B{len(ip)}sH{KEY_SIZE}s", dc_id, ip, port, key)
    return VERSION + base64.urlsafe_b64encode(packed).decode("ascii")


def decode_session(string: str) -> tuple[int, str, int, bytes]:
    """(dc_id, address, port, key) of a StringSession string (ValueError if malformed)."""
    if not string or string[0] != VERSION:
        raise ValueError("not a StringSession string")
    body = string[1:]
    ip_len = 4 if len(body) == 352 else 16
    try:
        raw = base64.urlsafe_b64decode(body)
        dc_id, ip, port, key = struct.unpack(f">B{ip_len}sH{KEY_SIZE}s", raw)
    except (binascii.Error, struct.error, ValueError) as exc:
        raise ValueError("not a StringSession string") from exc
    return int(dc_id), ipaddress.ip_address(ip).compressed, int(port), bytes(key)


def key_id_of(key: bytes) -> str:
    """A short public name of a key (hex of its SHA-1's first 8 bytes), never the key."""
    return hashlib.sha1(key, usedforsecurity=False).digest()[:8].hex()
