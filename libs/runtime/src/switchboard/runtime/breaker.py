"""Circuit breakers per provider and account, with half-open probes: outbound's sends and
the CRM's downloads of received files hold their provider calls behind them.

Per instance on purpose: each instance learns an outage from its own calls, and the
breaker only saves calls that would fail anyway (the rate limits and retry schedule,
which matter for correctness, are shared). pybreaker and similar libraries are
synchronous; this one is asyncio-native and exposes its state for /health/integrations.

Every call's result passes through an account's breaker, so it also keeps what
``/health/integrations`` reports (last success, last failure and why, recent latencies) and
the Prometheus series the alerts read (``switchboard_provider_breaker_open``,
``switchboard_provider_calls_total``).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from prometheus_client import Counter, Gauge

from switchboard.runtime.delivery.provider_failures import BreakerSignal
from switchboard.runtime.integrations import iso, p95

BREAKER_OPEN = Gauge(
    "switchboard_provider_breaker_open",
    "1 while a provider account's circuit breaker holds its calls (open or half-open)",
    ["provider", "account"],
)
PROVIDER_CALLS = Counter(
    "switchboard_provider_calls_total",
    "Provider calls by outcome: ok, failed (5xx, network, timeout), rate_limited (429), "
    "rejected (the provider refused the request itself)",
    ["provider", "account", "outcome"],
)


@dataclass
class Breaker:
    """closed -> (failures in a row) -> open -> (cooldown) -> half_open -> closed/open."""

    threshold: int = 5
    cooldown: float = 10.0
    clock: Callable[[], float] = time.monotonic
    failures: int = 0
    opened_at: float | None = None
    probing: bool = False
    last_error: str | None = None
    total_failures: int = field(default=0)
    provider: str = ""
    account: str = ""
    last_success_at: datetime | None = None
    last_failure_at: datetime | None = None
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=200))

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return "closed"
        if self.clock() - self.opened_at >= self.cooldown:
            return "half_open"
        return "open"

    def allow(self) -> tuple[bool, float]:
        """(may call now, else seconds until a probe is allowed)."""
        state = self.state
        if state == "closed":
            return True, 0.0
        if state == "half_open" and not self.probing:
            self.probing = True  # exactly one probe at a time
            return True, 0.0
        assert self.opened_at is not None
        return False, max(0.1, self.opened_at + self.cooldown - self.clock())

    def success(self, latency_s: float | None = None) -> None:
        """The provider answered the call (``latency_s`` long, when measured)."""
        self._close()
        self._count("ok")
        self.last_success_at = datetime.now(UTC)
        if latency_s is not None:
            self.latencies.append(latency_s)

    def rejected(self, error: str) -> None:
        """The provider answered and refused the request itself: it is up, the input is bad."""
        self._close()
        self._count("rejected")
        self.last_success_at = datetime.now(UTC)

    def failure(self, error: str) -> None:
        self.failures += 1
        self.total_failures += 1
        self.last_error = error
        self.last_failure_at = datetime.now(UTC)
        self._count("failed")
        if self.probing or self.failures >= self.threshold:
            self.opened_at = self.clock()
            if self.provider:
                BREAKER_OPEN.labels(self.provider, self.account).set(1)
        self.probing = False

    def rate_limited(self, error: str) -> None:
        """A 429-like answer: it tells nothing about the provider's health (the probe ends)."""
        self._count("rate_limited")
        self.last_error = error
        self.last_failure_at = datetime.now(UTC)
        self.release()

    def hear(self, signal: BreakerSignal, error: str) -> None:
        """A failed call, as the provider-failure policy classifies it for the breaker."""
        if signal is BreakerSignal.FAILURE:
            self.failure(error)
        elif signal is BreakerSignal.RATE_LIMITED:
            self.rate_limited(error)
        else:
            self.rejected(error)

    def release(self) -> None:
        """A probe ended without telling anything about the provider (e.g. a 429)."""
        self.probing = False

    def _close(self) -> None:
        if self.opened_at is not None and self.provider:
            BREAKER_OPEN.labels(self.provider, self.account).set(0)
        self.failures, self.opened_at, self.probing = 0, None, False

    def _count(self, outcome: str) -> None:
        if self.provider:
            PROVIDER_CALLS.labels(self.provider, self.account, outcome).inc()


class Breakers:
    def __init__(self, threshold: int = 5, cooldown: float = 10.0) -> None:
        self.threshold, self.cooldown = threshold, cooldown
        self.by_key: dict[str, Breaker] = {}

    def get(self, channel: str, account: str) -> Breaker:
        key = f"{channel}/{account}"
        if key not in self.by_key:
            self.by_key[key] = Breaker(
                self.threshold, self.cooldown, provider=channel, account=account
            )
            BREAKER_OPEN.labels(channel, account).set(0)
        return self.by_key[key]

    def report(self) -> dict[str, dict[str, object]]:
        return {
            key: {
                "state": b.state,
                "consecutive_failures": b.failures,
                "total_failures": b.total_failures,
                "last_error": b.last_error,
                "last_success_at": iso(b.last_success_at),
                "last_failure_at": iso(b.last_failure_at),
                "p95_latency_ms": None if (q := p95(b.latencies)) is None else round(q * 1000, 1),
                "recent_calls": len(b.latencies),
            }
            for key, b in sorted(self.by_key.items())
        }
