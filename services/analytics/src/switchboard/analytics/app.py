"""The analytics service's composition root: one checkpointed projection per stream, the
conversion publisher, the gauges, the query API and the dashboard."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from types import ModuleType
from typing import Unpack

from fastapi import Request
from starlette.responses import Response

from switchboard.analytics import (
    conv_projector,
    crm_projector,
    dashboard,
    delivery_projector,
    flows_projector,
    mtproto_projector,
)
from switchboard.analytics.api import add_routes
from switchboard.analytics.bootstrap import AnalyticsDeps, bootstrap
from switchboard.analytics.context import Context, ConversionTargets, Pixels
from switchboard.analytics.items import Item, prepare
from switchboard.analytics.ledger import run_publisher
from switchboard.analytics.metrics import refresh_gauges
from switchboard.analytics.params import BadParameterError
from switchboard.analytics.settings import AnalyticsSettings
from switchboard.analytics.signin import SignInStore
from switchboard.runtime import pii
from switchboard.runtime.app import ServiceApp, service_app
from switchboard.runtime.auth import ApiKeyAuth
from switchboard.runtime.db import Conn, load_migrations
from switchboard.runtime.deps import Wired
from switchboard.runtime.http import error
from switchboard.runtime.logging import get_logger
from switchboard.runtime.projection import Projection, Site
from switchboard.runtime.service import Runtime

log = get_logger(__name__)
SCHEMA = "analytics"
PROJECTORS: tuple[ModuleType, ...] = (
    conv_projector,
    delivery_projector,
    crm_projector,
    mtproto_projector,
    flows_projector,
)


def build_projection(module: ModuleType, ctx: Context, **site: Unpack[Site]) -> Projection:
    """The checkpointed projection of one projector module (service and rebuild alike)."""

    async def apply(conn: Conn, items: list[Item]) -> None:
        await module.apply(conn, items, ctx)

    return Projection.of_projector(module, apply, prepare, **site)


def create_app(settings: AnalyticsSettings) -> ServiceApp:
    """Build the analytics app; connections are made by its lifespan, never at import."""
    deps: Wired[AnalyticsDeps] = Wired("analytics")

    async def start(rt: Runtime) -> None:
        assert rt.pool is not None
        await pii.start(rt)  # the projections open sealed personal data
        deps.set(await bootstrap(rt, settings))
        pixels = Pixels(await rt.bus.kv("accounts"))
        rt.spawn("pixels-watch", lambda: pixels.run(rt.stop))
        async with asyncio.timeout(10):
            await pixels.loaded.wait()  # a workspace's pixel is known before its leads
        ctx = Context(targets=ConversionTargets.of(settings, pixels, rt.clock.utcnow))
        site = rt.site(SCHEMA, settings.projection_batch)
        rt.run_projections(build_projection(m, ctx, **site) for m in PROJECTORS)
        pool, bus = rt.pool, rt.bus
        rt.spawn("conversions", lambda: run_publisher(pool, bus, rt.stop))
        rt.spawn("gauges", lambda: refresh_gauges(pool, rt.stop, settings.metrics_refresh_s))
        if settings.conversion_pixel is None:
            log.info(
                "no deployment-wide pixel: conversions go to the pixel accounts of the "
                "workspaces that set settings.conversion_events"
            )

    app = service_app(
        service="analytics",
        settings=settings,
        start=start,
        title="Switchboard analytics",
        description="Rollups of every stream (messages, deliveries, latencies, first response, "
        "lead funnel, campaigns, MTProto), rebuildable by replay. Times are UTC; ranges are "
        "rounded out to whole hours. The dashboard is at /.",
        migrations=load_migrations("switchboard.analytics"),
        schema=SCHEMA,
    )
    auth = ApiKeyAuth(settings.api_keys)
    app.state.auth = auth

    def sessions() -> SignInStore:
        return deps().signins

    gate = dashboard.Gate(
        auth=auth,
        keys=lambda: app.key_cache,
        sessions=sessions,
        per_ip=settings.login_attempts_per_ip,
        per_key=settings.login_attempts_per_key,
        window=timedelta(seconds=settings.login_window_s),
    )

    @app.exception_handler(BadParameterError)
    async def _bad(_: Request, exc: BadParameterError) -> Response:
        where = [{"path": f"query.{exc.parameter}", "message": exc.message}]
        return error(400, "bad_parameter", exc.message, errors=where, parameter=exc.parameter)

    add_routes(app, deps, settings)

    @app.get("/", include_in_schema=False)
    async def home(request: Request) -> Response:
        seen = await dashboard.viewer(request, gate)
        if seen is None:
            return dashboard.login_page(request)
        csrf = seen.signin.csrf if seen.signin else ""
        async with deps().pool.acquire() as conn:
            return await dashboard.render(
                conn, seen.workspace, dict(request.query_params), settings.lead_stages, csrf
            )

    @app.post("/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        return await dashboard.login(request, gate)

    @app.post("/logout", include_in_schema=False)
    async def logout(request: Request) -> Response:
        return await dashboard.logout(request, gate)

    return app
