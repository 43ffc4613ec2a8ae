"""Peers, history, sending and reading: contacts.*, messages.*, channels.*, upload and the
update differences."""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable
from typing import Any, TypeVar

from telethon.tl import functions, types

from switchboard.sandbox.mtproto.errors import RpcError
from switchboard.sandbox.mtproto.methods import MAX_HISTORY, parse_ref
from switchboard.sandbox.mtproto.world import FakeGroup, FakeUser, Peer, World
from switchboard.sandbox.mtproto_wire.convert import (
    Entities,
    entities_of_tl,
    group_tl,
    peer_tl,
    user_tl,
    when,
)
from switchboard.sandbox.mtproto_wire.peers import resolve_channel, resolve_input
from switchboard.sandbox.mtproto_wire.rpc import WireCall, handles

MAX_SEARCH = 100
P = TypeVar("P", Peer, FakeGroup)  # any peer, or a channel (resolve_channel)


def _readable(
    call: WireCall, ref: Any, resolve: Callable[[World, FakeUser, Any], P]
) -> tuple[FakeUser, World, P]:
    """The caller, the world and the peer ``ref`` names (found by ``resolve``), once the
    caller may read it; Telegram's error when not."""
    viewer = call.base.viewer()
    world: World = call.provider.world
    peer = resolve(world, viewer, ref)
    world.can_read(viewer, peer)
    return viewer, world, peer


@handles(functions.contacts.ResolveUsernameRequest)
async def resolve_username(call: WireCall, request: Any) -> types.contacts.ResolvedPeer:
    viewer = call.base.viewer()
    world = call.provider.world
    kind, value = parse_ref(request.username)
    if kind != "username":
        raise RpcError("USERNAME_INVALID")
    try:
        peer = world.peer(value)
    except KeyError as exc:
        raise RpcError("USERNAME_NOT_OCCUPIED") from exc
    entities = Entities(world, viewer, call.server.dc_id)
    entities.add(peer)
    return types.contacts.ResolvedPeer(
        peer=peer_tl(peer), chats=entities.chats, users=entities.users
    )


@handles(functions.contacts.GetContactsRequest)
async def get_contacts(call: WireCall, request: Any) -> types.contacts.Contacts:
    """The account's contact list with their phones: how Telethon finds a user by phone."""
    viewer = call.base.viewer()
    world = call.provider.world
    users = [world.users[i] for i in sorted(viewer.contacts) if i in world.users]
    return types.contacts.Contacts(
        contacts=[types.Contact(user_id=u.id, mutual=viewer.id in u.contacts) for u in users],
        saved_count=0,
        users=[user_tl(u, viewer) for u in users],
    )


@handles(functions.contacts.SearchRequest)
async def search(call: WireCall, request: Any) -> types.contacts.Found:
    """Public peers whose username or name contains the query (at least 2 characters)."""
    viewer = call.base.viewer()
    world = call.provider.world
    query = request.q.strip().lstrip("@").lower()
    if len(query) < 2:
        raise RpcError("SEARCH_QUERY_EMPTY")
    entities = Entities(world, viewer, call.server.dc_id)
    mine: list[Any] = []
    found: list[Any] = []
    candidates: list[Peer] = [*world.users.values(), *world.groups.values()]
    for peer in candidates:
        name = (
            peer.title
            if isinstance(peer, FakeGroup)
            else f"{peer.first_name} {peer.last_name or ''}"
        )
        if query not in (peer.username or "").lower() and query not in name.lower():
            continue
        member = isinstance(peer, FakeGroup) and viewer.id in peer.members
        if not peer.username and not member:
            continue
        entities.add(peer)
        (mine if member else found).append(peer_tl(peer))
        if len(mine) + len(found) >= min(request.limit or MAX_SEARCH, MAX_SEARCH):
            break
    return types.contacts.Found(
        my_results=mine, results=found, chats=entities.chats, users=entities.users
    )


def _history_ids(ids: list[int], offset_id: int, add_offset: int, limit: int) -> list[int]:
    """messages.getHistory's window over ascending ids: newest first, starting below
    `offset_id` (0: the newest), shifted by `add_offset` (negative: newer ones)."""
    below = bisect.bisect_left(ids, offset_id) if offset_id > 0 else len(ids)
    start = len(ids) - below + add_offset  # index in the newest-first order
    end = start + limit
    newest_first = ids[::-1]
    return newest_first[max(0, start) : max(0, end)]


@handles(functions.messages.GetHistoryRequest)
async def get_history(call: WireCall, request: Any) -> Any:
    viewer, world, peer = _readable(call, request.peer, resolve_input)
    if request.limit < 0:
        raise RpcError("LIMIT_INVALID")
    box, key = world.box_of(viewer, peer)
    ids = box.by_peer.get(key, [])
    window = _history_ids(
        ids, request.offset_id, request.add_offset, min(request.limit, MAX_HISTORY)
    )
    window = [
        i for i in window if i > request.min_id and (request.max_id <= 0 or i < request.max_id)
    ]
    entities = Entities(world, viewer, call.server.dc_id)
    entities.add(peer)
    rendered = [world.render(viewer, box, i) for i in window]
    messages = entities.messages(m for m in rendered if m is not None)
    if isinstance(peer, FakeGroup) and peer.is_channel:
        return types.messages.ChannelMessages(
            pts=box.pts,
            count=len(ids),
            messages=messages,
            topics=[],
            chats=entities.chats,
            users=entities.users,
        )
    return types.messages.MessagesSlice(
        count=len(ids), messages=messages, topics=[], chats=entities.chats, users=entities.users
    )


def _message_ids(items: list[Any]) -> list[int]:
    out = []
    for item in items:
        if isinstance(item, types.InputMessageID):
            out.append(item.id)
        elif isinstance(item, int):
            out.append(item)
        else:
            raise RpcError("MESSAGE_IDS_EMPTY")
    return out


@handles(functions.channels.GetMessagesRequest)
async def get_channel_messages(call: WireCall, request: Any) -> types.messages.ChannelMessages:
    viewer, world, channel = _readable(call, request.channel, resolve_channel)
    entities = Entities(world, viewer, call.server.dc_id)
    entities.add(channel)
    messages: list[Any] = []
    for message_id in _message_ids(request.id):
        found = world.render(viewer, channel.box, message_id)
        messages.append(
            types.MessageEmpty(id=message_id, peer_id=peer_tl(channel))
            if found is None
            else entities.messages([found])[0]
        )
    return types.messages.ChannelMessages(
        pts=channel.box.pts,
        count=len(messages),
        messages=messages,
        topics=[],
        chats=entities.chats,
        users=entities.users,
    )


@handles(functions.messages.GetMessagesRequest)
async def get_messages(call: WireCall, request: Any) -> types.messages.Messages:
    viewer = call.base.viewer()
    world = call.provider.world
    entities = Entities(world, viewer, call.server.dc_id)
    messages: list[Any] = []
    for message_id in _message_ids(request.id):
        found = world.render(viewer, viewer.box, message_id)
        messages.append(
            types.MessageEmpty(id=message_id, peer_id=None)  # Telethon's patched class needs it
            if found is None
            else entities.messages([found])[0]
        )
    return types.messages.Messages(
        messages=messages, topics=[], chats=entities.chats, users=entities.users
    )


def _dialog_offset(call: WireCall, viewer: FakeUser, request: Any) -> tuple[int, int, int] | None:
    """The (date, top message id, peer id) a dialogs page continues below, if any."""
    # On the wire "no date" is 0, which Telethon reads back as the epoch, not None.
    stamp = int(request.offset_date.timestamp()) if request.offset_date else 0
    if not stamp and not request.offset_id:
        return None
    date = stamp or 2**62
    peer_id = 0
    if request.offset_peer is not None and not isinstance(
        request.offset_peer, types.InputPeerEmpty
    ):
        try:
            peer_id = resolve_input(call.provider.world, viewer, request.offset_peer).id
        except RpcError:
            peer_id = 0
    return date, int(request.offset_id or 0), peer_id


@handles(functions.messages.GetDialogsRequest)
async def get_dialogs(call: WireCall, request: Any) -> Any:
    """Every chat the account is in or has messages with, newest activity first, in pages
    (offset_date / offset_id / offset_peer continue below the last dialog of a page)."""
    viewer = call.base.viewer()
    world = call.provider.world
    entities = Entities(world, viewer, call.server.dc_id)
    rows: list[tuple[tuple[int, int, int], Peer, Any, int]] = []  # (key, peer, top, pts)
    for group in world.groups.values():
        if viewer.id not in group.members:
            continue
        box, key = world.box_of(viewer, group)
        ids = box.by_peer.get(key, [])
        top = world.render(viewer, box, ids[-1]) if ids else None
        order = (top["date"], top["id"], group.id) if top else (0, 0, group.id)
        rows.append((order, group, top, box.pts if group.is_channel else 0))
    for (kind, ident), ids in viewer.box.by_peer.items():
        if kind != "user" or not ids or ident not in world.users:
            continue
        top = world.render(viewer, viewer.box, ids[-1])
        order = (top["date"], top["id"], ident) if top else (0, 0, ident)
        rows.append((order, world.users[ident], top, 0))
    rows.sort(key=lambda row: row[0], reverse=True)
    total = len(rows)
    below = _dialog_offset(call, viewer, request)
    if below is not None:
        rows = [row for row in rows if row[0] < below]
    limit = max(1, min(request.limit or 100, 100))
    page, more = rows[:limit], len(rows) > limit
    dialogs: list[Any] = []
    messages: list[Any] = []
    for _, peer, top, pts in page:
        entities.add(peer)
        if top is not None:
            messages.extend(entities.messages([top]))
        channel = isinstance(peer, FakeGroup) and peer.is_channel
        dialogs.append(
            types.Dialog(
                peer=peer_tl(peer),
                top_message=0 if top is None else int(top["id"]),
                read_inbox_max_id=call.server.read_marks.get((viewer.id, peer.id), 0),
                read_outbox_max_id=0,
                unread_count=0,
                unread_mentions_count=0,
                unread_reactions_count=0,
                unread_poll_votes_count=0,
                notify_settings=types.PeerNotifySettings(),
                pts=pts if channel else None,
            )
        )
    if more or below is not None:
        return types.messages.DialogsSlice(
            count=total,
            dialogs=dialogs,
            messages=messages,
            chats=entities.chats,
            users=entities.users,
        )
    return types.messages.Dialogs(
        dialogs=dialogs, messages=messages, chats=entities.chats, users=entities.users
    )


def _media_of(media: Any) -> dict[str, Any]:
    """The world's media dict for an InputMedia the client sent."""
    if isinstance(media, types.InputMediaGeoPoint) and isinstance(
        media.geo_point, types.InputGeoPoint
    ):
        return {
            "kind": "location",
            "latitude": media.geo_point.lat,
            "longitude": media.geo_point.long,
        }
    if isinstance(media, types.InputMediaContact):
        return {
            "kind": "contact",
            "phone": media.phone_number,
            "first_name": media.first_name,
            "last_name": media.last_name,
        }
    if isinstance(media, types.InputMediaUploadedPhoto):
        return {"kind": "photo", "file_id": f"upload:{media.file.id}"}
    if isinstance(media, types.InputMediaPhoto):
        return {"kind": "photo", "file_id": f"photo:{getattr(media.id, 'id', 0)}"}
    if isinstance(media, types.InputMediaUploadedDocument):
        out: dict[str, Any] = {
            "kind": "document",
            "mime_type": media.mime_type,
            "file_id": f"upload:{media.file.id}",
        }
        for attribute in media.attributes:
            if isinstance(attribute, types.DocumentAttributeAudio):
                out["kind"] = "voice" if attribute.voice else "audio"
                out["duration"] = attribute.duration
            elif isinstance(attribute, types.DocumentAttributeVideo):
                out["kind"] = "video"
                out["duration"] = attribute.duration
            elif isinstance(attribute, types.DocumentAttributeFilename):
                out["file_name"] = attribute.file_name
        kinds = {type(a) for a in media.attributes}
        if types.DocumentAttributeAnimated in kinds:  # a GIF is a video *and* animated
            out["kind"] = "animation"
        if types.DocumentAttributeSticker in kinds:
            out["kind"] = "sticker"
        return out
    if isinstance(media, types.InputMediaDocument):
        return {"kind": "document"}
    # By URL: Telegram fetches the file itself; the fake keeps the URL it was given.
    if isinstance(media, types.InputMediaPhotoExternal):
        return {"kind": "photo", "file_id": f"url:{media.url}"}
    if isinstance(media, types.InputMediaDocumentExternal):
        return {"kind": "document", "file_id": f"url:{media.url}"}
    raise RpcError("MEDIA_INVALID")


def _reply_id(reply_to: Any) -> int | None:
    if isinstance(reply_to, types.InputReplyToMessage):
        return int(reply_to.reply_to_msg_id)
    return None


def _sent(
    call: WireCall, viewer: FakeUser, peer: Peer, ids: dict[int, int], random_id: int
) -> types.Updates:
    """What Telegram answers a send with: the id for the random_id, and the new message."""
    world = call.provider.world
    channel = isinstance(peer, FakeGroup) and peer.is_channel
    box = peer.box if channel and isinstance(peer, FakeGroup) else viewer.box
    message_id = ids[0] if channel else ids[viewer.id]
    rendered = world.render(viewer, box, message_id)
    assert rendered is not None
    entities = Entities(world, viewer, call.server.dc_id)
    message = entities.messages([rendered])[0]
    new = (types.UpdateNewChannelMessage if channel else types.UpdateNewMessage)(
        message, box.pts, 1
    )
    return entities.updates([types.UpdateMessageID(id=message_id, random_id=random_id), new])


@handles(functions.messages.SendMessageRequest)
async def send_message(call: WireCall, request: Any) -> types.Updates:
    return _post(call, request, request.message)


@handles(functions.messages.SendMediaRequest)
async def send_media(call: WireCall, request: Any) -> types.Updates:
    return _post(call, request, request.message or "", request.media)


def _post(call: WireCall, request: Any, text: str, media: Any = None) -> types.Updates:
    """What the viewer sends to ``request.peer`` (with an InputMedia's file stored), as the
    Updates that answer a send."""
    viewer = call.base.viewer()
    world = call.provider.world
    peer = resolve_input(world, viewer, request.peer)
    world.check_can_send(viewer, peer)
    ids = world.post(
        peer,
        viewer,
        text,
        reply_to=_reply_id(request.reply_to),
        media=None if media is None else _stored_media(call, viewer, media),
        skip_connection=call.base.conn.id,
        entities=entities_of_tl(request.entities),
    )
    return _sent(call, viewer, peer, ids, request.random_id)


def _stored_media(call: WireCall, viewer: FakeUser, media: Any) -> dict[str, Any]:
    """The world's media dict for an InputMedia, its uploaded bytes joined into the file
    store (so the recipient can download them) and its size recorded."""
    found = _media_of(media)
    uploaded: Any = getattr(media, "file", None)
    if isinstance(media, (types.InputMediaUploadedPhoto, types.InputMediaUploadedDocument)):
        found["file_size"] = call.provider.world.files.finish_upload(
            viewer.id, uploaded.id, str(found["file_id"]), uploaded.parts
        )
    elif isinstance(media, (types.InputMediaPhoto, types.InputMediaDocument)):
        known = call.provider.world.files.by_ident.get(getattr(media.id, "id", 0))
        if known is not None:  # a file Telegram already has: the same bytes again
            found["file_id"] = known[0]
            found["file_size"] = len(known[1])
    return found


@handles(functions.upload.SaveFilePartRequest, functions.upload.SaveBigFilePartRequest)
async def save_file_part(call: WireCall, request: Any) -> bool:
    viewer = call.base.viewer()
    call.provider.world.files.save_part(
        viewer.id, request.file_id, request.file_part, request.bytes
    )
    return True


@handles(functions.upload.GetFileRequest)
async def get_file(call: WireCall, request: Any) -> types.upload.File:
    """A window of a photo's or document's bytes (`offset`/`limit` by Telegram's rules)."""
    call.base.viewer()
    location = request.location
    if not isinstance(location, (types.InputPhotoFileLocation, types.InputDocumentFileLocation)):
        raise RpcError("LOCATION_INVALID")
    chunk = call.provider.world.files.read(
        location.id, location.access_hash, location.file_reference, request.offset, request.limit
    )
    return types.upload.File(type=types.storage.FileUnknown(), mtime=0, bytes=chunk)


@handles(functions.messages.ReadHistoryRequest, functions.channels.ReadHistoryRequest)
async def read_history(call: WireCall, request: Any) -> Any:
    """Mark messages read; their senders get updateReadHistoryOutbox / ReadChannelOutbox."""
    target = (
        request.channel
        if isinstance(request, functions.channels.ReadHistoryRequest)
        else request.peer
    )
    viewer, _, peer = _readable(call, target, resolve_input)
    call.server.mark_read(viewer, peer, request.max_id)
    if isinstance(request, functions.channels.ReadHistoryRequest):
        return True
    return types.messages.AffectedMessages(pts=viewer.box.pts, pts_count=0)


def _membership(group: FakeGroup, viewer: FakeUser) -> types.Updates:
    """The answer to a join or a leave: the chat as the viewer now sees it."""
    return types.Updates(
        updates=[], users=[], chats=[group_tl(group, viewer)], date=when(time.time()), seq=0
    )


@handles(functions.channels.JoinChannelRequest)
async def join_channel(call: WireCall, request: Any) -> types.Updates:
    viewer = call.base.viewer()
    world = call.provider.world
    channel = resolve_channel(world, viewer, request.channel)
    if viewer.id not in channel.members and not channel.username:
        raise RpcError("CHANNEL_PRIVATE")
    channel.members.add(viewer.id)
    return _membership(channel, viewer)


def _invited(call: WireCall, invite: str) -> tuple[FakeUser, FakeGroup, bool]:
    try:
        group, request_needed = call.provider.world.invite(invite)
    except KeyError:
        raise RpcError("INVITE_HASH_INVALID") from None
    return call.base.viewer(), group, request_needed


@handles(functions.messages.CheckChatInviteRequest)
async def check_chat_invite(call: WireCall, request: Any) -> Any:
    """What an invite link opens: the chat itself for a member, else its preview."""
    viewer, group, request_needed = _invited(call, request.hash)
    if viewer.id in group.members:
        return types.ChatInviteAlready(chat=group_tl(group, viewer))
    return types.ChatInvite(
        title=group.title,
        photo=types.PhotoEmpty(id=0),
        participants_count=len(group.members),
        color=0,
        channel=group.is_channel,
        broadcast=group.type == "channel",
        megagroup=group.type == "megagroup",
        public=bool(group.username),
        request_needed=request_needed,
    )


@handles(functions.messages.ImportChatInviteRequest)
async def import_chat_invite(call: WireCall, request: Any) -> types.Updates:
    """Join by an invite link (an admin's approval first where the link asks for it)."""
    viewer, group, request_needed = _invited(call, request.hash)
    if viewer.id in group.members:
        raise RpcError("USER_ALREADY_PARTICIPANT")
    if request_needed:
        raise RpcError("INVITE_REQUEST_SENT")
    group.members.add(viewer.id)
    return _membership(group, viewer)


@handles(functions.channels.LeaveChannelRequest)
async def leave_channel(call: WireCall, request: Any) -> types.Updates:
    viewer = call.base.viewer()
    channel = resolve_channel(call.provider.world, viewer, request.channel)
    if viewer.id not in channel.members:
        raise RpcError("USER_NOT_PARTICIPANT")
    channel.members.discard(viewer.id)
    channel.admins.discard(viewer.id)
    return _membership(channel, viewer)


@handles(functions.messages.DeleteChatUserRequest)
async def leave_chat(call: WireCall, request: Any) -> types.Updates:
    """A basic group's member leaves it (the only removal the fake serves: one's own)."""
    viewer = call.base.viewer()
    chat = call.provider.world.groups.get(int(request.chat_id))
    if chat is None or chat.is_channel:
        raise RpcError("CHAT_ID_INVALID")
    if not isinstance(request.user_id, types.InputUserSelf):
        raise RpcError("CHAT_ADMIN_REQUIRED")
    if viewer.id not in chat.members:
        raise RpcError("USER_NOT_PARTICIPANT")
    chat.members.discard(viewer.id)
    return _membership(chat, viewer)


@handles(functions.channels.GetChannelsRequest, functions.messages.GetChatsRequest)
async def get_chats(call: WireCall, request: Any) -> types.messages.Chats:
    viewer = call.base.viewer()
    world = call.provider.world
    chats: list[Any] = []
    for item in request.id:
        if isinstance(item, int):
            group = world.groups.get(item)
            if group is None or group.is_channel:
                raise RpcError("CHAT_ID_INVALID")
        else:
            group = resolve_channel(world, viewer, item)
        chats.append(group_tl(group, viewer))
    return types.messages.Chats(chats=chats)


@handles(functions.updates.GetDifferenceRequest)
async def get_difference(call: WireCall, request: Any) -> Any:
    viewer = call.base.viewer()
    return call.server.updates.difference(viewer, request.pts)


@handles(functions.updates.GetChannelDifferenceRequest)
async def get_channel_difference(call: WireCall, request: Any) -> Any:
    viewer, _, channel = _readable(call, request.channel, resolve_channel)
    return call.server.updates.channel_difference(viewer, channel, request.pts)


def _may_change(viewer: FakeUser, peer: Peer, post: Any, *, deleting: bool = False) -> None:
    """Only the author edits; a group's creator and admins may also delete, and in a
    private chat either side deletes any message for both."""
    if post.sender_id == viewer.id or (deleting and isinstance(peer, FakeUser)):
        return
    if isinstance(peer, FakeGroup):
        admin = viewer.id == peer.creator_id or viewer.id in peer.admins
        if admin and (deleting or peer.type == "channel"):  # channel admins edit posts too
            return
    raise RpcError("MESSAGE_AUTHOR_REQUIRED", 403)


@handles(functions.messages.EditMessageRequest)
async def edit_message(call: WireCall, request: Any) -> types.Updates:
    viewer, world, peer = _readable(call, request.peer, resolve_input)
    box, _ = world.box_of(viewer, peer)
    entry = box.entries.get(request.id)
    if entry is None:
        raise RpcError("MESSAGE_ID_INVALID")
    post = entry[1]
    _may_change(viewer, peer, post)
    if request.message is None and request.media is None:
        raise RpcError("MESSAGE_EMPTY")
    entities = entities_of_tl(request.entities)
    same = request.message == post.text and entities == post.entities
    if request.message is not None and same and request.media is None:
        raise RpcError("MESSAGE_NOT_MODIFIED")
    media = None if request.media is None else _stored_media(call, viewer, request.media)
    world.edit(peer, post, request.message, media, entities=entities)
    rendered = world.render(viewer, box, request.id)
    assert rendered is not None
    known = Entities(world, viewer, call.server.dc_id)
    message = known.messages([rendered])[0]
    channel = isinstance(peer, FakeGroup) and peer.is_channel
    edited = (types.UpdateEditChannelMessage if channel else types.UpdateEditMessage)(
        message, box.pts, 1
    )
    return known.updates([edited])


@handles(functions.messages.DeleteMessagesRequest, functions.channels.DeleteMessagesRequest)
async def delete_messages(call: WireCall, request: Any) -> types.messages.AffectedMessages:
    """Delete for everyone (ids in the account's box, or the channel's)."""
    viewer = call.base.viewer()
    world = call.provider.world
    by_peer: dict[int, tuple[Peer, list[Any]]] = {}
    if isinstance(request, functions.channels.DeleteMessagesRequest):
        channel = resolve_channel(world, viewer, request.channel)
        world.can_read(viewer, channel)
        box = channel.box
        for message_id in request.id:
            entry = box.entries.get(message_id)
            if entry is not None:
                _may_change(viewer, channel, entry[1], deleting=True)
                by_peer.setdefault(channel.id, (channel, []))[1].append(entry[1])
    else:
        box = viewer.box
        for message_id in request.id:
            entry = box.entries.get(message_id)
            if entry is None:
                continue
            peer = world.peer_of_key(entry[0])
            _may_change(viewer, peer, entry[1], deleting=True)
            by_peer.setdefault(peer.id, (peer, []))[1].append(entry[1])
    before = box.pts
    for peer, posts in by_peer.values():
        world.delete(peer, posts)
    return types.messages.AffectedMessages(pts=box.pts, pts_count=box.pts - before)
