"""Bearer API keys scoped to a workspace, and the admin token; compared in constant time."""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from starlette.requests import Request


class AuthError(Exception):
    """Missing or wrong credentials (answered 401 with a JSON body)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class ApiKeyAuth:
    """Resolves ``Authorization: Bearer <key>`` to the workspace the key belongs to."""

    keys: dict[str, str]

    def workspace(self, request: Request) -> str:
        key = bearer(request)
        for known, workspace in self.keys.items():
            if hmac.compare_digest(known.encode(), key.encode()):
                return workspace
        raise AuthError("unknown API key")


def bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise AuthError("missing bearer token: send Authorization: Bearer <key>")
    return value.strip()


def check_admin(request: Request, token: str | None) -> None:
    """Raise unless the request carries the admin token (no token configured: refuse all)."""
    given = bearer(request)
    if not token or not hmac.compare_digest(given.encode(), token.encode()):
        raise AuthError("admin token required")
