"""The wire-level MTProto server: an asyncio TCP listener that a stock Telethon client
connects to, serving the fake Telegram's world, keys, logins, flood rules and connection
table (`switchboard.sandbox.mtproto`)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from switchboard.sandbox.mtproto.keys import AuthKey
from switchboard.sandbox.mtproto.sessions import decode_session, encode_session, key_id_of
from switchboard.sandbox.mtproto.world import FakeGroup, FakeUser, Peer
from switchboard.sandbox.mtproto_wire import auth_methods, chat_methods  # noqa: F401 (handlers)
from switchboard.sandbox.mtproto_wire.config import WireConfig
from switchboard.sandbox.mtproto_wire.crypto import ServerKey, auth_key_id
from switchboard.sandbox.mtproto_wire.handshake import NewKey
from switchboard.sandbox.mtproto_wire.srp import SrpChallenge
from switchboard.sandbox.mtproto_wire.updates import UpdateMaker

if TYPE_CHECKING:
    from switchboard.sandbox.mtproto.provider import MtprotoProvider
    from switchboard.sandbox.mtproto_wire.connection import WireConnection


@functools.cache
def server_key() -> ServerKey:
    """One RSA key per process: generating one costs more than a test should pay each time."""
    return ServerKey.generate()


@dataclass
class WireFaults:
    """Faults of the wire itself: `drop_updates` pushed updates lost (a pts gap), `stall`
    answers held back until cleared."""

    drop_updates: int = 0
    stalled: bool = False

    def take_drop_update(self) -> bool:
        if self.drop_updates <= 0:
            return False
        self.drop_updates -= 1
        return True

    def to_json(self) -> dict[str, Any]:
        return {"drop_updates": self.drop_updates, "stall": self.stalled}


class WireServer:
    """The TCP server and the state only the wire needs (key bytes, SRP challenges)."""

    def __init__(self, provider: MtprotoProvider, config: WireConfig | None = None) -> None:
        self.provider = provider
        self.config = config or WireConfig()
        self.key = server_key()
        self.salt = int.from_bytes(os.urandom(8), "little", signed=True)
        self.updates = UpdateMaker(lambda: self.provider.world, self.config.dc_id)
        self.faults = WireFaults()
        self.srp: dict[str, SrpChallenge] = {}
        self.read_marks: dict[tuple[int, int], int] = {}
        self.connections: set[WireConnection] = set()
        self._index: dict[int, tuple[bytes, AuthKey]] = {}
        self._server: asyncio.Server | None = None
        self.host = self.config.host
        self.port = self.config.port

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def dc_id(self) -> int:
        return self.config.dc_id

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        from switchboard.sandbox.mtproto_wire.connection import WireConnection

        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            wire = WireConnection(self, reader, writer)
            self.connections.add(wire)
            await wire.run()

        self._server = await asyncio.start_server(accept, self.config.host, self.config.port)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        self.drop_all()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(5):
                await self._server.wait_closed()
        self._server = None

    def forget(self, wire: WireConnection) -> None:
        self.connections.discard(wire)

    def drop_all(self) -> int:
        """Abort every TCP connection (a network failure); how many."""
        wires = list(self.connections)
        for wire in wires:
            wire.abort()
        return len(wires)

    def reset(self) -> None:
        self.drop_all()
        self._index.clear()
        self.srp.clear()
        self.read_marks.clear()
        self.faults = WireFaults()
        self.set_stall(False)

    def set_stall(self, stalled: bool) -> None:
        self.faults.stalled = stalled
        for wire in self.connections:
            if stalled:
                wire.stalled.clear()
            else:
                wire.stalled.set()

    def descriptor(self, seen_as: str | None = None) -> dict[str, Any]:
        """What a client needs to connect: address, DC and the RSA key to trust.

        A server bound to every interface advertises the host the client reached the
        sandbox by (`seen_as`), which is what it can reach this server by too."""
        host = self.host
        if host in ("0.0.0.0", "::", "") and seen_as:
            host = seen_as
        return {
            "host": host,
            "port": self.port,
            "dc_id": self.dc_id,
            "rsa_public_key": self.key.public_pem(),
            "fingerprint": self.key.fingerprint,
        }

    # -- auth keys ----------------------------------------------------------------------

    def session_string(self, raw: bytes) -> str:
        """A StringSession for `raw` that points at this server."""
        return encode_session(raw, dc_id=self.dc_id, address=self.host, port=self.port)

    def issue_session(self, user: FakeUser) -> dict[str, str]:
        """A new signed-in key of `user` as a StringSession pointing at this server (what a
        test that skips the login hands to Telethon)."""
        auth = self.provider.new_session(user)
        raw = decode_session(auth.session)[3]
        return {"session": self.session_string(raw), "key_id": auth.key_id}

    def register_key(self, new: NewKey) -> tuple[bytes, AuthKey]:
        """Record a key from a key exchange (both byte forms of it, see `NewKey`)."""
        keys = self.provider.keys
        auth = AuthKey(
            key_id=key_id_of(new.full_key),
            session=self.session_string(new.full_key),
            created_at=self.provider.core.clock.time(),
        )
        keys.keys[auth.key_id] = auth
        self._index[auth_key_id(new.key)] = (new.key, auth)
        self._index[auth_key_id(new.full_key)] = (new.full_key, auth)
        return new.key, auth

    def find_key(self, wire_id: int) -> tuple[bytes, AuthKey] | None:
        """The key with this wire id, including keys the control API issued as sessions."""
        ring = self.provider.keys.keys
        found = self._index.get(wire_id)
        if found is None:  # maybe a session the control API issued since
            known = {id(auth) for _, auth in self._index.values()}
            for auth in ring.values():
                if id(auth) in known:
                    continue
                try:
                    raw = decode_session(auth.session)[3]
                except ValueError:
                    continue
                self._index[auth_key_id(raw)] = (raw, auth)
            found = self._index.get(wire_id)
        # A reset forgets every key: one the ring no longer holds is unknown.
        return found if found is not None and ring.get(found[1].key_id) is found[1] else None

    # -- read receipts ------------------------------------------------------------------

    def _notify_wire(self, user_id: int, update: dict[str, Any]) -> None:
        """Push to the user's connections (read receipts are not in the world's updates)."""
        for conn in list(self.provider.conns.live.values()):
            if conn.key.user_id == user_id:
                conn.outbox.put_nowait(update)

    def mark_read(self, reader: FakeUser, peer: Peer, max_id: int) -> None:
        """Record that `reader` read `peer` up to `max_id`; tell the senders it read."""
        world = self.provider.world
        mark = (reader.id, peer.id)
        before = self.read_marks.get(mark, 0)
        if max_id <= before:
            return
        self.read_marks[mark] = max_id
        box, key = world.box_of(reader, peer)
        ids = [i for i in box.by_peer.get(key, []) if before < i <= max_id]
        if isinstance(peer, FakeUser):
            latest = 0
            for message_id in ids:
                post = box.entries[message_id][1]
                if post.sender_id == peer.id and post.uid in peer.box.local_id:
                    latest = max(latest, peer.box.local_id[post.uid])
            if latest and peer.id != reader.id:
                pts = peer.box.record("read", latest, ("user", reader.id))
                update = {"kind": "read_outbox", "reader": reader.id, "max_id": latest}
                self._notify_wire(peer.id, {**update, "pts": pts, "pts_count": 1})
        elif isinstance(peer, FakeGroup) and peer.type == "megagroup":
            senders = {box.entries[i][1].sender_id for i in ids} - {reader.id, None}
            for sender in senders:
                assert sender is not None
                update = {"kind": "read_channel_outbox", "channel": peer.id, "max_id": max_id}
                self._notify_wire(sender, update)
