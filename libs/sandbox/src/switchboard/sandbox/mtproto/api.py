"""The client side of the fake over HTTP: the connect stream, RPC calls, pings, disconnects.

The connect endpoint is a raw ASGI app rather than a Starlette response so that the moment
the client's request goes away (its process died, or it closed the stream) is seen at
once and ends the connection: that is how Telegram sees a dropped TCP connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from switchboard.sandbox.mtproto.connections import Connection
from switchboard.sandbox.mtproto.errors import RpcError, connection_closed, error_response
from switchboard.sandbox.mtproto.keys import KeyState
from switchboard.sandbox.mtproto.methods import METHODS, Call
from switchboard.sandbox.provider import route_path
from switchboard.sandbox.recorder import note_of

if TYPE_CHECKING:
    from switchboard.sandbox.mtproto.provider import MtprotoProvider

_CONNECTION_PATH = re.compile(r"^/connections/([^/]+)/(invoke/([^/]+)|ping|disconnect)$")


def classify(provider: MtprotoProvider, scope: Scope) -> tuple[str | None, str | None]:
    """(key id, method) of a raw request, for fault scoping and recording."""
    path = route_path(scope)
    if path == "/connect":
        return None, "connect"
    match = _CONNECTION_PATH.match(path)
    if match is None:
        return None, None
    conn = provider.conns.get(match.group(1))
    key_id = conn.key.key_id if conn is not None else None
    return key_id, match.group(3) or match.group(2)


def _line(item: dict[str, Any]) -> bytes:
    return json.dumps(item, separators=(",", ":")).encode() + b"\n"


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ConnectionResetError("client left before the body was read")
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _wait_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


class ConnectEndpoint:
    """`POST /connect`: the update stream whose lifetime is the connection's lifetime."""

    def __init__(self, provider: MtprotoProvider) -> None:
        self.provider = provider

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        note = note_of(scope, "mtproto")
        try:
            body = await _read_body(receive)
        except ConnectionResetError:
            return
        try:
            data = json.loads(body or b"{}")
            if not isinstance(data, dict):
                raise ValueError("body must be a JSON object")
            await self.provider.settle(data)
            conn = self.provider.connect(data)
        except RpcError as exc:
            note.fail(exc.code, exc.name)
            await error_response(exc)(scope, receive, send)
            return
        except (ValueError, TypeError) as exc:
            invalid = RpcError("INPUT_REQUEST_INVALID")
            note.fail(400, f"{invalid.name}: {exc}")
            await error_response(invalid)(scope, receive, send)
            return
        note.account = conn.key.key_id
        note.succeed()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/x-ndjson"),
                    (b"cache-control", b"no-store"),
                ],
            }
        )
        watcher = asyncio.ensure_future(_wait_disconnect(receive))
        try:
            first = {
                "type": "connected",
                "connection": conn.id,
                "session": conn.key.session,
                "key_id": conn.key.key_id,
                "authorized": conn.key.state is KeyState.AUTHORIZED,
            }
            await send({"type": "http.response.body", "body": _line(first), "more_body": True})
            await self._pump(conn, watcher, send)
        except OSError:
            pass  # the client is gone; the finally clause records it
        except asyncio.CancelledError:
            # The server is stopping and cancels its requests: end quietly, like a closed
            # socket, instead of logging a traceback for every open stream.
            self.provider.conns.close(conn, "server stopped")
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await watcher
            self.provider.conns.close(conn, "stream closed")

    async def _pump(self, conn: Connection, watcher: asyncio.Future[None], send: Send) -> None:
        """Forward updates and keepalives until the connection or the request ends."""
        conns = self.provider.conns
        getter: asyncio.Future[dict[str, Any] | None] | None = None
        try:
            while True:
                if getter is None:
                    getter = asyncio.ensure_future(conn.outbox.get())
                waiting: set[asyncio.Future[Any]] = {getter, watcher}
                done, _ = await asyncio.wait(
                    waiting,
                    timeout=self.provider.config.keepalive,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if getter in done:
                    item, getter = getter.result(), None
                    if item is None:
                        closing = {
                            "type": "closed",
                            "reason": conn.reason,
                            "error": None if conn.error is None else conn.error.name,
                        }
                        await send(
                            {
                                "type": "http.response.body",
                                "body": _line(closing),
                                "more_body": False,
                            }
                        )
                        return
                    line = _line({"type": "update", "update": item})
                    await send({"type": "http.response.body", "body": line, "more_body": True})
                    continue
                if watcher in done:
                    conns.close(conn, "stream closed")
                    return
                conns.expire_idle([conn])
                if not conn.closed:
                    line = _line({"type": "ping"})
                    await send({"type": "http.response.body", "body": line, "more_body": True})
        finally:
            if getter is not None:
                getter.cancel()


class ClientApi:
    """Routes the adapter calls: connect, invoke, ping, disconnect."""

    def __init__(self, provider: MtprotoProvider) -> None:
        self.provider = provider

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/connect", ConnectEndpoint(self.provider), methods=["POST"]),
            Route("/connections/{cid}/invoke/{method}", self.invoke, methods=["POST"]),
            Route("/connections/{cid}/ping", self.ping, methods=["POST"]),
            Route("/connections/{cid}/disconnect", self.disconnect, methods=["POST"]),
        ]

    def _live(self, request: Request) -> Connection | Response:
        conn = self.provider.conns.get(str(request.path_params["cid"]))
        if conn is None:
            return connection_closed()
        if conn.closed:
            return error_response(conn.error) if conn.error is not None else connection_closed()
        self.provider.conns.touch(conn)
        return conn

    async def invoke(self, request: Request) -> Response:
        note = note_of(request.scope, "mtproto")
        found = self._live(request)
        if isinstance(found, Response):
            note.fail(found.status_code, "connection closed")
            return found
        conn = found
        method = str(request.path_params["method"])
        note.method, note.account = method, conn.key.key_id
        try:
            params = json.loads(await request.body() or b"{}")
            if not isinstance(params, dict):
                raise ValueError("params must be a JSON object")
        except ValueError:
            return self._fail(note, RpcError("INPUT_REQUEST_INVALID"))
        note.params = {k: v for k, v in params.items() if k not in ("password", "code")}
        peer = params.get("peer")
        if isinstance(peer, dict):
            note.chat = str(peer.get("id"))
        handler = METHODS.get(method)
        if handler is None:
            return self._fail(note, RpcError("INPUT_METHOD_INVALID"))
        floods = self.provider.floods
        latency, error = floods.before(method, conn.key)
        if latency:
            await asyncio.sleep(latency)
            if conn.closed:
                return error_response(conn.error) if conn.error else connection_closed()
        if error is not None:
            return self._fail(note, error)
        try:
            result = await handler(Call(self.provider, conn, params))
        except RpcError as exc:
            return self._fail(note, floods.issue(floods.scope(conn.key), method, exc))
        except (ValueError, TypeError) as exc:
            note.fail(400, f"INPUT_REQUEST_INVALID: {exc}")
            return error_response(RpcError("INPUT_REQUEST_INVALID"))
        note.succeed()
        return JSONResponse({"result": result})

    @staticmethod
    def _fail(note: Any, error: RpcError) -> Response:
        note.fail(error.code, error.name, error.seconds)
        return error_response(error)

    async def ping(self, request: Request) -> Response:
        found = self._live(request)
        return found if isinstance(found, Response) else JSONResponse({"pong": True})

    async def disconnect(self, request: Request) -> Response:
        conn = self.provider.conns.get(str(request.path_params["cid"]))
        if conn is None:
            return connection_closed()
        return JSONResponse({"disconnected": self.provider.conns.close(conn, "client")})
