"""The analytics composition root's dependencies: built complete and typed once the runtime
is up, before the service answers, and handed to the routes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import asyncpg

from switchboard.analytics.settings import AnalyticsSettings
from switchboard.analytics.signin import Lifetimes, SignInStore
from switchboard.events.streams import DASHBOARD_SESSIONS
from switchboard.runtime.service import Runtime


@dataclass(frozen=True)
class AnalyticsDeps:
    """Everything the analytics routes use, built once the runtime is up."""

    pool: asyncpg.Pool
    signins: SignInStore


async def bootstrap(rt: Runtime, settings: AnalyticsSettings) -> AnalyticsDeps:
    """The routes' dependencies, complete before the service answers."""
    assert rt.pool is not None  # analytics declares a schema, so the runtime opened a pool
    lifetimes = Lifetimes(
        idle=timedelta(seconds=settings.dashboard_idle_s),
        absolute=timedelta(seconds=settings.dashboard_session_max_s),
    )
    kv = await rt.bus.kv(DASHBOARD_SESSIONS.name)
    signins = SignInStore(kv, lifetimes, rt.clock.utcnow)
    return AnalyticsDeps(pool=rt.pool, signins=signins)
