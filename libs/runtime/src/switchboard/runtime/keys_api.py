"""The operator's API for API keys, on every service (operator token): create (the key is
shown once), list, rotate and revoke. The same store backs ``switchboard keys``."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Annotated

from fastapi import Body, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.responses import JSONResponse, Response

from switchboard.runtime.auth import check_admin
from switchboard.runtime.http import error
from switchboard.runtime.keys import KEY_ID, AlreadyRotatedError, KeyStore, Scope, parse_scopes

if TYPE_CHECKING:
    from switchboard.runtime.app import ServiceApp

KeyId = Annotated[str, Path(pattern=KEY_ID.pattern)]


class NewKey(BaseModel):
    model_config = ConfigDict(extra="forbid")

    workspace_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    scopes: list[Scope] = Field(min_length=1)
    expires_at: datetime | None = Field(None, description="with a time zone; none: no expiry")
    name: str | None = Field(None, max_length=200, description="what the key is for")

    @field_validator("expires_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("needs a time zone, e.g. 2027-01-01T00:00:00Z")
        return value


class Rotation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    grace_s: int = Field(0, ge=0, le=30 * 86400, description="how long the old key still works")


def _operator_store(request: Request) -> KeyStore | None:
    """The key store, for the operator token only (None: stored keys are off)."""
    app: ServiceApp = request.app
    check_admin(request, app.admin_token)
    return app.key_cache.store if app.key_cache is not None else None


_operator_store.operator = True  # type: ignore[attr-defined]  # for the OpenAPI document
Store = Annotated[KeyStore | None, Depends(_operator_store)]


def key_admin_routes(app: ServiceApp) -> None:
    """Add ``/admin/api-keys`` to the app."""

    def off() -> Response:
        return error(503, "keys_off", "stored API keys are off: set SWITCHBOARD_API_KEY_PEPPER")

    @app.post("/admin/api-keys", tags=["admin"], status_code=201,
              summary="Create an API key (shown once in the answer, never again)")  # fmt: skip
    async def create(store: Store, body: Annotated[NewKey, Body()]) -> Response:
        if store is None:
            return off()
        scopes = parse_scopes(s.value for s in body.scopes)
        record, key = await store.create(
            body.workspace_id, scopes, expires_at=body.expires_at, name=body.name
        )
        return JSONResponse({**record.public(), "key": key}, 201)

    @app.get("/admin/api-keys", tags=["admin"], summary="API keys (never the keys themselves)")
    async def list_keys(
        store: Store, workspace_id: Annotated[str | None, Query(max_length=64)] = None
    ) -> Response:
        if store is None:
            return off()
        records = await store.list(workspace_id)
        return JSONResponse({"items": [r.public() for r in records]})

    @app.post("/admin/api-keys/{key_id}/rotate", tags=["admin"],
              summary="Replace a key: a new key now, the old one ends after grace_s",
              responses={404: {"description": "no such key, or revoked or expired"},
                         409: {"description": "already rotated: names its successor"}})  # fmt: skip
    async def rotate(
        store: Store, key_id: KeyId, body: Annotated[Rotation | None, Body()] = None
    ) -> Response:
        if store is None:
            return off()
        grace = timedelta(seconds=body.grace_s if body else 0)
        try:
            rotated = await store.rotate(key_id, grace)
        except AlreadyRotatedError as exc:
            return error(409, "already_rotated", str(exc), successor=exc.successor)
        if rotated is None:
            return error(404, "not_found", f"no usable API key {key_id!r}")
        record, key = rotated
        return JSONResponse({**record.public(), "key": key}, 201)

    @app.delete("/admin/api-keys/{key_id}", tags=["admin"],
                summary="Revoke a key: it authenticates nothing from now on")  # fmt: skip
    async def revoke(store: Store, key_id: KeyId) -> Response:
        if store is None:
            return off()
        record = await store.revoke(key_id)
        if record is None:
            return error(404, "not_found", f"no API key {key_id!r}")
        return JSONResponse(record.public())
