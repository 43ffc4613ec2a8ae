"""The RPC methods of the fake, by their MTProto names, with Telegram's checks and errors."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from switchboard.sandbox.mtproto.connections import Connection
from switchboard.sandbox.mtproto.errors import RpcError
from switchboard.sandbox.mtproto.keys import AuthKey, KeyState
from switchboard.sandbox.mtproto.world import CHANNEL_MARK, USERNAME, FakeGroup, FakeUser, Peer

if TYPE_CHECKING:
    from switchboard.sandbox.mtproto.provider import MtprotoProvider

MAX_HISTORY = 100  # messages.getHistory never returns more, whatever limit asks
_LINK = re.compile(r"^(?:https?://)?(?:www\.)?(?:t|telegram)\.(?:me|dog)/(.+)$", re.IGNORECASE)
_TG_RESOLVE = re.compile(r"^tg://resolve\?(?:.*&)?domain=([^&]+)", re.IGNORECASE)


@dataclass
class Call:
    """One RPC on a live connection."""

    provider: MtprotoProvider
    conn: Connection
    params: dict[str, Any]

    @property
    def key(self) -> AuthKey:
        return self.conn.key

    def viewer(self) -> FakeUser:
        """The signed-in account, or the error Telegram gives a key that is not signed in."""
        key = self.key
        key.check_alive()
        if key.state is KeyState.PASSWORD:
            raise RpcError("SESSION_PASSWORD_NEEDED")
        if key.state is not KeyState.AUTHORIZED or key.user_id is None:
            raise RpcError("AUTH_KEY_UNREGISTERED")
        user = self.provider.world.users.get(key.user_id)
        if user is None:
            raise RpcError("USER_DEACTIVATED")
        if user.banned:
            raise RpcError("USER_DEACTIVATED_BAN")
        return user

    def int_param(self, name: str, default: int = 0) -> int:
        value = self.params.get(name, default)
        if value is None:
            return default
        try:
            return int(value)
        except (TypeError, ValueError) as exc:
            raise RpcError("INPUT_REQUEST_INVALID") from exc

    def str_param(self, name: str) -> str:
        value = self.params.get(name)
        return "" if value is None else str(value)

    def ids_param(self) -> list[int]:
        ids = self.params.get("ids")
        if not isinstance(ids, list):
            raise RpcError("INPUT_REQUEST_INVALID")
        try:
            return [int(i) for i in ids]
        except (TypeError, ValueError) as exc:
            raise RpcError("MESSAGE_IDS_EMPTY") from exc


Handler = Callable[[Call], Awaitable[Any]]


async def get_state(call: Call) -> Any:
    call.viewer()
    return {"authorized": True}


async def get_me(call: Call) -> Any:
    user = call.viewer()
    return user.to_wire(user.id)


async def send_code(call: Call) -> Any:
    call.key.check_alive()
    p = call.provider
    return p.login.send_code(p.world, p.keys, call.str_param("phone"))


async def sign_in(call: Call) -> Any:
    call.key.check_alive()
    p = call.provider
    user = p.login.sign_in(
        p.world,
        call.key,
        call.str_param("phone"),
        call.str_param("code"),
        call.str_param("phone_code_hash"),
    )
    return user.to_wire(user.id)


async def check_password(call: Call) -> Any:
    call.key.check_alive()
    p = call.provider
    user = p.login.check_password(p.world, call.key, call.str_param("password"))
    return user.to_wire(user.id)


async def log_out(call: Call) -> Any:
    call.viewer()
    call.key.state = KeyState.LOGGED_OUT
    return True


def parse_ref(ref: str) -> tuple[str, str | int]:
    """("self", ""), ("id", n) or ("username", name) for what users type to name a peer."""
    text = ref.strip()
    if text.lower() in ("me", "self"):
        return "self", ""
    if re.fullmatch(r"-?\d+", text):
        return "id", int(text)
    link = _LINK.match(text)
    resolve = _TG_RESOLVE.match(text)
    if link:
        path = link.group(1).split("?")[0].strip("/")
        parts = path.split("/")
        if parts[0] == "c" and len(parts) > 1 and parts[1].isdigit():
            return "id", -(CHANNEL_MARK + int(parts[1]))
        if parts[0] == "s" and len(parts) > 1:
            parts = parts[1:]
        if parts[0] == "joinchat" or parts[0].startswith("+"):
            raise RpcError("INVITE_HASH_INVALID")
        text = parts[0]
    elif resolve:
        text = resolve.group(1)
    name = text.lstrip("@")
    if not USERNAME.match(name):
        raise RpcError("USERNAME_INVALID")
    return "username", name


async def resolve(call: Call) -> Any:
    viewer = call.viewer()
    world = call.provider.world
    kind, value = parse_ref(call.str_param("ref"))
    if kind == "self":
        return viewer.peer_wire()
    peer: Peer
    try:
        peer = world.peer(value)
    except KeyError as exc:
        raise RpcError(
            "USERNAME_NOT_OCCUPIED" if kind == "username" else "PEER_ID_INVALID"
        ) from exc
    if kind == "id" and not world.can_see(viewer, peer):
        raise RpcError("PEER_ID_INVALID")
    return peer.peer_wire()


async def get_history(call: Call) -> Any:
    viewer = call.viewer()
    world = call.provider.world
    peer = world.from_wire(call.params.get("peer"))
    limit = call.int_param("limit", MAX_HISTORY)
    if limit < 0:
        raise RpcError("LIMIT_INVALID")
    messages = world.history(
        viewer,
        peer,
        offset_id=max(0, call.int_param("offset_id")),
        limit=min(limit, MAX_HISTORY),
        min_id=max(0, call.int_param("min_id")),
    )
    box, key = world.box_of(viewer, peer)
    return {"messages": messages, "count": len(box.by_peer.get(key, []))}


async def get_messages(call: Call) -> Any:
    viewer = call.viewer()
    world = call.provider.world
    return {"messages": [world.render(viewer, viewer.box, i) for i in call.ids_param()]}


async def get_channel_messages(call: Call) -> Any:
    viewer = call.viewer()
    world = call.provider.world
    peer = world.from_wire(call.params.get("peer"))
    if not isinstance(peer, FakeGroup) or not peer.is_channel:
        raise RpcError("CHANNEL_INVALID")
    world.can_read(viewer, peer)
    return {"messages": [world.render(viewer, peer.box, i) for i in call.ids_param()]}


async def send_message(call: Call) -> Any:
    viewer = call.viewer()
    world = call.provider.world
    peer = world.from_wire(call.params.get("peer"))
    world.check_can_send(viewer, peer)
    reply = call.params.get("reply_to_msg_id")
    ids = world.post(
        peer,
        viewer,
        call.str_param("message"),
        reply_to=None if reply is None else call.int_param("reply_to_msg_id"),
        skip_connection=call.conn.id,
    )
    if isinstance(peer, FakeGroup) and peer.is_channel:
        return world.render(viewer, peer.box, ids[0])
    return world.render(viewer, viewer.box, ids[viewer.id])


METHODS: dict[str, Handler] = {
    "updates.getState": get_state,
    "users.getUsers": get_me,
    "auth.sendCode": send_code,
    "auth.signIn": sign_in,
    "auth.checkPassword": check_password,
    "auth.logOut": log_out,
    "contacts.resolveUsername": resolve,
    "messages.getHistory": get_history,
    "messages.getMessages": get_messages,
    "channels.getMessages": get_channel_messages,
    "messages.sendMessage": send_message,
}
