"""Control-route plumbing every provider shares: guarded endpoints and route tables.

A control endpoint raises `ControlError` (or ValueError/TypeError for bad values) and the
guard turns it into `{"error": ...}` with its status; a provider that raises its own
exceptions passes a `translate` hook that maps them to an answer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from switchboard.sandbox.httpjson import ControlError, error_json, read_json
from switchboard.sandbox.ratelimit import RateLimiter

Endpoint = Callable[[Request], Awaitable[Response]]
RouteTable = list[tuple[str, Endpoint, list[str]]]
# Maps a provider's own exception to an answer; None lets the guard's defaults decide.
Translate = Callable[[Exception], ControlError | Response | None]


def guard(endpoint: Endpoint, translate: Translate | None = None) -> Endpoint:
    """The endpoint with control errors and bad values answered as `{"error": ...}`."""

    async def guarded(request: Request) -> Response:
        try:
            return await endpoint(request)
        except ControlError as exc:
            return error_json(exc)
        except Exception as exc:
            answer = translate(exc) if translate is not None else None
            if isinstance(answer, Response):
                return answer
            if isinstance(answer, ControlError):
                return error_json(answer)
            if isinstance(exc, ValueError | TypeError):
                return error_json(ControlError(str(exc)))
            raise

    return guarded


def route_table(table: RouteTable, translate: Translate | None = None) -> list[BaseRoute]:
    """Starlette routes of a `(path, endpoint, methods)` table, every endpoint guarded."""
    return [
        Route(path, guard(endpoint, translate), methods=methods)
        for path, endpoint, methods in table
    ]


class JsonSettings(Protocol):
    """Something the control API shows as JSON and updates from a partial JSON object."""

    def to_json(self) -> dict[str, Any]: ...

    def update(self, data: dict[str, Any]) -> None: ...


def limits_routes(limits: Callable[[], JsonSettings], limiter: RateLimiter) -> RouteTable:
    """`/limits`: read the rate limits, or change them and start every key afresh."""

    async def get_limits(request: Request) -> Response:
        return JSONResponse(limits().to_json())

    async def set_limits(request: Request) -> Response:
        limits().update(await read_json(request))
        limiter.reset()
        return JSONResponse(limits().to_json())

    return [("/limits", get_limits, ["GET"]), ("/limits", set_limits, ["PUT", "POST"])]


def settings_routes(
    settings: JsonSettings,
    limiter: RateLimiter | None = None,
    applied: Callable[[], None] | None = None,
    methods: tuple[str, ...] = ("PUT", "POST"),
) -> RouteTable:
    """`/settings`: read the provider's settings, or update them; changed limits start every
    key afresh, and `applied` pushes the rest into live state (e.g. running webhook queues)."""

    async def get_settings(request: Request) -> Response:
        return JSONResponse(settings.to_json())

    async def set_settings(request: Request) -> Response:
        data = await read_json(request)
        settings.update(data)
        if limiter is not None and "limits" in data:
            limiter.reset()
        if applied is not None:
            applied()
        return JSONResponse(settings.to_json())

    return [("/settings", get_settings, ["GET"]), ("/settings", set_settings, list(methods))]
