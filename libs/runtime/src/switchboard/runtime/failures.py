"""The failure policy, in one place: what a failed message delivery means and what to do.

Failures of our own infrastructure (the bus, a stream or bucket, the database, DNS, a
timeout to one of our servers) are retried without limit with capped backoff and never
count against the message; only failures the message itself causes count toward the DLQ.
JetStream's ``num_delivered`` counts every redelivery, outages included, so the content
failures are counted here (``PoisonBudget``) and the consumers run with no server-side cap.
"""

from __future__ import annotations

import asyncio
import socket
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum
from typing import TypeVar

import asyncpg
import nats.errors
import nats.js.errors
from tenacity import AsyncRetrying, retry_if_exception, wait_exponential

from switchboard.events import DecodeError
from switchboard.runtime.errors import SwitchboardRuntimeError
from switchboard.runtime.lru import remember

T = TypeVar("T")


class Failure(Enum):
    """Whose fault a failure is."""

    INFRASTRUCTURE = "infrastructure"  # ours: retried without limit, never counted
    CONTENT = "content"  # the message's: counted, dead-lettered when the budget is spent
    MALFORMED = "malformed"  # can never succeed: dead-lettered at once


class PermanentError(SwitchboardRuntimeError):
    """Processing can never succeed (malformed input): dead-letter at once, no retries."""


class InfrastructureError(SwitchboardRuntimeError, RuntimeError):
    """Raised (or chained as the cause) to say: our infrastructure failed, not the message."""


# JetStream API error codes that say a stream, bucket or consumer is missing or moving
# (an outage or a leader election), not that the request was wrong.
_JS_UNAVAILABLE_CODES = frozenset(
    {
        10008,  # JetStream not enabled / temporarily unavailable
        10014,  # consumer not found
        10059,  # stream not found
        10158,  # a publish of the same Nats-Msg-Id is in process
        10176,  # cluster / peer not available
    }
)

_NATS_INFRA = (
    nats.errors.TimeoutError,
    nats.errors.NoRespondersError,
    nats.errors.ConnectionClosedError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.ConnectionDrainingError,
    nats.errors.StaleConnectionError,
    nats.errors.OutboundBufferLimitError,
    nats.errors.NoServersError,
    nats.js.errors.ServiceUnavailableError,
    nats.js.errors.ServerError,
    nats.js.errors.NoStreamResponseError,
    nats.js.errors.BucketNotFoundError,
    nats.js.errors.KeyWrongLastSequenceError,  # a concurrent writer: asking again resolves it
)

_POSTGRES_INFRA = (
    asyncpg.PostgresConnectionError,  # class 08: the connection failed or went away
    asyncpg.OperatorInterventionError,  # class 57: shutdown, cannot connect now, cancelled
    asyncpg.InsufficientResourcesError,  # class 53: too many connections, disk full
    asyncpg.TransactionRollbackError,  # class 40: serialization failure, deadlock
    asyncpg.InterfaceError,  # the client's connection is closed or mid-protocol
    asyncpg.InternalClientError,
)


def _is_infrastructure(exc: BaseException) -> bool:
    if isinstance(exc, (InfrastructureError, *_NATS_INFRA, *_POSTGRES_INFRA)):
        # asyncpg's client-side DataError (a value that does not encode) is an
        # InterfaceError and a ValueError: the message's fault.
        return not isinstance(exc, ValueError)
    if isinstance(exc, nats.js.errors.APIError):
        # KeyValue errors are raised client-side without the API fields
        code, err_code = getattr(exc, "code", None), getattr(exc, "err_code", None)
        return code in (500, 503) or err_code in _JS_UNAVAILABLE_CODES
    # Refused or reset connections, DNS (socket.gaierror) and timeouts (TimeoutError and
    # asyncio.TimeoutError are OSErrors) reaching our own servers.
    return isinstance(exc, OSError | asyncio.TimeoutError | socket.gaierror)


def classify(exc: BaseException) -> Failure:
    """Whose fault ``exc`` is; an infrastructure error anywhere in its cause chain wins
    (a handler that wraps a refused connection in its own error is still unlucky, not bad)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if _is_infrastructure(current):
            return Failure.INFRASTRUCTURE
        current = current.__cause__ or current.__context__
    if isinstance(exc, PermanentError | DecodeError):
        return Failure.MALFORMED
    return Failure.CONTENT


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how soon: ``max_attempts`` content failures before the DLQ, waiting
    ``backoff_s[i]`` after the i-th; infrastructure waits double from ``infra_base_s`` up
    to ``infra_cap_s`` and go on for as long as the outage lasts."""

    max_attempts: int = 5
    backoff_s: tuple[float, ...] = (0.5, 2.0, 5.0, 15.0)
    infra_base_s: float = 0.5
    infra_cap_s: float = 15.0

    def infra_delay(self, retries: int) -> float:
        """The wait before the ``retries``-th retry of an infrastructure failure (1-based)."""
        exponent = min(max(retries - 1, 0), 32)  # 2**32 * anything sane is past any cap
        return min(self.infra_cap_s, self.infra_base_s * (1 << exponent))


@dataclass(frozen=True, slots=True)
class Retry:
    """Put the message back; deliver it again after ``delay_s``."""

    delay_s: float
    counted: bool  # True when this failure used up one of the message's attempts
    reason: str


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """Park the message in the DLQ with ``reason`` (then settle it for good)."""

    reason: str
    attempts: int


Outcome = Retry | DeadLetter


def describe(exc: BaseException) -> str:
    """The reason recorded for a failure."""
    if isinstance(exc, PermanentError | DecodeError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def decide(exc: BaseException, *, failures: int, deliveries: int, policy: RetryPolicy) -> Outcome:
    """What to do with a message whose handling raised ``exc``.

    ``failures`` is how many content failures the message had before this one;
    ``deliveries`` how often it has been delivered (outages included), which paces the
    infrastructure backoff only.
    """
    reason = describe(exc)
    kind = classify(exc)
    if kind is Failure.INFRASTRUCTURE:
        return Retry(policy.infra_delay(deliveries), counted=False, reason=reason)
    if kind is Failure.MALFORMED:
        return DeadLetter(reason, failures + 1)
    attempts = failures + 1
    if attempts >= policy.max_attempts:
        return DeadLetter(reason, attempts)
    delay = policy.backoff_s[min(attempts - 1, len(policy.backoff_s) - 1)]
    return Retry(delay, counted=True, reason=reason)


class PoisonBudget:
    """Content failures per message (by stream sequence), as this process saw them.

    Kept in memory: a restart or another instance gives a poison message a fresh budget,
    so it is bounded by instances x attempts rather than exactly ``max_attempts``; the
    price of never letting an outage, however long, count against a message.
    """

    def __init__(self, capacity: int = 100_000) -> None:
        self._capacity = capacity
        self._failed: OrderedDict[int, tuple[int, str]] = OrderedDict()

    def failures(self, seq: int) -> int:
        entry = self._failed.get(seq)
        return entry[0] if entry else 0

    def last_reason(self, seq: int) -> str:
        entry = self._failed.get(seq)
        return entry[1] if entry else ""

    def record(self, seq: int, attempts: int, reason: str) -> None:
        """The message at ``seq`` has now failed ``attempts`` times because of its content."""
        remember(self._failed, seq, (attempts, reason), self._capacity)

    def forget(self, seq: int) -> None:
        self._failed.pop(seq, None)

    def spent(self, seq: int, policy: RetryPolicy) -> bool:
        """True when the message only waits to be dead-lettered (its DLQ publish failed)."""
        return self.failures(seq) >= policy.max_attempts


async def stored_for_sure(write: Callable[[], Awaitable[T]], *, max_wait_s: float = 1.0) -> T:
    """Do ``write`` until it succeeds, again after each failure of our infrastructure (waits
    doubling from 0.1 s to ``max_wait_s``); any other failure is raised. For the one write
    that follows a side effect nobody can take back (a provider that has the message): left
    to the redelivery, it would find no record and do the side effect again. Short waits, so
    the write lands first when the bus or the database is back."""
    async for attempt in AsyncRetrying(
        # A cancel is never a failure to try again, whatever it interrupted (its context
        # may be a timeout, which ``classify`` would call ours).
        retry=retry_if_exception(
            lambda exc: isinstance(exc, Exception) and classify(exc) is Failure.INFRASTRUCTURE
        ),
        wait=wait_exponential(multiplier=0.1, max=max_wait_s),
        reraise=True,
    ):
        with attempt:
            return await write()
    raise AssertionError("unreachable: tenacity retries until the write succeeds or raises")
