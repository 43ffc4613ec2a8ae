"""Circuit breakers per provider and account, with half-open probes.

Per instance on purpose: each instance learns an outage from its own calls, and the
breaker only saves calls that would fail anyway (the rate limits and retry schedule,
which matter for correctness, are shared). pybreaker and similar libraries are
synchronous; this one is asyncio-native and exposes its state for /health/integrations.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


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

    def success(self) -> None:
        self.failures, self.opened_at, self.probing = 0, None, False

    def failure(self, error: str) -> None:
        self.failures += 1
        self.total_failures += 1
        self.last_error = error
        if self.probing or self.failures >= self.threshold:
            self.opened_at = self.clock()
        self.probing = False

    def release(self) -> None:
        """A probe ended without telling anything about the provider (e.g. a 429)."""
        self.probing = False


class Breakers:
    def __init__(self, threshold: int = 5, cooldown: float = 10.0) -> None:
        self.threshold, self.cooldown = threshold, cooldown
        self.by_key: dict[str, Breaker] = {}

    def get(self, channel: str, account: str) -> Breaker:
        key = f"{channel}/{account}"
        if key not in self.by_key:
            self.by_key[key] = Breaker(self.threshold, self.cooldown)
        return self.by_key[key]

    def report(self) -> dict[str, dict[str, object]]:
        return {
            key: {
                "state": b.state,
                "consecutive_failures": b.failures,
                "total_failures": b.total_failures,
                "last_error": b.last_error,
            }
            for key, b in sorted(self.by_key.items())
        }
