"""Checkpointed projections: events from a stream applied to Postgres with the stream
sequence written in the same transaction, so every event takes effect exactly once whatever
crashes in between.

Reads with an ephemeral, ack-less consumer starting after the stored checkpoint (the
checkpoint, not the server, is the consumer's position). One instance projects at a time:
it holds a Postgres advisory lock for the projection; the others stand by and take over when
its connection goes away.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from switchboard.events import DecodeError
from switchboard.runtime.bus import Bus
from switchboard.runtime.db import Conn
from switchboard.runtime.dlq import dead_letter
from switchboard.runtime.logging import get_logger
from switchboard.runtime.metrics import DEAD_LETTERED, PROJECTED, PROJECTION_LAG
from switchboard.runtime.tracing import batch_span

log = get_logger(__name__)

# apply(conn, batch): the batch is the messages, or what ``prepare`` made of them.
ApplyBatch = Callable[[Conn, Any], Awaitable[None]]
Prepare = Callable[[Sequence[Msg]], Any]

CHECKPOINTS_DDL = """
CREATE TABLE IF NOT EXISTS {schema}.checkpoints (
    projection text PRIMARY KEY,
    stream text NOT NULL,
    seq bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
)"""


class LostLeadershipError(RuntimeError):
    """Another instance moved the checkpoint: this one stops projecting and stands by."""


# Errors that mean "stop and resume from the checkpoint", as opposed to a poison event.
_INTERRUPTIONS = (
    OSError,
    LostLeadershipError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
)


@dataclass
class Projection:
    """Applies ``filter_subjects`` of ``stream`` to Postgres through ``apply``."""

    name: str
    schema: str
    stream: str
    filter_subjects: tuple[str, ...]
    apply: ApplyBatch
    bus: Bus
    pool: asyncpg.Pool
    batch: int = 500
    # Optional CPU-side step (decoding): it runs for the next batch while the current one
    # waits on Postgres, which works on the other core meanwhile.
    prepare: Prepare | None = None
    max_attempts: int = 3
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    caught_up: asyncio.Event = field(default_factory=asyncio.Event)
    position: int = 0
    idle_polls: int = 0

    async def run(self) -> None:
        """Wait for the lock, then project until stopped; survives bus and database blips."""
        while not self.stop.is_set():
            try:
                async with self.pool.acquire() as lock_conn:
                    if not await self._try_lock(lock_conn):
                        await self._wait(1.0)
                        continue
                    log.info("projection leader", projection=self.name)
                    await self._project()
            except (*_INTERRUPTIONS, asyncpg.PostgresError) as exc:
                log.warning("projection interrupted", projection=self.name, error=str(exc))
                await self._wait(1.0)

    async def _try_lock(self, conn: Conn) -> bool:
        got: bool = await conn.fetchval(
            "SELECT pg_try_advisory_lock(hashtext($1))", f"projection:{self.schema}.{self.name}"
        )
        return got

    async def _wait(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop.wait(), seconds)

    async def checkpoint(self, conn: Conn) -> int:
        # Several projections of one schema start at once; CREATE TABLE IF NOT EXISTS is not
        # safe against itself (a unique violation in pg_type), so they take turns.
        async with conn.transaction():
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtext($1))", f"checkpoints:{self.schema}"
            )
            await conn.execute(CHECKPOINTS_DDL.format(schema=self.schema))
        seq = await conn.fetchval(
            f"SELECT seq FROM {self.schema}.checkpoints WHERE projection = $1", self.name
        )
        return int(seq or 0)

    async def _project(self) -> None:
        async with self.pool.acquire() as conn:
            self.position = await self.checkpoint(conn)
        sub = await self._subscribe(self.position + 1)
        # The next batch is fetched while the current one is applied, so NATS and Postgres
        # round trips overlap instead of adding up.
        fetching: asyncio.Task[tuple[list[Msg], Any]] | None = None

        async def fetch() -> tuple[list[Msg], Any]:
            got = await sub.fetch(self.batch, timeout=0.5)
            got = [m for m in got if m.metadata.sequence.stream > self.position]
            if self.prepare is None or not got:
                return got, None
            try:
                return got, self.prepare(got)
            except Exception:
                return got, None  # a poison message: _apply_batch goes one by one

        try:
            while not self.stop.is_set():
                if fetching is None:
                    fetching = asyncio.create_task(fetch())
                try:
                    msgs, prepared = await fetching
                except TimeoutError:  # nats-py raises its own or asyncio's: both are idle
                    fetching = None
                    self.idle_polls += 1
                    await self._mark_caught_up()
                    continue
                except Exception as exc:
                    fetching = None
                    if self.stop.is_set():
                        return
                    log.warning("projection fetch failed", projection=self.name, error=repr(exc))
                    with contextlib.suppress(Exception):
                        await sub.unsubscribe()
                    await self._wait(0.5)
                    sub = await self._subscribe(self.position + 1)
                    continue
                fetching = asyncio.create_task(fetch())
                if msgs:
                    await self._apply_batch(msgs, prepared)
        finally:
            if fetching is not None:
                fetching.cancel()
                with contextlib.suppress(BaseException):
                    await fetching
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def _mark_caught_up(self) -> None:
        info = await self.bus.js.stream_info(self.stream)
        if self.position >= info.state.last_seq:
            self.caught_up.set()

    async def _subscribe(self, start: int) -> Any:
        config = ConsumerConfig(
            ack_policy=AckPolicy.NONE,
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=max(start, 1),
            filter_subjects=list(self.filter_subjects),
            inactive_threshold=30.0,
            mem_storage=True,
            num_replicas=1,
        )
        return await self.bus.js.pull_subscribe(
            self.filter_subjects[0],
            durable=None,
            stream=self.stream,
            config=config,
        )

    async def _apply_batch(self, msgs: Sequence[Msg], prepared: Any = None) -> None:
        started = time.perf_counter()
        last = msgs[-1].metadata.sequence.stream
        try:
            if self.prepare is not None and prepared is None:
                raise ValueError("batch could not be prepared")
            with batch_span(f"project {self.name}", [m.headers for m in msgs], count=len(msgs)):
                async with self.pool.acquire() as conn, conn.transaction():
                    await self.apply(conn, msgs if self.prepare is None else prepared)
                    await self._save(conn, self.position, last)
        except _INTERRUPTIONS:
            raise  # the database went away: the run loop retries from the checkpoint
        except Exception as exc:
            log.warning("batch failed; applying one by one", projection=self.name, error=str(exc))
            for msg in msgs:
                await self._apply_one(msg)
                self.position = msg.metadata.sequence.stream
        self.position = last
        PROJECTED.labels(self.name).inc(len(msgs))
        PROJECTION_LAG.labels(self.name).observe(time.perf_counter() - started)

    async def _apply_one(self, msg: Msg) -> None:
        seq = msg.metadata.sequence.stream
        error = ""
        attempts = 0
        for _attempt in range(self.max_attempts):
            attempts += 1
            try:
                async with self.pool.acquire() as conn, conn.transaction():
                    one = self.prepare([msg]) if self.prepare else [msg]
                    await self.apply(conn, one)
                    await self._save(conn, self.position, seq)
                return
            except _INTERRUPTIONS:
                raise
            except DecodeError as exc:
                error = f"{type(exc).__name__}: {exc}"
                break  # a message that does not decode never will
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
        # Poison: park it in the DLQ (stored before the checkpoint moves past it).
        await dead_letter(
            self.bus,
            subject=msg.subject,
            headers=dict(msg.headers or {}),
            body=msg.data,
            reason=error,
            stream=self.stream,
            sequence=seq,
            consumer=self.name,
            deliveries=attempts,
        )
        async with self.pool.acquire() as conn, conn.transaction():
            await self._save(conn, self.position, seq)
        DEAD_LETTERED.labels(self.name).inc()
        log.error("projection dead-lettered", projection=self.name, seq=seq, reason=error)

    async def _save(self, conn: Conn, expected: int, seq: int) -> None:
        """Move the checkpoint from ``expected`` to ``seq``, or raise LostLeadershipError.

        Requiring the exact previous position (not just "behind") means no one else applied
        anything in between: a second leader after a lock handover, or a rebuild that swapped
        fresh tables in, makes this projector stop and resume from the stored checkpoint.
        """
        if expected == 0:
            status = await conn.execute(
                f"""INSERT INTO {self.schema}.checkpoints (projection, stream, seq)
                    VALUES ($1, $2, $3) ON CONFLICT (projection) DO NOTHING""",
                self.name,
                self.stream,
                seq,
            )
        else:
            status = await conn.execute(
                f"""UPDATE {self.schema}.checkpoints SET seq = $3, updated_at = now()
                    WHERE projection = $1 AND seq = $2""",
                self.name,
                expected,
                seq,
            )
        if status.endswith(" 0"):
            raise LostLeadershipError(f"checkpoint of {self.name} moved past {expected}")
