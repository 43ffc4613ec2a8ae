"""Control endpoints of the MTProto fake, under `/_sandbox/mtproto/` (see the package doc)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from switchboard.sandbox.httpjson import ControlError, listing, query_bool, read_json, required
from switchboard.sandbox.mtproto.errors import RpcError
from switchboard.sandbox.mtproto.provider import message_kwargs, session_json
from switchboard.sandbox.mtproto.world import FakeGroup, Peer, UserProfile
from switchboard.sandbox.routes import RouteTable, route_table, settings_routes

if TYPE_CHECKING:
    from switchboard.sandbox.mtproto.provider import MtprotoProvider

# A user body: what World.add_user takes (phone, first name, profile) and the code to fix.
_USER_FIELDS = ("phone", "first_name", *UserProfile.__annotations__, "code")


def _rpc_or_missing(exc: Exception) -> ControlError | None:
    """An RPC error from seeding (e.g. MESSAGE_EMPTY) is a 400 naming it; a lookup's
    KeyError a 404 naming what is missing."""
    if isinstance(exc, RpcError):
        return ControlError(exc.name)
    if isinstance(exc, KeyError):
        return ControlError(str(exc.args[0]) if exc.args else "not found", 404)
    return None


def _refs(data: dict[str, Any], name: str) -> list[Any]:
    value = data.get(name) or []
    if not isinstance(value, list):
        raise ControlError(f"{name} must be a list")
    return value


def control_routes(provider: MtprotoProvider) -> list[BaseRoute]:
    """Routes to seed accounts, peers and messages, read codes and logs, inject faults."""

    def peer_json(peer: Peer) -> dict[str, Any]:
        return peer.summary() if isinstance(peer, FakeGroup) else peer.peer_wire()

    def create_user(data: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(data, dict) or not data.get("phone"):
            raise ControlError("phone is required")
        unknown = set(data) - {*_USER_FIELDS, "sessions"}
        if unknown:
            raise ControlError(f"unknown user fields: {sorted(unknown)}")
        fields = {k: data.get(k) for k in _USER_FIELDS if k != "phone"}
        user, keys = provider.add_user(
            str(data["phone"]), **fields, sessions=int(data.get("sessions") or 0)
        )
        return {"user": user.summary(), "sessions": [session_json(k) for k in keys]}

    async def add_user(request: Request) -> Response:
        return JSONResponse(create_user(await read_json(request)), status_code=201)

    async def add_users(request: Request) -> Response:
        items = _refs(await read_json(request), "users")
        return JSONResponse({"users": [create_user(item) for item in items]}, status_code=201)

    async def list_users(request: Request) -> Response:
        return JSONResponse({"users": [u.summary() for u in provider.world.users.values()]})

    async def get_user(request: Request) -> Response:
        user = provider.user(request.path_params["user"])
        keys = [provider.session_summary(k) for k in provider.keys.of_user(user.id)]
        return JSONResponse({**user.summary(), "sessions": keys})

    async def add_contact(request: Request) -> Response:
        data = await read_json(request)
        contact = provider.world.add_contact(
            provider.user(request.path_params["user"]).id, required(data, "contact")
        )
        return JSONResponse(contact.summary(), status_code=201)

    async def add_session(request: Request) -> Response:
        key = provider.new_session(request.path_params["user"])
        return JSONResponse(session_json(key), status_code=201)

    async def ban(request: Request) -> Response:
        data = await read_json(request)
        user = provider.ban(request.path_params["user"], bool(data.get("banned", True)))
        return JSONResponse(user.summary())

    async def get_session(request: Request) -> Response:
        return JSONResponse(provider.session_summary(provider.session(request.path_params["key"])))

    async def revoke(request: Request) -> Response:
        key = provider.revoke(request.path_params["key"])
        return JSONResponse(provider.session_summary(key))

    async def add_channel(request: Request) -> Response:
        data = await read_json(request)
        channel = provider.add_channel(
            required(data, "title"),
            data.get("username"),
            megagroup=bool(data.get("megagroup", False)),
            creator=data.get("creator"),
            admins=_refs(data, "admins"),
            members=_refs(data, "members"),
        )
        return JSONResponse(channel.summary(), status_code=201)

    async def add_chat(request: Request) -> Response:
        data = await read_json(request)
        chat = provider.add_chat(required(data, "title"), _refs(data, "members"))
        return JSONResponse(chat.summary(), status_code=201)

    async def get_peer(request: Request) -> Response:
        return JSONResponse(peer_json(provider.peer(request.path_params["peer"])))

    async def members(request: Request) -> Response:
        data = await read_json(request)
        group = provider.set_members(
            request.path_params["peer"],
            add=_refs(data, "add"),
            remove=_refs(data, "remove"),
            restrict=_refs(data, "restrict"),
            unrestrict=_refs(data, "unrestrict"),
        )
        return JSONResponse(group.summary())

    async def invite(request: Request) -> Response:
        """A new invite link into a group or channel (``request_needed``: an admin approves
        each join, and a join answers INVITE_REQUEST_SENT)."""
        data = await read_json(request)
        group = provider.peer(request.path_params["peer"])
        if not isinstance(group, FakeGroup):
            raise ControlError("invite links open groups and channels")
        invite = provider.world.add_invite(group, request_needed=bool(data.get("request_needed")))
        body = {"hash": invite, "link": f"https://t.me/+{invite}", "peer": group.summary()}
        return JSONResponse(body, status_code=201)

    def peer_of(data: dict[str, Any]) -> Peer:
        if data.get("peer") is None:
            raise ControlError("peer is required")
        return provider.peer(data["peer"])

    async def post(request: Request) -> Response:
        data = await read_json(request)
        peer = peer_of(data)
        item = {k: v for k, v in data.items() if k != "peer"}
        return JSONResponse(provider.post(peer, **message_kwargs(item)), status_code=201)

    async def post_bulk(request: Request) -> Response:
        data = await read_json(request)
        peer = peer_of(data)
        if data.get("messages") is not None:
            return JSONResponse(provider.post_list(peer, _refs(data, "messages")), status_code=201)
        if data.get("count") is None:
            raise ControlError("give count or messages")
        result = provider.post_many(
            peer,
            int(data["count"]),
            sender=data.get("from"),
            text=str(data.get("text", "message {n}")),
            start_date=None if data.get("start_date") is None else int(data["start_date"]),
            interval=float(data.get("interval", 1.0)),
            notify=bool(data.get("notify", False)),
        )
        return JSONResponse(result, status_code=201)

    async def edit(request: Request) -> Response:
        data = await read_json(request)
        if data.get("id") is None:
            raise ControlError("id is required")
        message = provider.edit(
            peer_of(data),
            int(data["id"]),
            text=data.get("text"),
            media=data.get("media"),
            user=data.get("user"),
            notify=bool(data.get("notify", True)),
        )
        return JSONResponse(message)

    async def delete(request: Request) -> Response:
        data = await read_json(request)
        ids = [int(i) for i in _refs(data, "ids")]
        count = provider.delete(
            peer_of(data), ids, user=data.get("user"), notify=bool(data.get("notify", True))
        )
        return JSONResponse({"deleted": count})

    async def list_messages(request: Request) -> Response:
        query = request.query_params
        if not query.get("peer"):
            raise ControlError("peer is required")
        found = provider.messages(query["peer"], query.get("user") or None)
        limit = query.get("limit")
        if limit:
            found = found[-int(limit) :]
        return listing("messages", found)

    async def file_bytes(request: Request) -> Response:
        """The bytes the cloud holds for a message's `media.file_id` (what a download must
        return, byte for byte)."""
        data = provider.world.files.get(request.path_params["file_id"])
        if data is None:
            raise ControlError("no such file", 404)
        return Response(data, media_type="application/octet-stream")

    async def codes(request: Request) -> Response:
        return JSONResponse({"codes": [c.to_json() for c in provider.login.sent]})

    async def code(request: Request) -> Response:
        found = provider.code(request.path_params["phone"])
        if found is None:
            raise ControlError("no code was sent to this phone", 404)
        return JSONResponse(found.to_json())

    async def connections(request: Request) -> Response:
        query = request.query_params
        report = provider.connection_log(
            user=query.get("user") or None,
            key_id=query.get("key_id") or None,
            active=query_bool(request, "active"),
        )
        return JSONResponse(report)

    async def disconnect(request: Request) -> Response:
        data = await read_json(request)
        count = provider.disconnect(
            user=data.get("user"), key_id=data.get("key_id"), connection=data.get("connection")
        )
        return JSONResponse({"disconnected": count})

    async def list_faults(request: Request) -> Response:
        return JSONResponse({"faults": [r.to_json() for r in provider.floods.rules.values()]})

    async def add_fault(request: Request) -> Response:
        data = await read_json(request)
        rule = provider.add_fault(**data)
        return JSONResponse(rule.to_json(), status_code=201)

    async def clear_faults(request: Request) -> Response:
        provider.clear_faults()
        return JSONResponse({"cleared": True})

    async def delete_fault(request: Request) -> Response:
        if not provider.floods.remove(int(request.path_params["rule"])):
            raise ControlError("no such fault rule", 404)
        return JSONResponse({"deleted": True})

    async def stats(request: Request) -> Response:
        return JSONResponse(provider.stats())

    table: RouteTable = [
        *settings_routes(provider.config, methods=("PUT",)),
        ("/users", add_user, ["POST"]),
        ("/users", list_users, ["GET"]),
        ("/users/bulk", add_users, ["POST"]),
        ("/users/{user}", get_user, ["GET"]),
        ("/users/{user}/sessions", add_session, ["POST"]),
        ("/users/{user}/contacts", add_contact, ["POST"]),
        ("/users/{user}/ban", ban, ["POST"]),
        ("/sessions/{key}", get_session, ["GET"]),
        ("/sessions/{key}", revoke, ["DELETE"]),
        ("/channels", add_channel, ["POST"]),
        ("/chats", add_chat, ["POST"]),
        ("/peers/{peer}", get_peer, ["GET"]),
        ("/peers/{peer}/members", members, ["POST"]),
        ("/peers/{peer}/invites", invite, ["POST"]),
        ("/messages", post, ["POST"]),
        ("/messages", list_messages, ["GET"]),
        ("/messages/bulk", post_bulk, ["POST"]),
        ("/messages/edit", edit, ["POST"]),
        ("/messages/delete", delete, ["POST"]),
        ("/files/{file_id}", file_bytes, ["GET"]),
        ("/codes", codes, ["GET"]),
        ("/codes/{phone}", code, ["GET"]),
        ("/connections", connections, ["GET"]),
        ("/disconnect", disconnect, ["POST"]),
        ("/faults", list_faults, ["GET"]),
        ("/faults", add_fault, ["POST"]),
        ("/faults", clear_faults, ["DELETE"]),
        ("/faults/{rule}", delete_fault, ["DELETE"]),
        ("/stats", stats, ["GET"]),
    ]
    return route_table(table, _rpc_or_missing)
