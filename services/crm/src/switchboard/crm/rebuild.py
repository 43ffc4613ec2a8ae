"""``switchboard crm rebuild``: replay the streams into fresh tables and swap them in, through
the runtime's rebuild-and-swap (:mod:`switchboard.runtime.rebuild`).

What is the CRM's own: each projector's ``DEFERRED_INDEXES`` (full text, list orderings) are
built after the replay, and batches are larger than live ones (``rebuild_batch``): a batch
rewrites the summary of every conversation it touches, so fewer batches write less. Commits
stay synchronous: unlogged tables or ``synchronous_commit = off`` would only save the WAL
flush of one commit per batch (a few dozen per 100k events), measured as noise, and unlogged
tables would need a full rewrite before the swap.
"""

from __future__ import annotations

from collections.abc import Callable

import asyncpg

from switchboard.crm.app import PROJECTIONS, SCHEMA, build_projection
from switchboard.crm.settings import CrmSettings
from switchboard.runtime.bus import Bus
from switchboard.runtime.projection import Projection
from switchboard.runtime.rebuild import RebuildPlan, RebuildReport, rebuild_service

__all__ = ["RebuildReport", "deferred_index_names", "plan", "rebuild"]


def deferred_index_names() -> tuple[str, ...]:
    return tuple(name for m in PROJECTIONS for name in getattr(m, "DEFERRED_INDEXES", ()))


def plan(settings: CrmSettings) -> RebuildPlan:
    """The CRM's projections, replayed with the rebuild's batch size."""

    def build(schema: str, bus: Bus, pool: asyncpg.Pool) -> list[Projection]:
        return [
            build_projection(m, schema=schema, bus=bus, pool=pool, batch=settings.rebuild_batch)
            for m in PROJECTIONS
        ]

    return RebuildPlan(
        schema=SCHEMA,
        migrations_package="switchboard.crm",
        build=build,
        # a lock connection per projection plus one the replays share: with fewer, a
        # projection never gets a connection to apply on; with more, they apply concurrently
        # and the rebuild stops being byte-identical (tests/e2e/test_crm.py, test_erasure.py)
        pool_size=len(PROJECTIONS) + 1,
        deferred_indexes=deferred_index_names(),
        # ledgers, not projections: requests decided, files still to delete
        kept=frozenset({"campaign_requests", "erased_files"}),
    )


async def rebuild(
    settings: CrmSettings, *, keep_old: bool = False, log: Callable[[str], None] = print
) -> RebuildReport:
    return await rebuild_service(plan(settings), settings, "crm", keep_old=keep_old, log=log)
