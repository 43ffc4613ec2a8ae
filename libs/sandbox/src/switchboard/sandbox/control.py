"""The sandbox control API under `/_sandbox/`: state, reset, records and faults.

Provider-specific routes (accounts, traffic, limits) are mounted at `/_sandbox/<provider>/`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount

from switchboard.sandbox.faults import FaultSpec
from switchboard.sandbox.httpjson import (
    ControlError,
    listing,
    query_bool,
    query_float,
    query_int,
    query_text,
    read_json,
)
from switchboard.sandbox.mtproto_wire.control import wire_control_routes
from switchboard.sandbox.routes import RouteTable, route_table

if TYPE_CHECKING:
    from switchboard.sandbox.app import Sandbox

_FAULT_KEYS = set(FaultSpec.__dataclass_fields__) | {"provider", "account", "outage_seconds"}

# The query filters of /requests and /deliveries (besides `account`), each with how it is
# read: the keywords of Recorder.requests and Recorder.deliveries.
Filters = dict[str, Callable[[Request, str], Any]]
_REQUEST_FILTERS: Filters = {
    "provider": query_text,
    "method": query_text,
    "chat": query_text,
    "status": query_int,
    "ok": query_bool,
    "since": query_float,
    "after": query_int,
    "fault": query_text,
}
_DELIVERY_FILTERS: Filters = {
    "provider": query_text,
    "url": query_text,
    "ok": query_bool,
    "after": query_int,
}


def control_routes(sandbox: Sandbox) -> list[BaseRoute]:
    """All `/_sandbox` routes of this sandbox (to be mounted at `/_sandbox`)."""
    core = sandbox.core

    def account_filter(request: Request) -> str | None:
        account = request.query_params.get("account")
        provider = request.query_params.get("provider")
        if account and provider in sandbox.providers:
            return sandbox.providers[provider].normalize_account(account)
        return account or None

    def filters(request: Request, table: Filters) -> dict[str, Any]:
        """The filters a listing's query gives, read as `table` says, plus the account."""
        found = {name: read(request, name) for name, read in table.items()}
        return found | {"account": account_filter(request)}

    async def health(request: Request) -> Response:
        return JSONResponse({"ok": True, "providers": sorted(sandbox.providers)})

    async def state(request: Request) -> Response:
        return JSONResponse({name: p.snapshot() for name, p in sandbox.providers.items()})

    async def reset(request: Request) -> Response:
        await sandbox.reset()
        return JSONResponse({"reset": True})

    async def requests(request: Request) -> Response:
        found = core.recorder.requests(**filters(request, _REQUEST_FILTERS))
        limit = query_int(request, "limit")
        if limit is not None:
            found = found[-limit:] if limit > 0 else []
        return listing("requests", [r.to_json() for r in found])

    async def clear_requests(request: Request) -> Response:
        core.recorder.clear()
        return JSONResponse({"cleared": True})

    async def deliveries(request: Request) -> Response:
        found = core.recorder.deliveries(**filters(request, _DELIVERY_FILTERS))
        return listing("deliveries", [d.to_json() for d in found])

    async def list_faults(request: Request) -> Response:
        return JSONResponse({"faults": [r.to_json() for r in core.faults.rules()]})

    async def set_fault(request: Request) -> Response:
        data = await read_json(request)
        unknown = set(data) - _FAULT_KEYS
        if unknown:
            raise ControlError(f"unknown fault fields: {sorted(unknown)}")
        provider = data.get("provider")
        if provider is not None and provider not in sandbox.providers:
            raise ControlError(f"unknown provider {provider!r}")
        if provider is not None and data.get("account") is not None:
            data["account"] = sandbox.providers[provider].normalize_account(str(data["account"]))
        rule = core.faults.set_from_json(data)
        return JSONResponse(rule.to_json(), status_code=201)

    async def clear_faults(request: Request) -> Response:
        core.faults.clear_all()
        return JSONResponse({"cleared": True})

    async def delete_fault(request: Request) -> Response:
        if not core.faults.remove(request.path_params["rule"]):
            raise ControlError("no such fault rule", 404)
        return JSONResponse({"deleted": True})

    table: RouteTable = [
        ("/health", health, ["GET"]),
        ("/state", state, ["GET"]),
        ("/reset", reset, ["POST"]),
        ("/requests", requests, ["GET"]),
        ("/requests", clear_requests, ["DELETE"]),
        ("/deliveries", deliveries, ["GET"]),
        ("/faults", list_faults, ["GET"]),
        ("/faults", set_fault, ["POST", "PUT"]),
        ("/faults", clear_faults, ["DELETE"]),
        ("/faults/{rule:path}", delete_fault, ["DELETE"]),
    ]
    routes = route_table(table)
    routes.append(Mount("/mtproto/wire", routes=wire_control_routes(sandbox.mtproto_wire)))
    routes += [
        Mount(f"/{name}", routes=provider.control_routes())
        for name, provider in sandbox.providers.items()
    ]
    return routes
