"""One client TCP connection: plain key exchange, then the encrypted session.

Reading: Full packets, decrypted and checked (auth key, salt, session), containers and
gzip unpacked, pings answered, requests dispatched each in its own task so a slow call
does not hold up the others. Writing: one writer task drains the outbox in order and
packs what is waiting into a container; pushed updates come from the world through the
shared connection table (`Connections`), which also enforces one live connection per key.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import struct
import time
from typing import TYPE_CHECKING

from telethon.extensions import BinaryReader
from telethon.tl.core import GzipPacked, MessageContainer
from telethon.tl.functions import (
    DestroySessionRequest,
    PingDelayDisconnectRequest,
    PingRequest,
)
from telethon.tl.tlobject import TLObject, TLRequest
from telethon.tl.types import (
    BadMsgNotification,
    BadServerSalt,
    DestroySessionOk,
    MsgsAck,
    NewSessionCreated,
    Pong,
)

from switchboard.sandbox.mtproto.connections import Connection
from switchboard.sandbox.mtproto.errors import RpcError
from switchboard.sandbox.mtproto.keys import AuthKey
from switchboard.sandbox.mtproto_wire.crypto import (
    CryptoError,
    decrypt_from_client,
    encrypt_to_client,
)
from switchboard.sandbox.mtproto_wire.framing import FramingError, FullCodec, transport_error
from switchboard.sandbox.mtproto_wire.handshake import Handshake, HandshakeError
from switchboard.sandbox.mtproto_wire.messages import (
    Outgoing,
    ServerSequence,
    pack_messages,
    serialize,
)
from switchboard.sandbox.mtproto_wire.rpc import dispatch, error_result

if TYPE_CHECKING:
    from switchboard.sandbox.mtproto_wire.server import WireServer

log = logging.getLogger(__name__)
_SETTLE_TURNS = 20  # loop turns a close the server already received needs to be processed
_BAD_SALT = 48


MSG_TOO_OLD, MSG_TOO_NEW, MSG_ID_NOT_MULTIPLE_OF_4 = 16, 17, 18


def msg_id_error(msg_id: int, now: float) -> int | None:
    """The bad_msg_notification code for a client msg_id, as Telegram checks it: a
    multiple of 4, at most 300 s old and 30 s ahead of the server's clock."""
    if msg_id % 4:
        return MSG_ID_NOT_MULTIPLE_OF_4
    sent = msg_id >> 32
    if sent < now - 300:
        return MSG_TOO_OLD
    if sent > now + 30:
        return MSG_TOO_NEW
    return None


class WireConnection:
    """The server's side of one TCP connection."""

    def __init__(
        self, server: WireServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer
        self.codec = FullCodec()
        self.handshake: Handshake | None = None
        self.key: bytes | None = None
        self.auth: AuthKey | None = None
        self.conn: Connection | None = None
        self.refused: RpcError | None = None  # AUTH_KEY_DUPLICATED when opening was refused
        self.session_id: int | None = None
        self.seq = ServerSequence()
        self.outbox: asyncio.Queue[Outgoing | None] = asyncio.Queue()
        self.pending_acks: list[int] = []  # content messages received, acked with the next write
        self.tasks: set[asyncio.Task[None]] = set()
        self._disconnect_timer: asyncio.TimerHandle | None = None
        self.stalled = asyncio.Event()  # cleared while the fault "stall" holds every answer
        if not server.faults.stalled:
            self.stalled.set()

    # -- lifecycle ----------------------------------------------------------------------

    async def run(self) -> None:
        writer_task = asyncio.create_task(self._write_loop())
        try:
            while True:
                payload = await self.codec.read(self.reader)
                if not await self._on_packet(payload):
                    break
        except (asyncio.IncompleteReadError, ConnectionError, FramingError) as exc:
            log.debug("connection ended: %r", exc)
        except Exception:  # garbage from a client ends its connection, never the server
            log.exception("dropping a connection after an unreadable message")
        finally:
            await self._close(writer_task)

    async def _close(self, writer_task: asyncio.Task[None]) -> None:
        if self._disconnect_timer is not None:
            self._disconnect_timer.cancel()
        if self.conn is not None:
            self.server.provider.conns.close(self.conn, "closed")
        for task in list(self.tasks):
            task.cancel()
        self.outbox.put_nowait(None)
        with contextlib.suppress(Exception):
            await writer_task
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()
        self.server.forget(self)

    def abort(self) -> None:
        """Drop the TCP connection at once (fault injection, shutdown)."""
        self.writer.transport.abort()

    # -- reading ------------------------------------------------------------------------

    async def _on_packet(self, payload: bytes) -> bool:
        if len(payload) < 8:
            return False
        (key_id,) = struct.unpack("<Q", payload[:8])
        if key_id == 0:
            return self._on_plain(payload)
        if self.key is None:
            found = self.server.find_key(key_id)
            if found is None:
                self._send_raw(transport_error(404))  # the client must make a new key
                return True
            self.key, self.auth = found
        try:
            plain = decrypt_from_client(self.key, payload[8:])
        except CryptoError as exc:
            log.info("dropping a message that does not decrypt: %s", exc)
            return True
        salt, session_id, msg_id, seq_no, length = struct.unpack("<qqqii", plain[:32])
        body = plain[32 : 32 + length]
        await self._open()
        if session_id != self.session_id:
            self.session_id = session_id
            self.seq = ServerSequence()
            self._queue(
                bytes(
                    NewSessionCreated(
                        msg_id,
                        int.from_bytes(os.urandom(8), "little", signed=True),
                        self.server.salt,
                    )
                ),
                response=False,
            )
        bad = msg_id_error(msg_id, time.time())
        if bad is not None:  # the client fixes its clock from this message's own msg_id
            self._queue(bytes(BadMsgNotification(msg_id, seq_no, bad)), response=True, alone=True)
            return True
        if salt != self.server.salt:
            self._queue(
                bytes(BadServerSalt(msg_id, seq_no, _BAD_SALT, self.server.salt)),
                response=True,
                alone=True,
            )
            return True
        with BinaryReader(body) as reader:
            obj = reader.tgread_object()
        self._process(msg_id, obj)
        return True

    def _on_plain(self, payload: bytes) -> bool:
        if self.handshake is None:
            self.handshake = Handshake(self.server.key)
        length = struct.unpack("<i", payload[16:20])[0]
        with BinaryReader(payload[20 : 20 + length]) as reader:
            request = reader.tgread_object()
        try:
            answer = self.handshake.answer(request)
        except HandshakeError as exc:
            log.info("key exchange refused: %s", exc)
            return False
        if self.handshake.result is not None:
            self.key, self.auth = self.server.register_key(self.handshake.result)
            self.handshake = None
        body = bytes(answer)
        self._send_raw(struct.pack("<qqi", 0, self.seq.msg_id(True), len(body)) + body)
        return True

    async def _open(self) -> None:
        """Register this connection as the key's live one (or record why it was refused)."""
        if self.conn is not None or self.refused is not None:
            return
        assert self.auth is not None
        conns = self.server.provider.conns
        for _ in range(_SETTLE_TURNS):  # a close already received is not a duplicate
            log_ = conns.logs.get(self.auth.key_id)
            if log_ is None or not log_.active:
                break
            await asyncio.sleep(0)
        try:
            self.conn = conns.open(self.auth, {"transport": "tcp_full"})
        except RpcError as exc:
            self.refused = exc
            return
        self.tasks.add(asyncio.create_task(self._pump_updates(self.conn)))

    def _process(self, msg_id: int, obj: TLObject) -> None:
        if isinstance(obj, MessageContainer):
            for inner in obj.messages:
                self._process(inner.msg_id, inner.obj)
        elif isinstance(obj, GzipPacked):
            with BinaryReader(obj.data) as reader:
                self._process(msg_id, reader.tgread_object())
        elif isinstance(obj, MsgsAck):
            return
        elif isinstance(obj, PingRequest | PingDelayDisconnectRequest):
            if isinstance(obj, PingDelayDisconnectRequest):
                self._arm_disconnect(obj.disconnect_delay)
            self._queue(bytes(Pong(msg_id, obj.ping_id)), response=True)
        elif isinstance(obj, DestroySessionRequest):
            self._queue(bytes(DestroySessionOk(obj.session_id)), response=True)
        elif isinstance(obj, TLRequest):
            self.pending_acks.append(msg_id)
            self._spawn(self._call(msg_id, obj))
        else:
            log.info("ignoring a %s from the client", type(obj).__name__)

    def _arm_disconnect(self, delay: int) -> None:
        """ping_delay_disconnect: close unless another one comes within `delay` seconds,
        which is how a server notices a frozen client whose socket stays open."""
        if self._disconnect_timer is not None:
            self._disconnect_timer.cancel()
        self._disconnect_timer = asyncio.get_running_loop().call_later(max(1, delay), self.abort)

    def _spawn(self, coro: object) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coro)  # type: ignore[arg-type]
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _call(self, msg_id: int, request: TLRequest) -> None:
        if self.refused is not None:
            body = error_result(msg_id, self.refused)
        elif self.conn is None or self.conn.closed:
            error = self.conn.error if self.conn is not None and self.conn.error else None
            body = error_result(msg_id, error or RpcError("AUTH_KEY_UNREGISTERED"))
        else:
            body = await dispatch(self.server, self, msg_id, request)
        await self.stalled.wait()
        self._queue(body, response=True)

    # -- writing ------------------------------------------------------------------------

    def _queue(
        self, body: bytes, *, response: bool, content: bool = True, alone: bool = False
    ) -> None:
        self.outbox.put_nowait(
            Outgoing(body, content_related=content, is_response=response, alone=alone)
        )

    def push(self, body: bytes) -> None:
        """Queue a server-initiated message (an update)."""
        self._queue(body, response=False)

    def _send_raw(self, payload: bytes) -> None:
        self.writer.write(self.codec.encode(payload))

    async def _write_loop(self) -> None:
        while True:
            item = await self.outbox.get()
            if item is None:
                return
            batch = [item]
            while not self.outbox.empty() and len(batch) < 100:
                nxt = self.outbox.get_nowait()
                if nxt is None:
                    self.outbox.put_nowait(None)
                    break
                batch.append(nxt)
            if self.key is None or self.session_id is None:
                continue
            for single in [b for b in batch if b.alone]:
                self._send_encrypted([single])
            batch = [b for b in batch if not b.alone]
            if self.pending_acks:  # acks ride along, so most answers go out in a container
                ack = bytes(MsgsAck(self.pending_acks[:8192]))
                del self.pending_acks[:8192]
                batch.insert(0, Outgoing(ack, content_related=False, is_response=False))
            if batch:
                self._send_encrypted(batch)
            with contextlib.suppress(ConnectionError):
                await self.writer.drain()

    def _send_encrypted(self, batch: list[Outgoing]) -> None:
        assert self.key is not None
        assert self.session_id is not None
        plain = struct.pack("<qq", self.server.salt, self.session_id) + pack_messages(
            self.seq, batch
        )
        self._send_raw(encrypt_to_client(self.key, plain))

    async def _pump_updates(self, conn: Connection) -> None:
        """Turn the world's updates for this connection into pushed TL updates."""
        while True:
            update = await conn.outbox.get()
            if update is None:  # closed by the fake (duplicate, forced drop, revoke)
                await asyncio.sleep(0)  # let answers already queued go out first
                self.abort()
                return
            body = self.server.updates.to_tl(conn, update)
            if body is not None and self.server.faults.take_drop_update():
                continue
            if body is not None:
                self.push(serialize(body))
