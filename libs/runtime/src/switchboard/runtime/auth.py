"""Bearer API keys scoped to a workspace and to what they may do, and the operator token;
compared in constant time.

Keys come from the ``api_keys`` bucket (see :mod:`switchboard.runtime.keys`; the app shell
resolves them before routing) or, for development, from the ``api_keys`` setting
(``key=workspace``, every scope).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends
from starlette.requests import Request

from switchboard.runtime.errors import SwitchboardRuntimeError
from switchboard.runtime.keys import ALL_SCOPES, Principal, Scope, parse_scopes

PRINCIPAL = "principal"  # request.state attribute the app shell fills from the key bucket


class AuthError(SwitchboardRuntimeError):
    """Missing or wrong credentials (answered 401)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ScopeError(SwitchboardRuntimeError):
    """A valid key without the scope a route needs (answered 403)."""

    def __init__(self, needed: Scope) -> None:
        super().__init__(f"this API key lacks the {needed.value!r} scope")
        self.needed = needed
        self.message = str(self)


def scope_for_method(method: str) -> Scope:
    """The rule every workspace route follows unless it declares otherwise: reads need
    ``read``, anything that changes or sends needs ``send``."""
    return Scope.READ if method.upper() in ("GET", "HEAD", "OPTIONS") else Scope.SEND


class ApiKeyAuth:
    """Resolves ``Authorization: Bearer <key>`` to the workspace the key belongs to."""

    def __init__(self, keys: dict[str, str] | None = None) -> None:
        self.keys = dict(keys or {})

    def principal(self, request: Request) -> Principal:
        key = bearer(request)
        resolved = getattr(request.state, PRINCIPAL, None)
        if isinstance(resolved, Principal):
            return resolved
        return self.config_principal(key) or _refuse()

    def config_principal(self, key: str) -> Principal | None:
        """A development key from settings, or None: ``key=workspace`` has every scope,
        ``key=workspace:read+send`` only those."""
        for known, value in self.keys.items():
            if hmac.compare_digest(known.encode(), key.encode()):
                workspace, _, scopes = value.partition(":")
                return Principal(
                    workspace, parse_scopes(scopes.split("+")) if scopes else ALL_SCOPES
                )
        return None

    def workspace(self, request: Request, scope: Scope | None = None) -> str:
        """The caller's workspace, once its key is known to hold ``scope`` (default: by
        method, see :func:`scope_for_method`)."""
        principal = self.principal(request)
        needed = scope or scope_for_method(request.method)
        if needed not in principal.scopes:
            raise ScopeError(needed)
        return principal.workspace


def request_workspace(request: Request) -> str:
    """A FastAPI dependency: the workspace of the request's API key, once it holds the scope
    the request's method needs (401/403 otherwise)."""
    auth: ApiKeyAuth = request.app.state.auth
    return auth.workspace(request)


Workspace = Annotated[str, Depends(request_workspace)]
"""A route parameter: the caller's workspace (see :func:`request_workspace`)."""


def require_scope(scope: Scope | str) -> Callable[[Request], str]:
    """A FastAPI dependency: the workspace of a key holding ``scope`` (401/403 otherwise).
    The route's OpenAPI operation says so (see :mod:`switchboard.runtime.openapi_security`)."""
    needed = Scope(scope)

    def dependency(request: Request) -> str:
        auth: ApiKeyAuth = request.app.state.auth
        return auth.workspace(request, needed)

    dependency.required_scope = needed  # type: ignore[attr-defined]
    return dependency


def require_operator(token: str | None) -> Callable[[Request], None]:
    """A FastAPI dependency: the operator token, nothing else (no token configured: refuse)."""

    def dependency(request: Request) -> None:
        check_admin(request, token)

    dependency.operator = True  # type: ignore[attr-defined]
    return dependency


def _refuse() -> Principal:
    raise AuthError("unknown, revoked or expired API key")


def bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise AuthError("missing bearer token: send Authorization: Bearer <key>")
    return value.strip()


def check_admin(request: Request, token: str | None) -> None:
    """Raise unless the request carries the operator token (no token configured: refuse all)."""
    given = bearer(request)
    if not token or not hmac.compare_digest(given.encode(), token.encode()):
        raise AuthError("admin token required")
