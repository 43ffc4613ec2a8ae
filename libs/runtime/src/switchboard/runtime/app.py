"""The application shell every service shares: a FastAPI app whose lifespan runs the
service lifecycle, the health/metrics routes, and JSON errors for auth and validation."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from switchboard.runtime.auth import AuthError
from switchboard.runtime.http import Health, document_problems, error, invalid
from switchboard.runtime.logging import get_logger
from switchboard.runtime.metrics import HTTP_REQUESTS
from switchboard.runtime.ownership import NotFoundError
from switchboard.runtime.service import Runtime, service_lifespan
from switchboard.runtime.settings import ServiceSettings

log = get_logger(__name__)

FastPath = Callable[[Scope, Receive, Send], Awaitable[bool]]
# Machine codes of the framework's own HTTP errors (unknown route, wrong method, ...).
HTTP_CODES = {
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "too_large",
    415: "unsupported_media_type",
}


class ServiceApp(FastAPI):
    """A FastAPI app that knows its runtime once started (``app.runtime``).

    ``fast_path``, when set, sees every HTTP request before the FastAPI stack and may
    answer it (returning True): for a hot endpoint whose handler does its own error
    handling, the framework layers cost more than the work.
    """

    _runtime: Runtime | None = None
    fast_path: FastPath | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and _has_nul(scope):
            # No identifier, filter or cursor may hold NUL, and Postgres text cannot store it:
            # refuse at the edge instead of failing deep in a query (found by schemathesis).
            response = error(400, "invalid_request", "NUL characters are not allowed in URLs")
            await response(scope, receive, send)
            return
        if (
            self.fast_path is not None
            and scope["type"] == "http"
            and await self.fast_path(scope, receive, send)
        ):
            return
        await super().__call__(scope, receive, send)

    @property
    def runtime(self) -> Runtime:
        if self._runtime is None:
            raise RuntimeError("the service has not started")
        return self._runtime


def _has_nul(scope: Scope) -> bool:
    query: bytes = scope.get("query_string", b"")
    return "\x00" in scope.get("path", "") or b"%00" in query or b"\x00" in query


def service_app(
    *,
    service: str,
    settings: ServiceSettings,
    start: Callable[[Runtime], Awaitable[None]],
    title: str,
    description: str,
    migrations: list[tuple[str, str]] | None = None,
    schema: str | None = None,
) -> ServiceApp:
    """Build a service's app; ``start`` runs inside the lifespan once bus and db are up."""
    health = Health()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        assert isinstance(app, ServiceApp)
        async with service_lifespan(
            settings, service, start, migrations=migrations, schema=schema, health=health
        ) as runtime:
            app._runtime = runtime
            try:
                yield
            finally:
                app._runtime = None

    # FastAPI's native telemetry would wrap every request in a second server span around
    # the ones the runtime starts explicitly (webhooks continue the provider's trace into
    # NATS); it cost ~40% of a webhook's CPU, so the runtime's tracing stands alone.
    app = ServiceApp(
        title=title,
        version="1",
        description=description,
        lifespan=lifespan,
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.router.routes.extend(health.routes())

    # Every error answer is an RFC 9457 problem document (runtime/http.py `error()`), and the
    # OpenAPI document says so for every operation.
    @app.exception_handler(AuthError)
    async def _auth(_: Request, exc: AuthError) -> Response:
        return error(401, "unauthorized", exc.message)

    @app.exception_handler(NotFoundError)
    async def _not_found(_: Request, exc: NotFoundError) -> Response:
        # Another workspace's object and a missing one answer alike (tenancy, DESIGN law 8).
        return error(404, "not_found", exc.message)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> Response:
        # FastAPI's locations already start with where: body, query, path, header.
        return invalid(exc.errors(), prefix="")

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        # A bug, not bad input: log it with the traceback, count it (the API-errors alert),
        # and still answer a problem document.
        log.exception("unhandled error", method=request.method, path=request.url.path)
        route = getattr(request.scope.get("route"), "path", "unmatched")
        HTTP_REQUESTS.labels(route, request.method, "500").inc()
        return error(500, "internal_error", f"internal error ({type(exc).__name__}); see logs")

    @app.exception_handler(HTTPException)
    async def _http(_: Request, exc: HTTPException) -> Response:
        code = HTTP_CODES.get(exc.status_code, "http_error")
        return error(exc.status_code, code, str(exc.detail), headers=dict(exc.headers or {}))

    plain_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_problems(plain_openapi())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    return app
