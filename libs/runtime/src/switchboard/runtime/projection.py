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
import inspect
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NotRequired, Protocol, TypedDict, Unpack

import asyncpg
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from switchboard.runtime.bus import Bus
from switchboard.runtime.db import Conn
from switchboard.runtime.delivery.lease import LeaseLostError
from switchboard.runtime.delivery.pull import BatchPull, pending_after
from switchboard.runtime.delivery.pull import stream_seq as stream_seq  # for projectors
from switchboard.runtime.dlq import dead_letter
from switchboard.runtime.failures import (
    DeadLetter,
    Failure,
    RetryPolicy,
    classify,
    decide,
)
from switchboard.runtime.logging import get_logger
from switchboard.runtime.metrics import (
    DEAD_LETTERED,
    PROJECTED,
    PROJECTION_BEHIND,
    PROJECTION_LAG,
)
from switchboard.runtime.periodic import pause
from switchboard.runtime.tasks import cancel_and_wait
from switchboard.runtime.tracing import batch_span

log = get_logger(__name__)

_IDLE = object()  # the producer's "nothing came within the poll"

# The OpenTelemetry SDK keeps the last 128 links of a span (OTEL_SPAN_LINK_COUNT_LIMIT):
# extracting the trace context of every message of a 2000-event batch was wasted work.
_MAX_LINKS = 128

# apply(conn, batch): the batch is the messages, or what ``prepare`` made of them.
ApplyBatch = Callable[[Conn, Any], Awaitable[None]]
# prepare may be a coroutine function (opening sealed personal data fetches keys)
Prepare = Callable[[Sequence[Msg]], Any]


class Projector(Protocol):
    """A projector module: what it projects, from which stream (how it applies is the
    service's own)."""

    PROJECTION: str
    STREAM: str
    SUBJECTS: tuple[str, ...]


class Site(TypedDict):
    """Where a projection writes and reads: live tables or a rebuild's fresh schema."""

    schema: str
    bus: Bus
    pool: asyncpg.Pool
    batch: NotRequired[int]
    stop: NotRequired[asyncio.Event]


async def _prepared(prepare: Prepare, msgs: Sequence[Msg]) -> Any:
    result = prepare(msgs)
    return await result if inspect.isawaitable(result) else result


CHECKPOINTS_DDL = """
CREATE TABLE IF NOT EXISTS {schema}.checkpoints (
    projection text PRIMARY KEY,
    stream text NOT NULL,
    seq bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
)"""


async def ensure_checkpoints(conn: Conn, schema: str) -> None:
    """Create ``schema``'s checkpoints table if it is missing.

    Several projections of one schema start at once (and a rebuild beside them); CREATE
    TABLE IF NOT EXISTS is not safe against itself (a unique violation in pg_type), so they
    take turns."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"checkpoints:{schema}")
        await conn.execute(CHECKPOINTS_DDL.format(schema=schema))


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
    # Optional CPU-side step (decoding): it runs for the next batches while the current one
    # waits on Postgres, which works on the other core meanwhile.
    prepare: Prepare | None = None
    prefetch: int = 2  # full batches fetched and prepared ahead of the one being applied
    max_attempts: int = 3  # content failures of one event before the DLQ
    # A database or bus outage is waited out (capped backoff) however long it lasts.
    infra_backoff_s: float = 1.0
    infra_backoff_cap_s: float = 10.0
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    caught_up: asyncio.Event = field(default_factory=asyncio.Event)
    position: int = 0
    idle_polls: int = 0

    @classmethod
    def of_projector(
        cls, projector: Projector, apply: ApplyBatch, prepare: Prepare | None, **site: Unpack[Site]
    ) -> Projection:
        """The projection a projector module declares (name, stream, subjects), applied by
        ``apply`` (after ``prepare``) at ``site``."""
        return cls(
            name=projector.PROJECTION,
            stream=projector.STREAM,
            filter_subjects=projector.SUBJECTS,
            apply=apply,
            prepare=prepare,
            **site,
        )

    async def run(self) -> None:
        """Wait for the lock, then project until stopped; waits out bus and database
        outages of any length and resumes from the checkpoint."""
        outages, last_position = 0, -1
        while not self.stop.is_set():
            try:
                async with self.pool.acquire() as lock_conn:
                    if not await self._try_lock(lock_conn):
                        outages = 0
                        await self._wait(1.0)
                        continue
                    log.info("projection leader", projection=self.name)
                    try:
                        await self._project(lock_conn)
                    finally:  # not leading any more: the next leader reports how far behind
                        with contextlib.suppress(KeyError):
                            PROJECTION_BEHIND.remove(self.name)
            except Exception as exc:
                if classify(exc) is not Failure.INFRASTRUCTURE and not isinstance(
                    exc, asyncpg.PostgresError
                ):
                    raise
                # Consecutive interruptions without progress back off; progress resets it.
                outages = 1 if self.position != last_position else outages + 1
                last_position = self.position
                delay = self.policy.infra_delay(outages)
                log.warning(
                    "projection interrupted",
                    projection=self.name,
                    error=repr(exc),
                    retry_in=delay,
                )
                await self._wait(delay)

    @property
    def policy(self) -> RetryPolicy:
        return RetryPolicy(
            max_attempts=self.max_attempts,
            backoff_s=(0.0,),  # a content failure is retried at once, in the same process
            infra_base_s=self.infra_backoff_s,
            infra_cap_s=self.infra_backoff_cap_s,
        )

    async def _try_lock(self, conn: Conn) -> bool:
        got: bool = await conn.fetchval(
            "SELECT pg_try_advisory_lock(hashtext($1))", f"projection:{self.schema}.{self.name}"
        )
        return got

    async def _wait(self, seconds: float) -> None:
        await pause(self.stop, seconds)

    async def checkpoint(self, conn: Conn) -> int:
        await ensure_checkpoints(conn, self.schema)
        seq = await conn.fetchval(
            f"SELECT seq FROM {self.schema}.checkpoints WHERE projection = $1", self.name
        )
        return int(seq or 0)

    async def _project(self, conn: Conn) -> None:
        """Apply batches as they come, on ``conn``: the session holding the leader's lock is
        the only writer, and a warm one. A connection taken from the pool for each batch
        cost its reset (a round trip) on the way back, and in the first busy second a
        backend with cold caches on each first use (bench_crm's e2e, docs/benchmark-notes)."""
        self.position = await self.checkpoint(conn)
        # Batches are fetched and prepared ahead while earlier ones are applied, so this
        # process's CPU work overlaps the round trips and Postgres' work.
        ready: asyncio.Queue[Any] = asyncio.Queue()
        taken = asyncio.Event()
        producer = asyncio.create_task(self._produce(ready, taken))
        try:
            while not self.stop.is_set():
                item = await ready.get()
                taken.set()
                if item is _IDLE:
                    self.idle_polls += 1
                    await self._mark_caught_up()
                elif isinstance(item, BaseException):
                    raise item
                else:
                    await self._apply_batch(conn, *item)
        finally:
            await cancel_and_wait([producer])  # a cancellation can be lost in a race

    async def _produce(self, ready: asyncio.Queue[Any], taken: asyncio.Event) -> None:
        """Fetch and prepare batches in stream order into ``ready``; ``_IDLE`` when nothing
        came, an exception when the bus failed in a way a resubscription cannot fix.

        A full batch (a backlog) is prepared as soon as fewer than ``prefetch`` wait. A
        partial one (live traffic) waits until the applier has taken the one before, and
        takes in whatever arrived meanwhile: when Postgres is the slower side, batches grow
        instead of queueing up small, which keeps latency down under load.
        """
        fetched = self.position
        sub: BatchPull | None = None
        try:
            sub = await self._subscribe(fetched + 1)
            while True:
                try:
                    got = await sub.fetch(self.batch, timeout=0.5)
                except TimeoutError:  # nothing new: the normal idle case
                    ready.put_nowait(_IDLE)
                    continue
                except Exception as exc:
                    if self.stop.is_set():
                        ready.put_nowait(_IDLE)
                        return
                    log.warning("projection fetch failed", projection=self.name, error=repr(exc))
                    await sub.close()
                    await self._wait(0.5)
                    sub = await self._subscribe(fetched + 1)
                    continue
                full = len(got) >= self.batch
                while ready.qsize() >= (max(self.prefetch, 1) if full else 1):
                    taken.clear()
                    await taken.wait()
                if not full:
                    got += sub.take(self.batch - len(got))
                got = [m for m in got if stream_seq(m) > fetched]
                if not got:
                    continue
                fetched = stream_seq(got[-1])
                prepared = None
                if self.prepare is not None:
                    try:
                        prepared = await _prepared(self.prepare, got)
                    except Exception:
                        prepared = None  # a poison message: _apply_batch goes one by one
                ready.put_nowait((got, prepared))
        except Exception as exc:
            ready.put_nowait(exc)
        finally:
            if sub is not None:
                await sub.close()

    async def _mark_caught_up(self) -> None:
        PROJECTION_BEHIND.labels(self.name).set(0)  # an idle poll: nothing left to apply
        info = await self.bus.js.stream_info(self.stream)
        if self.position >= info.state.last_seq:
            self.caught_up.set()

    async def _subscribe(self, start: int) -> BatchPull:
        config = ConsumerConfig(
            ack_policy=AckPolicy.NONE,
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=max(start, 1),
            filter_subjects=list(self.filter_subjects),
            inactive_threshold=30.0,
            mem_storage=True,
            num_replicas=1,
        )
        return await BatchPull(self.bus, self.stream, config).start()

    async def _apply_batch(self, conn: Conn, msgs: Sequence[Msg], prepared: Any = None) -> None:
        started = time.perf_counter()
        last = stream_seq(msgs[-1])
        try:
            if self.prepare is not None and prepared is None:
                raise ValueError("batch could not be prepared")
            links: list[Mapping[str, str] | None] = [m.headers for m in msgs[-_MAX_LINKS:]]
            with batch_span(f"project {self.name}", links, count=len(msgs)):
                async with conn.transaction():
                    await self.apply(conn, msgs if self.prepare is None else prepared)
                    await self._save(conn, self.position, last)
        except Exception as exc:
            if classify(exc) is Failure.INFRASTRUCTURE:
                raise  # the database went away: the run loop retries from the checkpoint
            log.warning("batch failed; applying one by one", projection=self.name, error=str(exc))
            for msg in msgs:
                await self._apply_one(conn, msg)
                self.position = stream_seq(msg)
        self.position = last
        PROJECTION_BEHIND.labels(self.name).set(pending_after(msgs[-1]))
        if pending_after(msgs[-1]) == 0:
            # the end of the stream as of that delivery: no need to wait for an idle poll
            # (a rebuild would otherwise linger half a second on each projection)
            self.caught_up.set()
        PROJECTED.labels(self.name).inc(len(msgs))
        PROJECTION_LAG.labels(self.name).observe(time.perf_counter() - started)

    async def _apply_one(self, conn: Conn, msg: Msg) -> None:
        """Apply one event alone; a content failure is retried ``max_attempts`` times and
        then parked in the DLQ. An infrastructure failure (the DLQ publish's included)
        propagates: the checkpoint stays put and the run loop resumes from it."""
        seq = stream_seq(msg)
        failures = 0
        while True:
            try:
                async with conn.transaction():
                    one = await _prepared(self.prepare, [msg]) if self.prepare else [msg]
                    await self.apply(conn, one)
                    await self._save(conn, self.position, seq)
                return
            except Exception as exc:
                outcome = decide(exc, failures=failures, deliveries=1, policy=self.policy)
                if isinstance(outcome, DeadLetter):
                    break
                if not outcome.counted:
                    raise
                failures += 1
        # Poison: park it in the DLQ (stored before the checkpoint moves past it).
        await dead_letter(
            self.bus,
            subject=msg.subject,
            headers=dict(msg.headers or {}),
            body=msg.data,
            reason=outcome.reason,
            stream=self.stream,
            sequence=seq,
            consumer=self.name,
            deliveries=outcome.attempts,
        )
        async with conn.transaction():
            await self._save(conn, self.position, seq)
        DEAD_LETTERED.labels(self.name).inc()
        log.error("projection dead-lettered", projection=self.name, seq=seq, reason=outcome.reason)

    async def _save(self, conn: Conn, expected: int, seq: int) -> None:
        """Move the checkpoint from ``expected`` to ``seq``, or raise LeaseLostError.

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
            raise LeaseLostError(f"checkpoint of {self.name} moved past {expected}")
