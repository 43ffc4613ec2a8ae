"""MTProto's TCP "Full" transport, the one Telethon uses by default.

Each packet is `length (4, LE, the whole packet) | seq (4, LE) | payload | crc32 (4, LE)`;
each direction numbers its packets from 0. A transport error is a packet whose payload is a
negative little-endian int32 (-404: unknown auth key; -429: too many connections).
"""

from __future__ import annotations

import asyncio
import struct
from zlib import crc32

from switchboard.sandbox.errors import SandboxError

MAX_PACKET = 4 * 1024 * 1024  # far above anything a client sends; bounds a garbage length


class FramingError(SandboxError):
    """A packet that is not valid Full framing (bad length, sequence or checksum)."""


class FullCodec:
    """Reads and writes Full-framed packets of one connection, checking sequence numbers."""

    def __init__(self) -> None:
        self._recv_seq = 0
        self._send_seq = 0

    async def read(self, reader: asyncio.StreamReader) -> bytes:
        """The payload of the next packet (IncompleteReadError when the peer closed)."""
        head = await reader.readexactly(8)
        length, seq = struct.unpack("<ii", head)
        if not 12 <= length <= MAX_PACKET:
            raise FramingError(f"packet length {length} out of range")
        rest = await reader.readexactly(length - 8)
        body, (checksum,) = rest[:-4], struct.unpack("<I", rest[-4:])
        if crc32(head + body) != checksum:
            raise FramingError("packet checksum mismatch")
        if seq != self._recv_seq:
            raise FramingError(f"packet seq {seq}, expected {self._recv_seq}")
        self._recv_seq += 1
        return body

    def encode(self, payload: bytes) -> bytes:
        """One packet carrying `payload`."""
        head = struct.pack("<ii", len(payload) + 12, self._send_seq)
        self._send_seq += 1
        data = head + payload
        return data + struct.pack("<I", crc32(data))


def transport_error(code: int) -> bytes:
    """The payload of a transport error (e.g. 404 for an auth key the server does not know)."""
    return struct.pack("<i", -abs(code))
