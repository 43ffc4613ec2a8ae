"""Server-side MTProto message plumbing: msg ids, seq numbers, the plaintext envelope,
containers and rpc_result, written by hand because Telethon's classes only read them."""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass
from typing import Any

from telethon.tl.tlobject import TLObject

RPC_RESULT = 0xF35C6D01
MSG_CONTAINER = 0x73F1F8DC
VECTOR = 0x1CB5C415
BOOL_TRUE = 0x997275B5
BOOL_FALSE = 0xBC799737


def serialize(value: Any) -> bytes:
    """A method's result as TL bytes: objects, Bool, and Vector of objects or longs."""
    if isinstance(value, bool):
        return struct.pack("<I", BOOL_TRUE if value else BOOL_FALSE)
    if isinstance(value, TLObject):
        return bytes(value)
    if isinstance(value, bytes):
        return value
    if isinstance(value, list):
        head = struct.pack("<Ii", VECTOR, len(value))
        if all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            return head + b"".join(struct.pack("<q", v) for v in value)
        return head + b"".join(serialize(v) for v in value)
    raise TypeError(f"cannot serialize a {type(value).__name__} result")


def rpc_result(req_msg_id: int, body: bytes) -> bytes:
    """rpc_result#f35c6d01 req_msg_id:long result:Object."""
    return struct.pack("<Iq", RPC_RESULT, req_msg_id) + body


@dataclass(frozen=True)
class Outgoing:
    """One message to send: its TL body and whether it is content-related (odd seqno)."""

    body: bytes
    content_related: bool = True
    is_response: bool = True
    # Sent on its own, never in a container: a client with a wrong clock accepts only a
    # top-level bad_msg_notification / bad_server_salt (it drops "too new" containers).
    alone: bool = False


class ServerSequence:
    """Server msg ids (odd, strictly increasing, near the clock) and seq numbers of a session.

    Responses get msg_id = 1 mod 4, other server messages 3 mod 4, as the protocol asks;
    the client only checks that they are odd, increasing and within -300 s/+30 s.
    """

    def __init__(self) -> None:
        self._last = 0
        self._seq = 0

    def msg_id(self, is_response: bool) -> int:
        now = time.time()
        base = (int(now) << 32) | (int((now % 1) * 2**32) & ~3)
        base = max(base, (self._last & ~3) + 4)
        self._last = base | (1 if is_response else 3)
        return self._last

    def seq_no(self, content_related: bool) -> int:
        if not content_related:
            return self._seq * 2
        self._seq += 1
        return self._seq * 2 - 1


def pack_messages(seq: ServerSequence, items: list[Outgoing]) -> bytes:
    """msg_id | seqno | length | body of one message, or of a container holding several."""
    if len(items) == 1:
        item = items[0]
        return (
            struct.pack(
                "<qii",
                seq.msg_id(item.is_response),
                seq.seq_no(item.content_related),
                len(item.body),
            )
            + item.body
        )
    inner = b"".join(
        struct.pack(
            "<qii", seq.msg_id(item.is_response), seq.seq_no(item.content_related), len(item.body)
        )
        + item.body
        for item in items
    )
    body = struct.pack("<Ii", MSG_CONTAINER, len(items)) + inner
    return struct.pack("<qii", seq.msg_id(False), seq.seq_no(False), len(body)) + body
