"""The CRM service's composition root."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Query, Request
from starlette.responses import JSONResponse, Response

from switchboard.crm import projector, queries
from switchboard.crm.settings import CrmSettings
from switchboard.runtime.app import ServiceApp, service_app
from switchboard.runtime.auth import ApiKeyAuth
from switchboard.runtime.db import load_migrations
from switchboard.runtime.http import error
from switchboard.runtime.projection import Projection
from switchboard.runtime.service import Runtime

SCHEMA = "crm"


def _workspace(request: Request) -> str:
    """The workspace of the request's API key (401 otherwise)."""
    auth: ApiKeyAuth = request.app.state.auth
    return auth.workspace(request)


Workspace = Annotated[str, Depends(_workspace)]
Limit = Annotated[int, Query(ge=1, le=500)]


def create_app(settings: CrmSettings) -> ServiceApp:
    """Build the CRM app; connections are made by its lifespan, never at import."""
    auth = ApiKeyAuth(settings.api_keys)
    projections: dict[str, Projection] = {}

    async def start(rt: Runtime) -> None:
        assert rt.pool is not None
        projection = Projection(
            name=projector.PROJECTION,
            schema=SCHEMA,
            stream="CONV",
            filter_subjects=projector.SUBJECTS,
            apply=projector.apply_batch,
            bus=rt.bus,
            pool=rt.pool,
            batch=settings.projection_batch,
            stop=rt.stop,
        )
        projections[projection.name] = projection
        rt.spawn("projection-conversations", projection.run)

    app = service_app(
        service="crm",
        settings=settings,
        start=start,
        title="Switchboard CRM",
        description="Contacts, conversations and leads projected from the event streams.",
        migrations=load_migrations("switchboard.crm"),
        schema=SCHEMA,
    )

    app.state.auth = auth

    @app.get("/v1/conversations", summary="Conversations, most recent first")
    async def conversations(
        ws: Workspace,
        limit: Limit = 50,
        cursor: str | None = None,
        channel: str | None = None,
        account: str | None = None,
    ) -> Response:
        async with _pool(app).acquire() as conn:
            try:
                page = await queries.list_conversations(
                    conn, ws, limit=limit, cursor=cursor, channel=channel, account=account
                )
            except queries.BadCursorError as exc:
                return error(400, "bad_cursor", str(exc))
        return JSONResponse(page)

    @app.get("/v1/conversations/{conversation_id}/messages", summary="Messages, oldest first")
    async def messages(
        conversation_id: str, ws: Workspace, limit: Limit = 100, cursor: str | None = None
    ) -> Response:
        async with _pool(app).acquire() as conn:
            if not await queries.conversation_exists(conn, ws, conversation_id):
                return error(404, "not_found", f"no conversation {conversation_id!r}")
            try:
                page = await queries.list_messages(
                    conn, ws, conversation_id, limit=limit, cursor=cursor
                )
            except queries.BadCursorError as exc:
                return error(400, "bad_cursor", str(exc))
        return JSONResponse(page)

    return app


def _pool(app: ServiceApp) -> Any:
    pool = app.runtime.pool
    assert pool is not None
    return pool
