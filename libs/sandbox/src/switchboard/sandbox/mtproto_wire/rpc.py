"""Dispatching one RPC: unwrap the invoke* wrappers, apply flood rules and injected
faults, run the handler and answer with rpc_result (a value or an rpc_error)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from telethon.tl import functions
from telethon.tl.tlobject import TLRequest
from telethon.tl.types import RpcError as TLRpcError

from switchboard.sandbox.mtproto.errors import RpcError
from switchboard.sandbox.mtproto.methods import Call
from switchboard.sandbox.mtproto_wire.messages import rpc_result, serialize

if TYPE_CHECKING:
    from switchboard.sandbox.mtproto_wire.connection import WireConnection
    from switchboard.sandbox.mtproto_wire.server import WireServer

log = logging.getLogger(__name__)
_WRAPPERS = (
    functions.InvokeWithLayerRequest,
    functions.InitConnectionRequest,
    functions.InvokeWithoutUpdatesRequest,
    functions.InvokeAfterMsgRequest,
)


@dataclass
class WireCall:
    """One RPC: the server, the connection it came on and the world's `Call` (the account)."""

    server: WireServer
    wire: WireConnection
    base: Call

    @property
    def provider(self) -> Any:
        return self.server.provider


Handler = Callable[[WireCall, Any], Awaitable[Any]]
HANDLERS: dict[type[TLRequest], Handler] = {}


def handles(*kinds: type[TLRequest]) -> Callable[[Handler], Handler]:
    """Register a handler for the given request classes."""

    def register(handler: Handler) -> Handler:
        for kind in kinds:
            HANDLERS[kind] = handler
        return handler

    return register


def method_name(request: TLRequest) -> str:
    """The MTProto name of a request: GetHistoryRequest in messages -> messages.getHistory."""
    name = type(request).__name__.removesuffix("Request")
    name = name[:1].lower() + name[1:]
    namespace = type(request).__module__.rsplit(".", 1)[-1]
    return name if namespace == "functions" else f"{namespace}.{name}"


def error_result(req_msg_id: int, error: RpcError) -> bytes:
    return rpc_result(req_msg_id, bytes(TLRpcError(error.code, error.name)))


def unwrap(request: TLRequest) -> TLRequest:
    while isinstance(request, _WRAPPERS):
        request = request.query
    return request


async def dispatch(
    server: WireServer, wire: WireConnection, msg_id: int, request: TLRequest
) -> bytes:
    """The rpc_result bytes answering `request` (sent as message `msg_id`)."""
    request = unwrap(request)
    method = method_name(request)
    assert wire.conn is not None
    floods = server.provider.floods
    key = wire.conn.key
    handler = HANDLERS.get(type(request))
    if handler is None:
        return error_result(msg_id, RpcError("METHOD_NOT_SUPPORTED_BY_FAKE", 400))
    latency, error = floods.before(method, key)
    if latency:
        await asyncio.sleep(latency)
    if error is not None:
        return error_result(msg_id, error)
    call = WireCall(server, wire, Call(server.provider, wire.conn))
    try:
        result = await handler(call, request)
        body = serialize(result)
    except RpcError as exc:
        return error_result(msg_id, floods.issue(floods.scope(key), method, exc))
    except Exception:  # a fake's bug must answer the call, not hang the client
        log.exception("%s failed", method)
        return error_result(msg_id, RpcError("INTERNAL_SERVER_ERROR", 500))
    return rpc_result(msg_id, body)
