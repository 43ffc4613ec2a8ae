"""What each operation needs, in every service's OpenAPI document: a workspace API key with a
scope (``apiKey: [read]``), the operator token, or neither (provider webhooks, which carry
the provider's signature). Derived from the same dependencies that enforce it, so the
document cannot drift from the checks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.routing import BaseRoute

from switchboard.runtime.auth import scope_for_method

SCHEMES = {
    "apiKey": {
        "type": "http",
        "scheme": "bearer",
        "description": "A workspace API key (`switchboard keys create`); an operation lists "
        "the scope it needs: read, send or admin. A missing scope is 403.",
    },
    "operatorToken": {
        "type": "http",
        "scheme": "bearer",
        "description": "The operator token (SWITCHBOARD_ADMIN_TOKEN); /health/* needs none "
        "on the ops port (SWITCHBOARD_OPS_PORT), which serves nothing else.",
    },
}


def _marker(dependant: Dependant) -> tuple[str, str | None] | None:
    """("scope", name) or ("operator", None) from the route's dependencies, if declared."""
    for dep in dependant.dependencies:
        scope = getattr(dep.call, "required_scope", None)
        if scope is not None:
            return ("scope", str(scope))
        if getattr(dep.call, "operator", False):
            return ("operator", None)
        found = _marker(dep)
        if found is not None:
            return found
    return None


def requirement(path: str, dependant: Dependant, method: str) -> list[dict[str, list[str]]] | None:
    """The security requirement of one operation (None: not API-key or operator routes)."""
    marker = _marker(dependant)
    if marker is not None and marker[0] == "operator":
        return [{"operatorToken": []}]
    if marker is not None and marker[1] is not None:
        return [{"apiKey": [marker[1]]}]
    if path.startswith(("/admin/", "/health/")):
        # (/health/* needs no token on the ops port, where only Prometheus reaches it)
        return [{"operatorToken": []}]
    if path.startswith("/v1/"):
        # Workspace routes: the rule ApiKeyAuth.workspace applies (reads read, writes send).
        return [{"apiKey": [scope_for_method(method).value]}]
    return None


def declare(schema: dict[str, Any], routes: Sequence[BaseRoute]) -> None:
    """Add the security schemes and each operation's requirement to ``schema`` (routes of
    included routers too, with their prefixes)."""
    paths = schema.get("paths", {})
    declared = False
    for ctx in iter_route_contexts(routes):
        if not isinstance(ctx.original_route, APIRoute) or not ctx.include_in_schema:
            continue
        path = ctx.path_format or ""
        for method in ctx.methods or ():
            op = paths.get(path, {}).get(method.lower())
            needed = requirement(path, ctx.dependant, method)
            if op is not None and needed is not None:
                op["security"] = needed
                declared = True
    if declared:
        schema.setdefault("components", {}).setdefault("securitySchemes", {}).update(SCHEMES)
