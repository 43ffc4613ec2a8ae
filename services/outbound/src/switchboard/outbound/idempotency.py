"""``Idempotency-Key`` for the HTTP API, the way the payment APIs do it.

A key is scoped to the caller's workspace and remembers the fingerprint of the request that
first used it and, once answered, that answer, for ``retention`` seconds (24 h by default,
far beyond JetStream's duplicate window). A repeat with the same body gets the original
answer again; with another body it is refused (422 naming the conflict); while the first
request is still being handled it is told to come back (409 with ``Retry-After``). A claim
whose request died before answering is taken over after ``lease`` seconds, judged as leases
are (:mod:`switchboard.runtime.delivery.lease`): by how long this instance has seen the claim
unchanged on its own monotonic clock, never by the claim's time, which another instance's
clock wrote (one running a minute behind made every claim look dead, and a repeat was sent
twice while the first was still in flight).

Records live in the ``sends`` bucket (``idem.`` keys), whose TTL caps the retention.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import orjson
from nats.js.errors import APIError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue
from pydantic import BaseModel
from starlette.responses import JSONResponse, Response

from switchboard.outbound.kvmodels import scoped
from switchboard.runtime.http import error
from switchboard.runtime.kv import current
from switchboard.runtime.lru import remember


class KeyRecord(BaseModel):
    """What a key remembers."""

    fingerprint: str
    state: Literal["in_flight", "done"]
    at: datetime  # claimed (in flight) or answered (done)
    status: int | None = None
    body: dict[str, Any] | None = None


@dataclass(frozen=True)
class Claim:
    """The key is this request's: answer, then :meth:`IdempotencyKeys.complete` it."""

    key: str
    fingerprint: str
    revision: int


@dataclass(frozen=True)
class Replay:
    """The key was answered before with this (same request): answer it again."""

    status: int
    body: dict[str, Any]


@dataclass(frozen=True)
class InFlight:
    """The first request with this key is still being handled."""

    retry_after: int


@dataclass(frozen=True)
class Conflict:
    """The key was used with another request body."""


Decision = Claim | Replay | InFlight | Conflict
Take = Literal["take"]


def decide(
    found: KeyRecord,
    fp: str,
    now: datetime,
    retention: timedelta,
    lease: timedelta,
    watched: timedelta,
) -> Replay | InFlight | Conflict | Take:
    """What a request with body fingerprint ``fp`` gets when its key holds ``found``, which
    this instance has ``watched`` unchanged for that long (its own monotonic clock)."""
    if found.state == "done" and now - found.at > retention:
        return "take"
    if found.state == "in_flight" and watched >= lease:
        return "take"  # the first request died before it answered
    if found.fingerprint != fp:
        return Conflict()
    if found.state == "in_flight":
        return InFlight(max(1, math.ceil((lease - watched).total_seconds())))
    return Replay(found.status or 200, found.body or {})


def key_of(scope: str, workspace: str, key: str) -> str:
    return f"idem.{scope}.{scoped(workspace, key)}"


class IdempotencyKeys:
    """The keys of one API (``scope``) in a KV bucket."""

    def __init__(
        self,
        kv: KeyValue,
        scope: str,
        retention_s: float = 86400.0,
        lease_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.kv = kv
        self.scope = scope
        self.retention = timedelta(seconds=retention_s)
        self.lease = timedelta(seconds=lease_s)
        self.clock = clock
        # When a key was answered, and now, for the retention: the service gives the
        # server's clock (``runtime.servertime``), one time for every instance.
        self.wall = wall
        # (key, revision) -> when this instance first saw that claim: its lease clock.
        self._sightings: OrderedDict[tuple[str, int], float] = OrderedDict()

    def _watched(self, kv_key: str, revision: int) -> timedelta:
        """How long this instance has seen ``kv_key`` at ``revision`` (0 the first time)."""
        now = self.clock()
        first = self._sightings.get((kv_key, revision), now)
        remember(self._sightings, (kv_key, revision), first, _SIGHTINGS)
        return timedelta(seconds=now - first)

    async def begin(self, workspace: str, key: str, fp: str) -> Decision:
        """Claim ``key`` for a request with body fingerprint ``fp``, or say why not."""
        kv_key = key_of(self.scope, workspace, key)
        claim = _dump(KeyRecord(fingerprint=fp, state="in_flight", at=self.wall()))
        while True:
            try:
                revision = await self.kv.create(kv_key, claim)
                return Claim(kv_key, fp, revision)
            except KeyWrongLastSequenceError:
                pass
            entry = await current(self.kv, kv_key)
            if entry is None:
                continue  # deleted meanwhile: claim it again
            found = KeyRecord.model_validate(orjson.loads(entry.value))
            watched = self._watched(kv_key, entry.revision)
            decided = decide(found, fp, self.wall(), self.retention, self.lease, watched)
            if decided != "take":
                return decided
            try:
                revision = await self.kv.update(kv_key, claim, last=entry.revision)
                return Claim(kv_key, fp, revision)
            except KeyWrongLastSequenceError:
                continue  # another request took it first: look again

    async def answered(
        self,
        workspace: str,
        key: str,
        fp: str,
        make: Callable[[], Awaitable[tuple[int, dict[str, Any]]]],
        what: str = "Idempotency-Key",
    ) -> Response:
        """The answer to a request under ``key`` (``what`` names it to the caller): ``make``'s,
        made once and remembered; the remembered one again for a repeat (marked
        ``Idempotent-Replayed``); 422 for another body, 409 with ``Retry-After`` while the
        first is in flight. A request that raises (a refusal, a crash) forgets its claim, so
        that a retry is handled afresh."""
        decision = await self.begin(workspace, key, fp)
        if isinstance(decision, Conflict):
            return error(
                422,
                "idempotency_conflict",
                f"{what} {key!r} was used with another request body; "
                f"send new content under a new {what}",
            )
        if isinstance(decision, InFlight):
            return error(
                409,
                "request_in_flight",
                f"a request with this {what} is still being handled; retry shortly",
                headers={"Retry-After": str(decision.retry_after)},
            )
        if isinstance(decision, Replay):
            return JSONResponse(decision.body, decision.status, {"Idempotent-Replayed": "true"})
        try:
            status, body = await make()
        except BaseException:
            await self.release(decision)
            raise
        await self.complete(decision, status, body)
        return JSONResponse(body, status)

    async def complete(self, claim: Claim, status: int, body: dict[str, Any]) -> None:
        """Remember the answer given to the claiming request."""
        record = KeyRecord(
            fingerprint=claim.fingerprint,
            state="done",
            at=self.wall(),
            status=status,
            body=body,
        )
        await self.kv.put(claim.key, _dump(record))

    async def release(self, claim: Claim) -> None:
        """Forget a claim whose request failed, so that a retry is handled afresh."""
        # Taken over meanwhile (wrong last sequence): it is not ours to delete.
        with contextlib.suppress(APIError):
            await self.kv.delete(claim.key, last=claim.revision)


# Claims in flight this instance remembers seeing: far more than are ever in flight at once.
_SIGHTINGS = 10_000


def _dump(record: KeyRecord) -> bytes:
    return record.model_dump_json(exclude_none=True).encode()
