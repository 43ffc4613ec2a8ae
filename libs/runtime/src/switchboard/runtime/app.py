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

from switchboard.runtime.auth import AuthError
from switchboard.runtime.http import Health, error
from switchboard.runtime.service import Runtime, service_lifespan
from switchboard.runtime.settings import ServiceSettings


class ServiceApp(FastAPI):
    """A FastAPI app that knows its runtime once started (``app.runtime``)."""

    _runtime: Runtime | None = None

    @property
    def runtime(self) -> Runtime:
        if self._runtime is None:
            raise RuntimeError("the service has not started")
        return self._runtime


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

    app = ServiceApp(title=title, version="1", description=description, lifespan=lifespan)
    app.router.routes.extend(health.routes())

    @app.exception_handler(AuthError)
    async def _auth(_: Request, exc: AuthError) -> Response:
        return error(401, "unauthorized", exc.message)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> Response:
        problems: list[dict[str, Any]] = [
            {"loc": [str(p) for p in e["loc"]], "msg": e["msg"]} for e in exc.errors()[:10]
        ]
        first = problems[0] if problems else {"loc": [], "msg": "invalid request"}
        return error(
            422, "invalid_request", f"{'.'.join(first['loc'])}: {first['msg']}", problems=problems
        )

    @app.exception_handler(HTTPException)
    async def _http(_: Request, exc: HTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return error(exc.status_code, code, str(exc.detail))

    return app
