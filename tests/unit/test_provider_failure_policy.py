"""The provider-failure policy as a table: one failure of one call, what follows."""

from __future__ import annotations

import pytest

from switchboard.runtime.delivery.provider_failures import (
    BreakerSignal,
    DeadLetter,
    PauseUntil,
    ProviderFailure,
    ProviderFault,
    ProviderOutcome,
    ProviderPolicy,
    RetryAfter,
    breaker_signal,
    decide,
)

# No jitter: the table shows the cap each wait is drawn under.
POLICY = ProviderPolicy(
    max_attempts=3, backoff_base_s=1.0, backoff_max_s=3.0, rate_limit_wait_s=2.5,
    jitter=lambda cap: cap,
)  # fmt: skip

RETRYABLE = ProviderFailure(ProviderFault.RETRYABLE, "502", "bad gateway")
PERMANENT = ProviderFailure(ProviderFault.PERMANENT, "400", "chat not found")
LIMITED = ProviderFailure(ProviderFault.RATE_LIMITED, "429", "too many")
LIMITED_5 = ProviderFailure(ProviderFault.RATE_LIMITED, "429", "too many", retry_after=5.0)
LIMITED_0 = ProviderFailure(ProviderFault.RATE_LIMITED, "429", "too many", retry_after=0.0)
REFUSED = ProviderFailure(ProviderFault.UNAUTHORIZED, "telegram_401", "Unauthorized")


@pytest.mark.parametrize(
    ("failure", "attempt", "outcome"),
    [
        # retryable: counted, doubling backoff up to the cap, the DLQ at max_attempts
        (RETRYABLE, 1, RetryAfter(1.0, 1, "502: bad gateway")),
        (RETRYABLE, 2, RetryAfter(2.0, 2, "502: bad gateway")),
        (RETRYABLE, 3, DeadLetter("gave up after 3 attempts: bad gateway", 3, permanent=False)),
        (RETRYABLE, 9, DeadLetter("gave up after 9 attempts: bad gateway", 9, permanent=False)),
        # permanent: the DLQ at once, whatever the attempt
        (PERMANENT, 1, DeadLetter("chat not found", 1, permanent=True)),
        # rate-limited: the provider's wait, else the policy's; never counted, never the DLQ
        (LIMITED_5, 1, PauseUntil(5.0, 0, "429: too many")),
        (LIMITED, 1, PauseUntil(2.5, 0, "429: too many")),
        (LIMITED_0, 2, PauseUntil(2.5, 1, "429: too many")),
        (LIMITED, 3, PauseUntil(2.5, 2, "429: too many")),
        (LIMITED, 50, PauseUntil(2.5, 49, "429: too many")),
        # refused credentials: the account pauses at the policy's wait, the message waits
        # unspent for the operator (it failed permanently before: every queued send did)
        (REFUSED, 1, PauseUntil(60.0, 0, "telegram_401: Unauthorized")),
        (REFUSED, 3, PauseUntil(60.0, 2, "telegram_401: Unauthorized")),
        (REFUSED, 50, PauseUntil(60.0, 49, "telegram_401: Unauthorized")),
    ],
)
def test_decide(failure: ProviderFailure, attempt: int, outcome: ProviderOutcome) -> None:
    assert decide(failure, attempt, POLICY) == outcome


def test_backoff_is_capped_for_any_attempt() -> None:
    assert [POLICY.backoff(a) for a in (1, 2, 3, 4, 10_000)] == [1.0, 2.0, 3.0, 3.0, 3.0]


def test_jittered_backoff_stays_under_its_cap() -> None:
    policy = ProviderPolicy(backoff_base_s=1.0, backoff_max_s=8.0)
    waits = [policy.backoff(4) for _ in range(200)]
    assert all(0.0 <= w <= 8.0 for w in waits)
    assert len(set(waits)) > 1  # drawn, not fixed: retries of many messages spread out


@pytest.mark.parametrize(
    ("fault", "signal"),
    [
        (ProviderFault.RETRYABLE, BreakerSignal.FAILURE),
        (ProviderFault.RATE_LIMITED, BreakerSignal.RATE_LIMITED),
        (ProviderFault.PERMANENT, BreakerSignal.REJECTED),
        (ProviderFault.UNAUTHORIZED, BreakerSignal.FAILURE),
    ],
)
def test_breaker_signal(fault: ProviderFault, signal: BreakerSignal) -> None:
    assert breaker_signal(fault) is signal
