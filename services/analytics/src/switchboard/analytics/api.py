"""The query API (JSON): one route per rollup, each for the workspace of the API key, with
time range, bucket size and the filters that apply to it.

Each rollup is one row of ``ROLLUPS``: its path, its summary, the model of its query
parameters (which documents them in OpenAPI and names the filters it accepts) and the query
that reads it. One endpoint serves them all.
"""

# No ``from __future__ import annotations``: the endpoint's parameter model is a variable,
# and FastAPI must see it as a type when the route is made.

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Query, Request
from pydantic import BaseModel, Field
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
from switchboard.runtime.auth import Workspace
from switchboard.runtime.db import Conn
from switchboard.runtime.deps import Wired

Text = Annotated[str | None, Field(min_length=1, max_length=200)]
BAD: dict[int | str, dict[str, Any]] = {
    400: {"description": "a parameter that cannot be used, named in the error"}
}


class Period(BaseModel):
    """The time range every rollup reads."""

    from_: str | None = Field(
        None, alias="from", description="start (ISO 8601, UTC if no offset); default: 7 days ago"
    )
    to: str | None = Field(None, description="end, exclusive (ISO 8601); default: now")


class Bucketed(Period):
    """A time range cut into buckets."""

    bucket: Bucket | None = Field(None, description="hour (default, up to 31 days) or day")


class ByChannel(Bucketed):
    channel: Text = None
    account: Text = None


class ByProvider(Bucketed):
    provider: Text = None
    account: Text = None
    campaign: Text = None


class ByCampaign(Bucketed):
    campaign: Text = None
    provider: Text = None
    account: Text = None


class BySource(Bucketed):
    source: Text = None
    campaign: Text = None


class BySession(Bucketed):
    account: Text = None


class ByFlow(Bucketed):
    flow: Text = None


class Recent(Period):
    limit: int = Field(100, ge=1, le=500)


class RecentByChannel(Period):
    channel: Text = None
    account: Text = None
    limit: int = Field(100, ge=1, le=500)


_NOT_FILTERS = frozenset(("from_", "to", "bucket", "limit", "flow"))


def filters_of(model: type[BaseModel]) -> tuple[str, ...]:
    """The filters a rollup's parameter model accepts, in its order."""
    return tuple(name for name in model.model_fields if name not in _NOT_FILTERS)


@dataclass(frozen=True, slots=True)
class Asked:
    """What a rollup's query gets: the request's window, filters, limit and flow."""

    window: Window
    filters: Filters
    limit: int
    flow: str | None


Read = Callable[[Conn, str, Asked, AnalyticsSettings], Awaitable[dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class Rollup:
    name: str  # the endpoint's name in OpenAPI's operationId
    path: str
    summary: str
    params: type[BaseModel]
    read: Read
    tag: str = "rollups"


ROLLUPS = (
    Rollup(
        "messages",
        "/v1/messages",
        "Inbound and outbound messages per bucket, channel and account",
        ByChannel,
        lambda c, ws, q, s: queries.messages(c, ws, q.window, q.filters),
    ),
    Rollup(
        "deliveries",
        "/v1/deliveries",
        "Delivery outcomes and failure reasons per provider and account",
        ByProvider,
        lambda c, ws, q, s: queries.deliveries(c, ws, q.window, q.filters),
    ),
    Rollup(
        "latency",
        "/v1/latency",
        "Send and end-to-end latency p50/p95/p99 per channel and bucket",
        ByChannel,
        lambda c, ws, q, s: queries.latency(c, ws, q.window, q.filters),
    ),
    Rollup(
        "first_response",
        "/v1/first-response",
        "First response time of conversations started in the range",
        ByChannel,
        lambda c, ws, q, s: queries.first_response(c, ws, q.window, q.filters),
    ),
    Rollup(
        "first_response_conversations",
        "/v1/first-response/conversations",
        "First response time per conversation, most recent first",
        RecentByChannel,
        lambda c, ws, q, s: queries.first_response_conversations(
            c, ws, q.window, q.filters, q.limit
        ),
    ),
    Rollup(
        "funnel",
        "/v1/funnel",
        "Lead funnel per stage and source, conversion rates over time",
        BySource,
        lambda c, ws, q, s: queries.funnel(c, ws, q.window, q.filters, s.lead_stages),
    ),
    Rollup(
        "campaigns",
        "/v1/campaigns",
        "Campaign results: sends, deliveries, reads, leads, conversions",
        ByCampaign,
        lambda c, ws, q, s: queries.campaigns(c, ws, q.window, q.filters),
    ),
    Rollup(
        "flow_funnel",
        "/v1/flows/funnel",
        "Per flow: runs started, completion, hand-offs, reach and drop-off per step",
        ByFlow,
        lambda c, ws, q, s: queries.flow_funnel(c, ws, q.window, q.flow),
    ),
    Rollup(
        "mtproto",
        "/v1/mtproto",
        "MTProto session health and backfill jobs (account = session id)",
        BySession,
        lambda c, ws, q, s: queries.mtproto(c, ws, q.window, q.filters),
    ),
    Rollup(
        "conversions",
        "/v1/conversions",
        "Conversion signals reported to Meta CAPI, most recent first",
        Recent,
        lambda c, ws, q, s: queries.conversions(c, ws, q.window, q.limit),
        tag="conversions",
    ),
)


def add_routes(app: ServiceApp, deps: Wired[AnalyticsDeps], settings: AnalyticsSettings) -> None:
    """The rollup routes, reading through the dependencies the service built at start."""
    for rollup in ROLLUPS:
        _add(app, deps, settings, rollup)


def _add(
    app: ServiceApp, deps: Wired[AnalyticsDeps], settings: AnalyticsSettings, rollup: Rollup
) -> None:
    allowed = filters_of(rollup.params)
    extra = ("flow",) if "flow" in rollup.params.model_fields else ("limit",)
    # A type made at run time, for FastAPI to read; mypy cannot follow it.
    Params = Annotated[rollup.params, Query()]  # type: ignore[name-defined]  # noqa: N806

    async def endpoint(request: Request, ws: Workspace, _params: Params) -> Response:
        # The model documented and validated the parameters; these read them as the
        # rollups always have, refusing the ones this view cannot apply by name (400).
        q = request.query_params
        window = parse_window(q.get("from"), q.get("to"), q.get("bucket"), datetime.now(UTC))
        filters = parse_filters(q, allowed, extra=extra)
        query = Asked(window, filters, limit_of(q.get("limit")), q.get("flow"))
        async with deps().pool.acquire() as conn:
            return JSONResponse(await rollup.read(conn, ws, query, settings))

    app.get(
        rollup.path, name=rollup.name, tags=[rollup.tag], responses=BAD, summary=rollup.summary
    )(endpoint)
