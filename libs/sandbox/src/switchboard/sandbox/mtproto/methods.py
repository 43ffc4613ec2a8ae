"""What every RPC of the fake needs: the signed-in account of the connection it came on
(with the errors Telegram gives a key that is not signed in), and how users name peers."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from switchboard.sandbox.mtproto.connections import Connection
from switchboard.sandbox.mtproto.errors import RpcError
from switchboard.sandbox.mtproto.keys import AuthKey, KeyState
from switchboard.sandbox.mtproto.world import CHANNEL_MARK, USERNAME, FakeUser

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
