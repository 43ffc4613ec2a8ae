"""Control routes of the wire server, under `/_sandbox/mtproto/wire/`: its descriptor and
its faults (lost updates, stalled answers, dropped TCP connections)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from switchboard.sandbox.httpjson import ControlError, error_json, read_json

if TYPE_CHECKING:
    from switchboard.sandbox.mtproto_wire.server import WireServer


def wire_control_routes(server: WireServer) -> list[BaseRoute]:
    async def descriptor(request: Request) -> Response:
        if not server.running:
            return error_json(ControlError("the MTProto wire server is not running", 503))
        return JSONResponse(server.descriptor(request.url.hostname))

    async def faults(request: Request) -> Response:
        if request.method == "POST":
            try:
                data = await read_json(request)
            except ControlError as exc:
                return error_json(exc)
            unknown = set(data) - {"drop_updates", "stall"}
            if unknown:
                return error_json(ControlError(f"unknown wire faults: {sorted(unknown)}"))
            drop = data.get("drop_updates", server.faults.drop_updates)
            if not isinstance(drop, int) or isinstance(drop, bool) or drop < 0:
                return error_json(ControlError("drop_updates must be an integer >= 0"))
            stall = data.get("stall", server.faults.stalled)
            if not isinstance(stall, bool):
                return error_json(ControlError("stall must be true or false"))
            server.faults.drop_updates = drop
            server.set_stall(stall)
        return JSONResponse(server.faults.to_json())

    async def session(request: Request) -> Response:
        try:
            data = await read_json(request)
            user = server.provider.user(str(data.get("user") or ""))
        except ControlError as exc:
            return error_json(exc)
        except KeyError:
            return error_json(ControlError("no such user", 404))
        return JSONResponse(server.issue_session(user), status_code=201)

    async def read(request: Request) -> Response:
        """`reader` reads its chat with `peer` (up to `max_id`, else all): the sender's
        client gets updateReadHistoryOutbox, as when a person opens the chat."""
        try:
            data = await read_json(request)
            reader = server.provider.user(str(data.get("reader") or ""))
            peer = server.provider.user(str(data.get("peer") or ""))
        except ControlError as exc:
            return error_json(exc)
        except KeyError:
            return error_json(ControlError("no such user", 404))
        max_id = data.get("max_id")
        if max_id is None:
            sent = server.provider.messages(peer, reader)
            max_id = int(sent[-1]["id"]) if sent else 0
        if not isinstance(max_id, int) or isinstance(max_id, bool) or max_id < 0:
            return error_json(ControlError("max_id must be an integer >= 0"))
        server.mark_read(reader, peer, max_id)
        return JSONResponse({"reader": reader.id, "peer": peer.id, "max_id": max_id})

    async def drop(request: Request) -> Response:
        return JSONResponse({"dropped": server.drop_all()})

    return [
        Route("/server", descriptor, methods=["GET"]),
        Route("/faults", faults, methods=["GET", "POST"]),
        Route("/drop", drop, methods=["POST"]),
        Route("/sessions", session, methods=["POST"]),
        Route("/read", read, methods=["POST"]),
    ]
