"""``switchboard analytics rebuild``: replay the streams into fresh rollups and swap them in,
through the runtime's rebuild-and-swap (:mod:`switchboard.runtime.rebuild`).

The conversion ledger is the one table that is not replaced: it records side effects
already decided. The replay writes to the live ledger, where every conversion decided
before is already present and is not decided again.
"""

from __future__ import annotations

from collections.abc import Callable

import asyncpg

from switchboard.analytics.app import PROJECTORS, SCHEMA, build_projection
from switchboard.analytics.context import Context, ConversionTargets, Pixels
from switchboard.analytics.settings import AnalyticsSettings
from switchboard.runtime.bus import Bus
from switchboard.runtime.projection import Projection
from switchboard.runtime.rebuild import RebuildPlan, RebuildReport, rebuild_service

__all__ = ["KEPT", "RebuildReport", "plan", "rebuild"]

KEPT = frozenset({"conversion_ledger"})


def plan(settings: AnalyticsSettings) -> RebuildPlan:
    """The rollups' projections, replayed in batches of at least 1000, without observing."""
    pixels = Pixels()
    ctx = Context(targets=ConversionTargets.of(settings, pixels), observe=False)

    async def read_pixels(bus: Bus) -> None:
        now = await Pixels.snapshot(await bus.kv("accounts"))
        pixels.entries, pixels.by_workspace = now.entries, now.by_workspace

    batch = max(settings.projection_batch, 1000)

    def build(schema: str, bus: Bus, pool: asyncpg.Pool) -> list[Projection]:
        return [
            build_projection(m, ctx, schema=schema, bus=bus, pool=pool, batch=batch)
            for m in PROJECTORS
        ]

    return RebuildPlan(
        schema=SCHEMA,
        migrations_package="switchboard.analytics",
        build=build,
        # Each projection holds one connection for its leader lock and uses another to apply.
        pool_size=2 * len(PROJECTORS) + 1,
        kept=KEPT,
        before=read_pixels,
    )


async def rebuild(
    settings: AnalyticsSettings, *, keep_old: bool = False, log: Callable[[str], None] = print
) -> RebuildReport:
    return await rebuild_service(plan(settings), settings, "analytics", keep_old=keep_old, log=log)
