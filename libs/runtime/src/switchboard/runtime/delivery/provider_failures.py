"""The provider-failure policy: what a failed call to an outside provider (a chat API,
SendPulse, Meta's Conversions API) means for the message, decided in one pure function.

A provider call fails one of four ways. *Permanent*: the provider refused the request
itself, so the message is dead-lettered at once. *Rate-limited*: the provider asked us to
slow down, so the limit key is paused for every instance for ``retry_after`` (or the
policy's wait when none was given) and the message goes again then, without using up an
attempt. *Unauthorized*: the provider refused the account's credentials (a revoked bot
token, an expired access token): nothing is wrong with the message, so the account is
paused as for a rate limit (``unauthorized_wait_s`` at a time) and its messages wait,
unspent, until the operator fixes the account (a rotated secret applies live), instead of
failing every queued send and campaign. *Retryable* (5xx, resets, timeouts): backoff with
full jitter until the attempts are spent, then the DLQ. What the circuit breaker hears
follows from the fault alone.

Failures of our own infrastructure are :mod:`switchboard.runtime.failures`' business.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum


class ProviderFault(StrEnum):
    """How a provider call failed."""

    RETRYABLE = "retryable"  # 5xx, timeouts, resets: try again with backoff
    RATE_LIMITED = "rate_limited"  # 429-like: wait retry_after, for every instance
    PERMANENT = "permanent"  # bad request, blocked, unknown chat, 24 h window: give up
    UNAUTHORIZED = "unauthorized"  # the account's credentials refused: wait for the operator


class BreakerSignal(StrEnum):
    """What a failure tells the account's circuit breaker."""

    FAILURE = "failure"  # the provider may be down: counts toward opening
    RATE_LIMITED = "rate_limited"  # says nothing about the provider's health
    REJECTED = "rejected"  # the provider answered (it is up); the request was bad


_BREAKER = {
    ProviderFault.RETRYABLE: BreakerSignal.FAILURE,
    ProviderFault.RATE_LIMITED: BreakerSignal.RATE_LIMITED,
    ProviderFault.PERMANENT: BreakerSignal.REJECTED,
    # The account cannot send until it is fixed: its breaker opens, and /health shows why.
    ProviderFault.UNAUTHORIZED: BreakerSignal.FAILURE,
}


def breaker_signal(fault: ProviderFault) -> BreakerSignal:
    """What the breaker hears of a call that failed with ``fault``."""
    return _BREAKER[fault]


def full_jitter(cap: float) -> float:
    """A wait drawn uniformly from [0, cap] (AWS's full jitter): retries spread out."""
    return random.uniform(0, cap)  # noqa: S311 (jitter, not a secret)


@dataclass(frozen=True, slots=True)
class ProviderFailure:
    """A failed provider call, as the policy needs it."""

    fault: ProviderFault
    code: str
    reason: str
    retry_after: float | None = None


@dataclass(frozen=True, slots=True)
class ProviderPolicy:
    """``max_attempts`` counted calls before the DLQ; retryable failures wait up to
    ``backoff_base_s * 2**(attempt-1)`` (capped at ``backoff_max_s``, jittered); a rate
    limit that names no wait pauses ``rate_limit_wait_s``, refused credentials
    ``unauthorized_wait_s`` at a time."""

    max_attempts: int = 6
    backoff_base_s: float = 1.0
    backoff_max_s: float = 60.0
    rate_limit_wait_s: float = 1.0
    unauthorized_wait_s: float = 60.0
    jitter: Callable[[float], float] = field(default=full_jitter, compare=False)

    def backoff(self, attempt: int) -> float:
        """The wait after the ``attempt``-th counted call failed (1-based)."""
        exponent = min(max(attempt - 1, 0), 32)  # 2**32 * anything sane is past any cap
        return self.jitter(min(self.backoff_max_s, self.backoff_base_s * (1 << exponent)))


@dataclass(frozen=True, slots=True)
class RetryAfter:
    """Deliver the message again after ``delay_s``; its record keeps ``attempts``."""

    delay_s: float
    attempts: int
    reason: str


@dataclass(frozen=True, slots=True)
class PauseUntil:
    """Pause the call's limit key for ``delay_s`` for every instance, and deliver the
    message again when the pause ends; the call did not count (``attempts`` as before it)."""

    delay_s: float
    attempts: int
    reason: str


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """Give up: the failure event and a DLQ entry with ``reason``."""

    reason: str
    attempts: int
    permanent: bool


ProviderOutcome = RetryAfter | PauseUntil | DeadLetter


def decide(failure: ProviderFailure, attempt: int, policy: ProviderPolicy) -> ProviderOutcome:
    """What follows from ``failure`` of the ``attempt``-th call (1-based, this one counted)."""
    reason = f"{failure.code}: {failure.reason}"
    if failure.fault is ProviderFault.PERMANENT:
        return DeadLetter(failure.reason, attempt, permanent=True)
    if failure.fault is ProviderFault.UNAUTHORIZED:
        # Not a failed attempt either: the message was never the problem.
        return PauseUntil(policy.unauthorized_wait_s, max(attempt - 1, 0), reason)
    if failure.fault is ProviderFault.RATE_LIMITED:
        # A missing or zero retry_after gets the policy's wait: an immediate retry would
        # only hit the same limit again.
        wait = failure.retry_after or policy.rate_limit_wait_s
        # Not a failed attempt: nothing went out, the message goes again once the pause ends.
        return PauseUntil(wait, max(attempt - 1, 0), reason)
    if attempt >= policy.max_attempts:
        return DeadLetter(
            f"gave up after {attempt} attempts: {failure.reason}", attempt, permanent=False
        )
    return RetryAfter(policy.backoff(attempt), attempt, reason)
