"""The port's UpdateState in and out of Telethon: loaded into a session before connect (so
Telethon fetches the difference since then) and read from its message box while running
(so the gateway can store it with the session).

Telethon keeps update state only in its SQLite session; a StringSession forgets it, which
is why the gateway stores it. A channel's pts is useless without its access hash in a new
process (Telethon skips the channel), so both travel together.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from telethon import TelegramClient, types
from telethon.sessions import MemorySession

from switchboard.mtproto.ports import ChannelPts, UpdateState


def load_update_state(session: MemorySession, state: UpdateState) -> None:
    """Put ``state`` where Telethon's ``connect(catch_up=True)`` reads it: the session's
    update states (0 = the account) and the channels' access hashes among its entities."""
    date = datetime.fromtimestamp(state.date, UTC)
    session.set_update_state(
        0, types.updates.State(state.pts, state.qts, date, state.seq, unread_count=0)
    )
    for channel in state.channels:
        session.set_update_state(
            channel.channel_id, types.updates.State(channel.pts, 0, date, 0, unread_count=0)
        )
    peers = [types.InputPeerChannel(c.channel_id, c.access_hash) for c in state.channels]
    session.process_entities(types.contacts.ResolvedPeer(None, peers, []))


def read_update_state(client: TelegramClient) -> UpdateState | None:
    """Where the client's update sequences stand (None before it has any); channels whose
    access hash it does not know are left out (their difference could not be asked for)."""
    box: Any = client._message_box
    if box.is_empty():
        return None
    common, channels = box.session_state()
    cache: Any = client._mb_entity_cache
    known = []
    for channel_id, pts in sorted(channels.items()):
        entity = cache.get(channel_id)
        if entity is not None and entity.hash is not None:
            known.append(ChannelPts(int(channel_id), int(pts), int(entity.hash)))
    date = common["date"]
    return UpdateState(
        pts=int(common["pts"]),
        qts=int(common["qts"]),
        date=int(date.timestamp()) if isinstance(date, datetime) else int(date),
        seq=int(common["seq"]),
        channels=tuple(known),
    )
