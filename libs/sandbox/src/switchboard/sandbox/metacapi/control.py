"""Control endpoints of the CAPI fake, under `/_sandbox/metacapi/`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from switchboard.sandbox.httpjson import ControlError, query_bool, query_text, read_json, required
from switchboard.sandbox.metacapi.state import CapiEvent
from switchboard.sandbox.routes import RouteTable, route_table, settings_routes

if TYPE_CHECKING:
    from switchboard.sandbox.metacapi.provider import MetaCapiProvider


def _tokens(data: dict[str, Any]) -> list[str]:
    tokens = [str(t) for t in data.get("access_tokens") or []]
    if data.get("access_token"):
        tokens.insert(0, str(data["access_token"]))
    return tokens


def control_routes(provider: MetaCapiProvider) -> list[BaseRoute]:
    """Routes to configure pixels and tokens, read received events, tune validation."""
    state = provider.state

    def listing(request: Request, events: list[CapiEvent]) -> dict[str, Any]:
        include = query_bool(request, "include")
        duplicates = sum(1 for e in events if e.duplicate)
        return {
            "count": len(events),
            "unique": len(events) - duplicates,
            "duplicates": duplicates,
            "events": [e.to_json(include_event=include is not False) for e in events],
        }

    async def list_pixels(request: Request) -> Response:
        return JSONResponse({"pixels": [p.summary() for p in state.pixels.values()]})

    async def add_pixel(request: Request) -> Response:
        data = await read_json(request)
        pixel_id = required(data, "pixel_id")
        tokens = _tokens(data)
        if not tokens:
            raise ControlError("access_token (or access_tokens) is required")
        pixel = provider.add_pixel(pixel_id, tokens=tokens)
        return JSONResponse(pixel.summary(), status_code=201)

    async def get_pixel(request: Request) -> Response:
        pixel_id = request.path_params["pixel"]
        if pixel_id not in state.pixels:
            raise ControlError(f"no pixel {pixel_id!r}", 404)
        counts = provider.counts(pixel_id).to_json()
        tests = len(provider.test_events(pixel_id))
        return JSONResponse({**state.pixels[pixel_id].summary(), **counts, "test_events": tests})

    async def delete_pixel(request: Request) -> Response:
        if state.pixels.pop(request.path_params["pixel"], None) is None:
            raise ControlError("no such pixel", 404)
        return JSONResponse({"deleted": True})

    async def expire_token(request: Request) -> Response:
        data = await read_json(request)
        token = required(data, "access_token")
        try:
            provider.expire_token(token)
        except KeyError as exc:
            raise ControlError(f"unknown access token {token!r}", 404) from exc
        return JSONResponse({"expired": True})

    async def events(request: Request) -> Response:
        found = provider.events(
            query_text(request, "pixel"),
            event_name=query_text(request, "event_name"),
            duplicate=query_bool(request, "duplicate"),
        )
        return JSONResponse(listing(request, found))

    async def test_events(request: Request) -> Response:
        found = provider.test_events(
            query_text(request, "pixel"), code=request.query_params.get("code")
        )
        return JSONResponse(listing(request, found))

    async def clear_events(request: Request) -> Response:
        state.clear_events()
        return JSONResponse({"cleared": True})

    table: RouteTable = [
        ("/pixels", list_pixels, ["GET"]),
        ("/pixels", add_pixel, ["POST"]),
        ("/pixels/{pixel}", get_pixel, ["GET"]),
        ("/pixels/{pixel}", delete_pixel, ["DELETE"]),
        ("/tokens/expire", expire_token, ["POST"]),
        ("/events", events, ["GET"]),
        ("/events", clear_events, ["DELETE"]),
        ("/test_events", test_events, ["GET"]),
        *settings_routes(provider.config),
    ]
    return route_table(table)
