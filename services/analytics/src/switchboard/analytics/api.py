"""The query API (JSON): one route per rollup, each for the workspace of the API key, with
time range, bucket size and the filters that apply to it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, Query, Request
from starlette.responses import JSONResponse, Response

from switchboard.analytics import queries
from switchboard.analytics.bootstrap import AnalyticsDeps
from switchboard.analytics.params import (
    Bucket,
    Filters,
    Window,
    limit_of,
    parse_filters,
    parse_window,
)
from switchboard.analytics.settings import AnalyticsSettings
from switchboard.runtime.app import ServiceApp
from switchboard.runtime.auth import ApiKeyAuth
from switchboard.runtime.db import Conn
from switchboard.runtime.deps import Wired


def _workspace(request: Request) -> str:
    """The workspace of the request's API key (401 otherwise)."""
    auth: ApiKeyAuth = request.app.state.auth
    return auth.workspace(request)


Workspace = Annotated[str, Depends(_workspace)]
From = Annotated[
    str | None,
    Query(alias="from", description="start (ISO 8601, UTC if no offset); default: 7 days ago"),
]
To = Annotated[str | None, Query(alias="to", description="end, exclusive (ISO 8601); default: now")]
BucketQ = Annotated[
    Bucket | None, Query(alias="bucket", description="hour (default, up to 31 days) or day")
]
Text = Annotated[str | None, Query(min_length=1, max_length=200)]
Limit = Annotated[int, Query(ge=1, le=500)]
BAD: dict[int | str, dict[str, Any]] = {
    400: {"description": "a parameter that cannot be used, named in the error"}
}

Read = Callable[[Conn, Window, Filters], Awaitable[dict[str, Any]]]


def add_routes(app: ServiceApp, deps: Wired[AnalyticsDeps], settings: AnalyticsSettings) -> None:
    """The rollup routes, reading through the dependencies the service built at start."""

    async def answer(request: Request, allowed: tuple[str, ...], read: Read) -> Response:
        q = request.query_params
        window = parse_window(q.get("from"), q.get("to"), q.get("bucket"), datetime.now(UTC))
        filters = parse_filters(q, allowed, extra=("limit",))
        async with deps().pool.acquire() as conn:
            return JSONResponse(await read(conn, window, filters))

    @app.get(
        "/v1/messages",
        tags=["rollups"],
        responses=BAD,
        summary="Inbound and outbound messages per bucket, channel and account",
    )
    async def messages(
        request: Request,
        ws: Workspace,
        _f: From = None,
        _t: To = None,
        _b: BucketQ = None,
        channel: Text = None,
        account: Text = None,
    ) -> Response:
        return await answer(
            request, ("channel", "account"), lambda c, w, f: queries.messages(c, ws, w, f)
        )

    @app.get(
        "/v1/deliveries",
        tags=["rollups"],
        responses=BAD,
        summary="Delivery outcomes and failure reasons per provider and account",
    )
    async def deliveries(
        request: Request,
        ws: Workspace,
        _f: From = None,
        _t: To = None,
        _b: BucketQ = None,
        provider: Text = None,
        account: Text = None,
        campaign: Text = None,
    ) -> Response:
        return await answer(
            request,
            ("provider", "account", "campaign"),
            lambda c, w, f: queries.deliveries(c, ws, w, f),
        )

    @app.get(
        "/v1/latency",
        tags=["rollups"],
        responses=BAD,
        summary="Send and end-to-end latency p50/p95/p99 per channel and bucket",
    )
    async def latency(
        request: Request,
        ws: Workspace,
        _f: From = None,
        _t: To = None,
        _b: BucketQ = None,
        channel: Text = None,
        account: Text = None,
    ) -> Response:
        return await answer(
            request, ("channel", "account"), lambda c, w, f: queries.latency(c, ws, w, f)
        )

    @app.get(
        "/v1/first-response",
        tags=["rollups"],
        responses=BAD,
        summary="First response time of conversations started in the range",
    )
    async def first_response(
        request: Request,
        ws: Workspace,
        _f: From = None,
        _t: To = None,
        _b: BucketQ = None,
        channel: Text = None,
        account: Text = None,
    ) -> Response:
        return await answer(
            request, ("channel", "account"), lambda c, w, f: queries.first_response(c, ws, w, f)
        )

    @app.get(
        "/v1/first-response/conversations",
        tags=["rollups"],
        responses=BAD,
        summary="First response time per conversation, most recent first",
    )
    async def first_response_conversations(
        request: Request,
        ws: Workspace,
        _f: From = None,
        _t: To = None,
        channel: Text = None,
        account: Text = None,
        limit: Limit = 100,
    ) -> Response:
        n = limit_of(request.query_params.get("limit"))
        return await answer(
            request,
            ("channel", "account"),
            lambda c, w, f: queries.first_response_conversations(c, ws, w, f, n),
        )

    @app.get(
        "/v1/funnel",
        tags=["rollups"],
        responses=BAD,
        summary="Lead funnel per stage and source, conversion rates over time",
    )
    async def funnel(
        request: Request,
        ws: Workspace,
        _f: From = None,
        _t: To = None,
        _b: BucketQ = None,
        source: Text = None,
        campaign: Text = None,
    ) -> Response:
        return await answer(
            request,
            ("source", "campaign"),
            lambda c, w, f: queries.funnel(c, ws, w, f, settings.lead_stages),
        )

    @app.get(
        "/v1/campaigns",
        tags=["rollups"],
        responses=BAD,
        summary="Campaign results: sends, deliveries, reads, leads, conversions",
    )
    async def campaigns(
        request: Request,
        ws: Workspace,
        _f: From = None,
        _t: To = None,
        _b: BucketQ = None,
        campaign: Text = None,
        provider: Text = None,
        account: Text = None,
    ) -> Response:
        return await answer(
            request,
            ("campaign", "provider", "account"),
            lambda c, w, f: queries.campaigns(c, ws, w, f),
        )

    @app.get(
        "/v1/flows/funnel",
        tags=["rollups"],
        responses=BAD,
        summary="Per flow: runs started, completion, hand-offs, reach and drop-off per step",
    )
    async def flow_funnel(
        request: Request,
        ws: Workspace,
        _f: From = None,
        _t: To = None,
        _b: BucketQ = None,
        flow: Text = None,
    ) -> Response:
        q = request.query_params
        window = parse_window(q.get("from"), q.get("to"), q.get("bucket"), datetime.now(UTC))
        parse_filters(q, (), extra=("flow",))  # refuses unknown parameters by name
        async with deps().pool.acquire() as conn:
            return JSONResponse(await queries.flow_funnel(conn, ws, window, flow))

    @app.get(
        "/v1/mtproto",
        tags=["rollups"],
        responses=BAD,
        summary="MTProto session health and backfill jobs (account = session id)",
    )
    async def mtproto(
        request: Request,
        ws: Workspace,
        _f: From = None,
        _t: To = None,
        _b: BucketQ = None,
        account: Text = None,
    ) -> Response:
        return await answer(request, ("account",), lambda c, w, f: queries.mtproto(c, ws, w, f))

    @app.get(
        "/v1/conversions",
        tags=["conversions"],
        responses=BAD,
        summary="Conversion signals reported to Meta CAPI, most recent first",
    )
    async def conversions(
        request: Request,
        ws: Workspace,
        _f: From = None,
        _t: To = None,
        limit: Limit = 100,
    ) -> Response:
        n = limit_of(request.query_params.get("limit"))
        return await answer(request, (), lambda c, w, f: queries.conversions(c, ws, w, n))
