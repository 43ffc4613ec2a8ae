"""Per-account inbound limit, so one flooded account cannot starve the others.

Per instance on purpose: it guards this process's capacity (a shared KV round-trip per
webhook would cost more than the work it protects), so the effective limit is the setting
times the number of instances. Written here because the libraries at hand (aiolimiter)
wait for capacity, while a webhook must be refused at once with a Retry-After.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class TokenBuckets:
    """One token bucket per key; ``take`` returns 0 when allowed, else seconds to wait."""

    rate: float
    burst: float
    clock: object = field(default=time.monotonic)
    _state: dict[str, tuple[float, float]] = field(default_factory=dict)

    def take(self, key: str) -> float:
        now: float = self.clock()  # type: ignore[operator]
        tokens, last = self._state.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens >= 1:
            self._state[key] = (tokens - 1, now)
            return 0.0
        self._state[key] = (tokens, now)
        return (1 - tokens) / self.rate
