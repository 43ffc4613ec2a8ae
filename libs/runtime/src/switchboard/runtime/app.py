"""The application shell every service shares: a FastAPI app whose lifespan runs the
service lifecycle, the health/metrics routes (apart on the ops port), API keys from the
key bucket, one request body limit, and JSON errors for auth, scopes and validation."""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, params
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from switchboard.events.streams import API_KEYS
from switchboard.runtime import identity, openapi_security
from switchboard.runtime.auth import PRINCIPAL, AuthError, ScopeError
from switchboard.runtime.bus import PayloadTooLargeError
from switchboard.runtime.deps import NotStartedError
from switchboard.runtime.errors import SwitchboardRuntimeError
from switchboard.runtime.http import Health, ProblemError, document_problems, error, invalid
from switchboard.runtime.keys import PREFIX, KeyCache, KeyStore
from switchboard.runtime.keys_api import key_admin_routes
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
    handling, authentication and body limit, the framework layers cost more than the work.
    """

    _runtime: Runtime | None = None
    fast_path: FastPath | None = None
    # The operations ``fast_path`` answers: documented in OpenAPI, never routed (the fast
    # path takes their requests before routing, so a routed handler could never run).
    fast_path_routes: tuple[APIRoute, ...] = ()
    key_cache: KeyCache | None = None
    ops_port: int | None = None
    admin_token: str | None = None
    max_body_bytes: int = 1024 * 1024

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        refusal = self._refusal(scope)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        # The fast path's endpoints authenticate themselves (provider secrets, never API
        # keys) and limit their own bodies, so it goes before both: resolving a key and
        # wrapping ``receive`` cost a webhook ~4 us of its ~74 (in-process, timeit).
        if self.fast_path is not None and await self.fast_path(scope, receive, send):
            return
        receive = _limited(receive, self.max_body_bytes)
        try:
            await self._resolve_key(scope)
        except Exception as exc:
            # Our own infrastructure (the key bucket), not the caller's fault: retryable.
            log.warning("API key lookup failed", error=str(exc))
            unavailable = error(503, "unavailable", "API keys cannot be checked right now",
                                headers={"Retry-After": "1"})  # fmt: skip
            await unavailable(scope, receive, send)
            return
        await super().__call__(scope, receive, send)

    def _refusal(self, scope: Scope) -> Response | None:
        """What the edge answers by itself: bad URLs, oversized bodies, ops routes."""
        if _has_nul(scope):
            # No identifier, filter or cursor may hold NUL, and Postgres text cannot store it:
            # refuse at the edge instead of failing deep in a query (found by schemathesis).
            return error(400, "invalid_request", "NUL characters are not allowed in URLs")
        length = _header(scope, b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body_bytes):
            return _too_large(self.max_body_bytes)
        return self._ops_refusal(scope)

    def _ops_refusal(self, scope: Scope) -> Response | None:
        """``/metrics`` and ``/health/*`` name accounts and workspaces: with an ops port they
        exist only there (and the ops port serves nothing else but the probes); without one
        they need the operator token."""
        path: str = scope.get("path", "")
        ops = is_ops_path(path)
        if self.ops_port is not None:
            server = scope.get("server") or ("", None)
            on_ops_port = server[1] == self.ops_port
            if ops != on_ops_port and path not in PROBES:
                return error(404, "not_found", f"no route {path}")
            return None
        if ops and scope.get("method") in ("GET", "HEAD"):
            # (other methods go on to the router's 405: they read nothing)
            given = _bearer(scope)
            token = self.admin_token
            if not token or not hmac.compare_digest(given.encode(), token.encode()):
                return error(401, "unauthorized", "operator token required (or use the ops port)")
        return None

    async def _resolve_key(self, scope: Scope) -> None:
        """Authenticate a stored API key before routing (the lookup may need the bucket, and
        route dependencies are synchronous); routes then read ``request.state.principal``."""
        if self.key_cache is None:
            return
        key = _bearer(scope)
        if not key.startswith(PREFIX):
            return
        principal = await self.key_cache.authenticate(key)
        if principal is not None:
            scope.setdefault("state", {})[PRINCIPAL] = principal

    _secured: dict[str, Any] | None = None

    def openapi(self) -> dict[str, Any]:
        """FastAPI's document, with what each operation needs (scope or operator token)."""
        schema = super().openapi()  # regenerated by FastAPI when routes were added
        if schema is not self._secured:
            self._document_fast_path(schema)
            openapi_security.declare(schema, self.routes)
            self._secured = schema
        return schema

    def _document_fast_path(self, schema: dict[str, Any]) -> None:
        """Add the fast path's operations to ``schema``, described by FastAPI as any route."""
        if not self.fast_path_routes:
            return
        extra = get_openapi(title=self.title, version=self.version, routes=self.fast_path_routes)
        paths = schema.setdefault("paths", {})
        for path, operations in extra.get("paths", {}).items():
            paths.setdefault(path, {}).update(operations)
        more = extra.get("components", {}).get("schemas", {})
        if more:
            schema.setdefault("components", {}).setdefault("schemas", {}).update(more)

    @property
    def runtime(self) -> Runtime:
        if self._runtime is None:
            raise RuntimeError("the service has not started")
        return self._runtime


PROBES = frozenset({"/healthz", "/readyz"})


def is_ops_path(path: str) -> bool:
    return path == "/metrics" or path.startswith("/health/")


class BodyTooLargeError(SwitchboardRuntimeError, HTTPException):
    """A request body over the limit, noticed while it streams in (no Content-Length)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is over the limit of {limit} bytes")
        self.limit = limit


def _too_large(limit: int) -> Response:
    return error(413, "too_large", f"the request body is over the limit of {limit} bytes")


def _limited(receive: Receive, limit: int) -> Receive:
    """``receive`` that raises :class:`BodyTooLargeError` once the body passes ``limit``."""
    seen = 0

    async def limited() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise BodyTooLargeError(limit)
        return message

    return limited


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return bytes(value).decode("latin-1").strip()
    return None


def _bearer(scope: Scope) -> str:
    scheme, _, value = (_header(scope, b"authorization") or "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


def _has_nul(scope: Scope) -> bool:
    query: bytes = scope.get("query_string", b"")
    return "\x00" in scope.get("path", "") or b"%00" in query or b"\x00" in query


def not_json(request: Request, errors: Sequence[Mapping[str, Any]]) -> Response | None:
    """A 415 naming the media type when a JSON body came as something else: FastAPI reads
    only a JSON type (or none) as JSON, so ``curl -d`` (a form type) got "body: Input should
    be a valid dictionary", which names no cause."""
    body = getattr(request.scope.get("route"), "body_field", None)
    if body is None or isinstance(body.field_info, params.Form):  # a form or file route
        return None
    given = request.headers.get("content-type", "")
    kind = given.split(";")[0].strip().lower()
    if not kind or kind == "application/json" or kind.endswith("+json"):
        return None
    if not any(tuple(e.get("loc", ())) == ("body",) for e in errors):
        return None
    return error(
        415,
        "unsupported_media_type",
        f"the body is read as JSON: send it with Content-Type: application/json, not {kind}",
    )


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
    # Every service keys what it derives from personal identifiers alike (the data subjects
    # ingest seals under are the ones the CRM's erasure shreds; claim keys flows looks up).
    identity.configure(settings.identity_pepper.get_secret_value())
    health = Health()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        assert isinstance(app, ServiceApp)
        async with service_lifespan(
            settings, service, start, migrations=migrations, schema=schema, health=health
        ) as runtime:
            app._runtime = runtime
            await _start_key_cache(app, runtime)
            try:
                yield
            finally:
                app._runtime = None
                app.key_cache = None

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
    app.ops_port = settings.ops_port
    app.admin_token = settings.admin_token.get_secret_value() if settings.admin_token else None
    app.max_body_bytes = settings.max_body_bytes
    if settings.api_key_pepper is not None:  # without it no stored key can be checked
        key_admin_routes(app)

    @app.exception_handler(ScopeError)
    async def _scope(_: Request, exc: ScopeError) -> Response:
        return error(403, "forbidden", exc.message, scope=exc.needed.value)

    # Every error answer is an RFC 9457 problem document (runtime/http.py `error()`), and the
    # OpenAPI document says so for every operation.
    @app.exception_handler(AuthError)
    async def _auth(_: Request, exc: AuthError) -> Response:
        return error(401, "unauthorized", exc.message)

    @app.exception_handler(NotStartedError)
    async def _not_started(_: Request, exc: NotStartedError) -> Response:
        return error(503, "unavailable", str(exc), headers={"Retry-After": "1"})

    @app.exception_handler(NotFoundError)
    async def _not_found(_: Request, exc: NotFoundError) -> Response:
        # Another workspace's object and a missing one answer alike (tenancy, DESIGN law 8).
        return error(404, "not_found", exc.message)

    @app.exception_handler(ProblemError)
    async def _problem(_: Request, exc: ProblemError) -> Response:
        return exc.response

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        if (refused := not_json(request, exc.errors())) is not None:
            return refused
        # FastAPI's locations already start with where: body, query, path, header.
        return invalid(exc.errors(), prefix="", data={"body": exc.body})

    @app.exception_handler(PayloadTooLargeError)
    async def _too_large_for_the_bus(request: Request, exc: PayloadTooLargeError) -> Response:
        # Input within the body limit that makes a message over the server's max_payload
        # (sealing adds a third): refused before anything was sent. Fields with limits of
        # their own say which one (422); this is the net under the rest.
        log.warning("request too large for the bus", path=request.url.path, error=str(exc))
        return error(
            413,
            "too_large",
            f"the request makes a message of {exc.size} bytes, over the bus's limit of "
            f"{exc.limit}; send less",
        )

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


async def _start_key_cache(app: ServiceApp, runtime: Runtime) -> None:
    """Follow the key bucket (when a pepper is configured: without it no stored key can be
    checked, and only the api_keys setting authenticates)."""
    pepper = runtime.settings.api_key_pepper
    if pepper is None:
        log.info("stored API keys off: set SWITCHBOARD_API_KEY_PEPPER to use them")
        return
    kv = await runtime.bus.kv(API_KEYS.name)
    store = KeyStore(kv, pepper.get_secret_value().encode(), runtime.clock.utcnow)
    cache = KeyCache(store)
    runtime.spawn("api-keys", lambda: cache.run(runtime.stop))
    app.key_cache = cache
