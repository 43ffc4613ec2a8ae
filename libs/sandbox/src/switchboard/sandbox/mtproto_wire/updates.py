"""Updates as Telegram sends them: pushed `updates` for the world's changes, and the
differences (updates.getDifference / getChannelDifference) a client asks for after a gap.

Every change of a box (a channel's, or an account's common box) has a pts; a pushed update
carries (pts, pts_count), so a client that sees a jump knows it missed something and asks
for the difference, which replays the box's changes after its pts.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from telethon.tl import types

from switchboard.sandbox.mtproto.connections import Connection
from switchboard.sandbox.mtproto.world import Box, FakeGroup, FakeUser, PeerKey, World
from switchboard.sandbox.mtproto_wire.convert import Entities, group_tl, message_tl, when

MAX_DIFFERENCE = 1000  # changes per difference; more is `final=False`, ask again


def _is_channel(peer: dict[str, Any]) -> bool:
    return peer["type"] in ("channel", "megagroup")


class UpdateMaker:
    """Turns the world's update dicts and box histories into TL for one viewer."""

    def __init__(self, world: Callable[[], World], dc_id: int) -> None:
        self._world = world
        self.dc_id = dc_id  # where the media of rendered messages lives

    @property
    def world(self) -> World:
        return self._world()  # the provider rebuilds its world on reset

    def viewer_of(self, conn: Connection) -> FakeUser | None:
        user_id = conn.key.user_id
        return None if user_id is None else self.world.users.get(user_id)

    def to_tl(self, conn: Connection, update: dict[str, Any]) -> types.Updates | None:
        """The pushed `updates` for one world update dict (None if it means nothing here)."""
        viewer = self.viewer_of(conn)
        if viewer is None:
            return None
        entities = Entities(self.world, viewer, self.dc_id)
        kind = update["kind"]
        pts, count = int(update.get("pts", 0)), int(update.get("pts_count", 1))
        item: Any
        if kind in ("new", "edited"):
            message = update["message"]
            entities.add_message(message)
            tl = message_tl(message, self.dc_id)
            channel = _is_channel(message["peer"])
            if kind == "new":
                item = (types.UpdateNewChannelMessage if channel else types.UpdateNewMessage)(
                    tl, pts, count
                )
            else:
                item = (types.UpdateEditChannelMessage if channel else types.UpdateEditMessage)(
                    tl, pts, count
                )
        elif kind == "deleted":
            ids = [int(i) for i in update["ids"]]
            peer = update.get("peer")
            if peer is not None:
                group = self.world.groups[int(peer["id"])]
                entities.add(group)
                item = types.UpdateDeleteChannelMessages(group.id, ids, pts, count)
            else:
                item = types.UpdateDeleteMessages(ids, pts, count)
        elif kind == "read_outbox":
            item = types.UpdateReadHistoryOutbox(
                types.PeerUser(int(update["reader"])), int(update["max_id"]), pts, count
            )
        elif kind == "read_channel_outbox":
            group = self.world.groups[int(update["channel"])]
            entities.add(group)
            item = types.UpdateReadChannelOutbox(group.id, int(update["max_id"]))
        else:
            return None
        return entities.updates([item])

    def replay(
        self, viewer: FakeUser, box: Box, pts: int, channel: FakeGroup | None
    ) -> tuple[list[types.Message], list[Any], Entities, int]:
        """(new messages, other updates, entities, pts reached) of the changes after `pts`."""
        entities = Entities(self.world, viewer, self.dc_id)
        if channel is not None:
            entities.add(channel)
        events = box.since(pts)[:MAX_DIFFERENCE]
        reached = events[-1].pts if events else max(pts, 0)
        new_ids: list[int] = []
        edited: list[int] = []
        deleted: dict[PeerKey, list[int]] = {}
        for event in events:
            if event.kind == "new":
                new_ids.append(event.message_id)
            elif event.kind == "edited" and event.message_id not in new_ids:
                edited.append(event.message_id)
            elif event.kind == "deleted":
                if event.message_id in new_ids:
                    new_ids.remove(event.message_id)
                else:
                    deleted.setdefault(event.key, []).append(event.message_id)
        rendered = [self.world.render(viewer, box, i) for i in new_ids]
        messages = entities.messages(m for m in rendered if m is not None)
        other: list[Any] = []
        for message_id in edited:
            found = self.world.render(viewer, box, message_id)
            if found is None:
                continue
            tl = entities.messages([found])[0]
            other.append(
                types.UpdateEditChannelMessage(tl, reached, 0)
                if channel is not None
                else types.UpdateEditMessage(tl, reached, 0)
            )
        for ids in deleted.values():
            other.append(
                types.UpdateDeleteChannelMessages(channel.id, ids, reached, 0)
                if channel is not None
                else types.UpdateDeleteMessages(ids, reached, 0)
            )
        return messages, other, entities, reached

    def channel_difference(self, viewer: FakeUser, channel: FakeGroup, pts: int) -> Any:
        box = channel.box
        if pts >= box.pts:
            return types.updates.ChannelDifferenceEmpty(pts=box.pts, final=True)
        messages, other, entities, reached = self.replay(viewer, box, pts, channel)
        return types.updates.ChannelDifference(
            pts=reached,
            new_messages=messages,
            other_updates=other,
            chats=entities.chats or [group_tl(channel, viewer)],
            users=entities.users,
            final=reached >= box.pts,
        )

    def difference(self, viewer: FakeUser, pts: int) -> Any:
        box = viewer.box
        now = when(time.time())
        if pts >= box.pts:
            return types.updates.DifferenceEmpty(date=now, seq=0)
        messages, other, entities, reached = self.replay(viewer, box, pts, None)
        state = types.updates.State(pts=reached, qts=0, date=now, seq=0, unread_count=0)
        found = {
            "new_messages": messages,
            "new_encrypted_messages": [],
            "other_updates": other,
            "chats": entities.chats,
            "users": entities.users,
        }
        if reached < box.pts:  # more to come: the client asks again from ``state``
            return types.updates.DifferenceSlice(**found, intermediate_state=state)
        return types.updates.Difference(**found, state=state)
