"""Input peers of an RPC (InputPeer*, InputUser*, InputChannel) resolved in the fake world,
with Telegram's checks: the access hash must match, PEER_ID_INVALID / CHANNEL_INVALID."""

from __future__ import annotations

from typing import Any

from telethon.tl import types

from switchboard.sandbox.mtproto.errors import RpcError
from switchboard.sandbox.mtproto.world import FakeGroup, FakeUser, Peer, World


def resolve_input(world: World, viewer: FakeUser, data: Any) -> Peer:
    """The peer an input object names, as `viewer` may address it."""
    if isinstance(data, types.InputPeerSelf | types.InputUserSelf):
        return viewer
    if isinstance(data, types.InputPeerUser | types.InputUser):
        return world.from_wire(
            {"id": data.user_id, "type": "user", "access_hash": data.access_hash}
        )
    if isinstance(data, types.InputPeerChannel | types.InputChannel):
        return world.from_wire(
            {"id": data.channel_id, "type": "channel", "access_hash": data.access_hash}
        )
    if isinstance(data, types.InputPeerChat):
        return world.from_wire({"id": data.chat_id, "type": "chat"})
    if isinstance(data, types.InputPeerEmpty | types.InputUserEmpty | types.InputChannelEmpty):
        raise RpcError("PEER_ID_INVALID")
    raise RpcError("PEER_ID_INVALID")


def resolve_channel(world: World, viewer: FakeUser, data: Any) -> FakeGroup:
    peer = resolve_input(world, viewer, data)
    if not isinstance(peer, FakeGroup) or not peer.is_channel:
        raise RpcError("CHANNEL_INVALID")
    return peer


def resolve_user(world: World, viewer: FakeUser, data: Any) -> FakeUser:
    peer = resolve_input(world, viewer, data)
    if not isinstance(peer, FakeUser):
        raise RpcError("USER_ID_INVALID")
    return peer
