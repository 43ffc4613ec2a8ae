"""The fake Telegram behind the wire-level MTProto server, as a sandbox provider (control
routes, reset, state) with the Python API tests use directly.

Every control route has a method here, so in-process tests seed and inspect the fake
without HTTP (`Sandbox().mtproto.add_user(...)`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute
from starlette.types import Scope

from switchboard.sandbox.mtproto.config import MtprotoConfig
from switchboard.sandbox.mtproto.connections import Connections
from switchboard.sandbox.mtproto.floods import FloodControl, RpcFault
from switchboard.sandbox.mtproto.keys import AuthKey, KeyRing, KeyState
from switchboard.sandbox.mtproto.login import CodeRecord, LoginDesk
from switchboard.sandbox.mtproto.world import (
    Box,
    FakeGroup,
    FakeUser,
    Peer,
    PostOptions,
    UserProfile,
    World,
)
from switchboard.sandbox.provider import Core

if TYPE_CHECKING:
    from typing_extensions import Unpack

UserRef = str | int | FakeUser
PeerRef = str | int | FakeUser | FakeGroup


def session_json(key: AuthKey) -> dict[str, Any]:
    return {"session": key.session, "key_id": key.key_id}


class MtprotoProvider:
    """Fake Telegram MTProto cloud: accounts, auth keys, peers, messages and connections."""

    name = "mtproto"
    prefix = "/mtproto"

    def __init__(self, core: Core, config: MtprotoConfig | None = None) -> None:
        self.core = core
        self.config = config or MtprotoConfig()
        self._build()

    def _build(self) -> None:
        clock = self.core.clock
        self.world = World(self.config.seed, clock.time)
        self.keys = KeyRing()
        self.login = LoginDesk(self.config, clock, self.world.rng)
        if not hasattr(self, "conns"):
            self.conns = Connections(self.config, clock)
        self.floods = FloodControl(self.config, clock)
        self.world.notify = self.conns.deliver

    # -- accounts -----------------------------------------------------------------------

    def user(self, ref: UserRef) -> FakeUser:
        """A user by id, phone, @username or the user itself (KeyError if none)."""
        return ref if isinstance(ref, FakeUser) else self.world.user(ref)

    def peer(self, ref: PeerRef) -> Peer:
        """A peer by @username, marked or bare id, or the peer itself (KeyError if none)."""
        return ref if isinstance(ref, FakeUser | FakeGroup) else self.world.peer(ref)

    def add_user(
        self,
        phone: str,
        first_name: str | None = None,
        *,
        sessions: int = 0,
        code: str | None = None,
        **profile: Unpack[UserProfile],
    ) -> tuple[FakeUser, list[AuthKey]]:
        """Register an account (names, username, 2FA password, language), with `sessions`
        pre-authorized auth keys; `code` fixes the login code it gets (a random one per
        auth.sendCode otherwise)."""
        user = self.world.add_user(phone, first_name, login_code=code, **profile)
        return user, [self.new_session(user) for _ in range(sessions)]

    def new_session(self, user: UserRef) -> AuthKey:
        """A new authorized key of the user, as if it had logged in on another device."""
        return self.keys.issue(self.core.clock.time(), self.user(user).id)

    def ban(self, user: UserRef, banned: bool = True) -> FakeUser:
        """Ban (or unban) an account: its keys get USER_DEACTIVATED_BAN, its phone
        PHONE_NUMBER_BANNED."""
        found = self.user(user)
        found.banned = banned
        return found

    def session(self, key_id: str) -> AuthKey:
        found = self.keys.keys.get(key_id)
        if found is None:
            raise KeyError(f"no key {key_id!r}")
        return found

    def revoke(self, key_id: str) -> AuthKey:
        """Terminate a session from "another device": SESSION_REVOKED from now on."""
        key = self.session(key_id)
        if key.state is not KeyState.DUPLICATED:
            key.state = KeyState.REVOKED
        return key

    def session_summary(self, key: AuthKey) -> dict[str, Any]:
        log = self.conns.logs.get(key.key_id)
        return {**key.summary(), "active": len(log.active) if log else 0}

    # -- peers and messages -------------------------------------------------------------

    def add_channel(
        self,
        title: str,
        username: str | None = None,
        *,
        megagroup: bool = False,
        creator: UserRef | None = None,
        admins: Iterable[UserRef] = (),
        members: Iterable[UserRef] = (),
    ) -> FakeGroup:
        """A broadcast channel (or a megagroup): creator and admins may post."""
        return self.world.add_group(
            "megagroup" if megagroup else "channel",
            title,
            username,
            None if creator is None else self.user(creator),
            [self.user(u) for u in admins],
            [self.user(u) for u in members],
        )

    def add_chat(self, title: str, members: Iterable[UserRef]) -> FakeGroup:
        """A basic group; the first member is its creator."""
        users = [self.user(u) for u in members]
        if not users:
            raise ValueError("a basic group needs at least one member")
        return self.world.add_group("chat", title, None, users[0], (), users[1:])

    def set_members(
        self,
        peer: PeerRef,
        *,
        add: Iterable[UserRef] = (),
        remove: Iterable[UserRef] = (),
        restrict: Iterable[UserRef] = (),
        unrestrict: Iterable[UserRef] = (),
    ) -> FakeGroup:
        """Join, leave, restrict (no writing) or unrestrict users of a group or channel."""
        group = self.peer(peer)
        if not isinstance(group, FakeGroup):
            raise ValueError("members belong to groups and channels")
        group.members.update(self.user(u).id for u in add)
        for user in remove:
            group.members.discard(self.user(user).id)
            group.admins.discard(self.user(user).id)
        group.restricted.update(self.user(u).id for u in restrict)
        group.restricted.difference_update(self.user(u).id for u in unrestrict)
        return group

    def post(
        self,
        peer: PeerRef,
        text: str = "",
        *,
        sender: UserRef | None = None,
        **options: Unpack[PostOptions],
    ) -> dict[str, Any]:
        """Store a message as if `sender` wrote it (channel post when None) and push live
        updates to connected members. For a private chat `peer` is the recipient. The result
        is the message as the sender sees it, with `ids` per account outside channels."""
        target = self.peer(peer)
        author = None if sender is None else self.user(sender)
        ids = self.world.post(target, author, text, **options)
        if isinstance(target, FakeGroup) and target.is_channel:
            rendered = self.world.render(author, target.box, ids[0])
        else:
            assert author is not None
            rendered = self.world.render(author, author.box, ids[author.id])
            assert rendered is not None
            rendered["ids"] = {str(user_id): local for user_id, local in ids.items()}
        assert rendered is not None
        return rendered

    def post_many(
        self,
        peer: PeerRef,
        count: int,
        *,
        sender: UserRef | None = None,
        text: str = "message {n}",
        start_date: int | None = None,
        interval: float = 1.0,
        notify: bool = False,
    ) -> dict[str, Any]:
        """Seed `count` messages dated `interval` apart (ending now by default); `{n}` in
        `text` is the message's number from 1."""
        if count < 1:
            raise ValueError("count must be >= 1")
        target = self.peer(peer)
        author = None if sender is None else self.user(sender)
        now = self.core.clock.time()
        first = start_date if start_date is not None else int(now - count * interval)
        ids: list[int] = []
        for n in range(1, count + 1):
            local = self.world.post(
                target,
                author,
                text.replace("{n}", str(n)),
                date=int(first + (n - 1) * interval),
                notify=notify,
            )
            ids.append(local[0] if 0 in local else local[author.id if author else 0])
        return {"count": count, "first_id": ids[0], "last_id": ids[-1]}

    def post_list(self, peer: PeerRef, items: list[dict[str, Any]]) -> dict[str, Any]:
        """Seed messages given one by one (each like `post`'s keyword arguments)."""
        if not items:
            raise ValueError("messages is empty")
        ids = [int(self.post(peer, **message_kwargs(item))["id"]) for item in items]
        return {"count": len(ids), "first_id": ids[0], "last_id": ids[-1]}

    def _owner(self, target: Peer, user: UserRef | None) -> FakeUser | None:
        if isinstance(target, FakeGroup) and target.is_channel:
            return None
        if user is None:
            raise ValueError("outside channels, say whose numbering the ids use (user)")
        return self.user(user)

    @staticmethod
    def _box(target: Peer, owner: FakeUser | None) -> Box:
        if owner is not None:
            return owner.box
        assert isinstance(target, FakeGroup)
        return target.box

    def edit(
        self,
        peer: PeerRef,
        message_id: int,
        *,
        text: str | None = None,
        media: dict[str, Any] | None = None,
        user: UserRef | None = None,
        notify: bool = True,
    ) -> dict[str, Any]:
        """Edit a message (live `edited` updates unless `notify` is false)."""
        target = self.peer(peer)
        owner = self._owner(target, user)
        post = self.world.locate(target, message_id, owner)
        self.world.edit(target, post, text, media, notify)
        rendered = self.world.render(owner, self._box(target, owner), message_id)
        assert rendered is not None
        return rendered

    def delete(
        self,
        peer: PeerRef,
        ids: Iterable[int],
        *,
        user: UserRef | None = None,
        notify: bool = True,
    ) -> int:
        """Delete messages for everyone; how many were found."""
        target = self.peer(peer)
        owner = self._owner(target, user)
        posts = []
        for message_id in ids:
            try:
                posts.append(self.world.locate(target, message_id, owner))
            except KeyError:
                continue
        return self.world.delete(target, posts, notify)

    def messages(self, peer: PeerRef, user: UserRef | None = None) -> list[dict[str, Any]]:
        """Stored messages of a peer, oldest first (outside channels: in `user`'s box)."""
        target = self.peer(peer)
        owner = self._owner(target, user)
        box = self._box(target, owner)
        key = ("channel", target.id) if owner is None else self.world.box_of(owner, target)[1]
        out = [self.world.render(owner, box, i) for i in box.by_peer.get(key, [])]
        return [m for m in out if m is not None]

    # -- inspection and faults ----------------------------------------------------------

    def code(self, phone: str) -> CodeRecord | None:
        """The latest login code sent to `phone`."""
        return self.login.latest(phone)

    def connection_log(
        self,
        *,
        user: UserRef | None = None,
        key_id: str | None = None,
        active: bool | None = None,
    ) -> dict[str, Any]:
        """Connects, disconnects, max concurrency and duplicate incidents per key."""
        user_id = None if user is None else self.user(user).id
        return self.conns.report(user_id=user_id, key_id=key_id, active=active)

    def disconnect(
        self,
        *,
        user: UserRef | None = None,
        key_id: str | None = None,
        connection: str | None = None,
    ) -> int:
        """Drop live connections (all when nothing is given), as a network failure would."""
        user_id = None if user is None else self.user(user).id
        return self.conns.force(user_id=user_id, key_id=key_id, connection=connection)

    def add_fault(self, user: UserRef | None = None, **spec: Any) -> RpcFault:
        """An RPC fault rule, e.g. `add_fault(method="messages.getHistory", seconds=3,
        every=5)` for FLOOD_WAIT_3 on every 5th history call."""
        if user is not None:
            spec["user_id"] = self.user(user).id
        return self.floods.add(**spec)

    def clear_faults(self) -> None:
        self.floods.rules.clear()

    def stats(self) -> dict[str, Any]:
        return self.floods.stats()

    # -- Provider contract --------------------------------------------------------------

    def routes(self) -> list[BaseRoute]:
        """None: clients speak MTProto to the wire server (``switchboard.sandbox.mtproto_wire``),
        whose address ``GET /mtproto/server`` gives."""
        return []

    def control_routes(self) -> list[BaseRoute]:
        from switchboard.sandbox.mtproto.control import control_routes

        return control_routes(self)

    def classify(self, scope: Scope) -> tuple[str | None, str | None]:
        return None, None  # no HTTP API to classify

    def error_response(self, status: int, description: str) -> Response:
        name = "INTERNAL_SERVER_ERROR" if status >= 500 else "INPUT_REQUEST_INVALID"
        return JSONResponse(
            {"error": name, "code": status, "description": description}, status_code=status
        )

    def normalize_account(self, account: str) -> str:
        if account in self.keys.keys:
            return account
        try:
            user = self.world.user(account)
        except KeyError:
            return account
        keys = self.keys.of_user(user.id)
        return keys[0].key_id if len(keys) == 1 else account

    def snapshot(self) -> dict[str, Any]:
        report = self.conns.report()
        return {
            "users": len(self.world.users),
            "groups": len(self.world.groups),
            "keys": len(self.keys.keys),
            "active_connections": report["active"],
            "duplicates": report["duplicates"],
            "config": self.config.to_json(),
        }

    async def start(self) -> None:
        return None

    async def reset(self) -> None:
        self.conns.reset()
        self._build()

    async def aclose(self) -> None:
        self.conns.force(reason="shutdown")


def message_kwargs(item: dict[str, Any]) -> dict[str, Any]:
    """`post` keyword arguments from a control-API message object."""
    allowed = {"text", *PostOptions.__annotations__}
    unknown = set(item) - allowed - {"from"}
    if unknown:
        raise ValueError(f"unknown message fields: {sorted(unknown)}")
    kwargs = {k: v for k, v in item.items() if k in allowed}
    if item.get("from") is not None:
        kwargs["sender"] = item["from"]
    return kwargs
