"""In-process rate limiter of the fake providers: sliding windows and token buckets per key.

A refused key stays refused until the announced `retry_after` has passed, like Telegram,
and refused requests are never counted as accepted. `retry_after` is the key's actual wait
(the time until its window or bucket admits again), rounded up to whole seconds; an optional
`Penalty` lengthens it for a key that keeps being refused, so a client cannot buy throughput
by flooding and retrying.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from switchboard.sandbox.clock import Clock, SystemClock

_EPSILON = 1e-9


@dataclass(frozen=True)
class SlidingWindow:
    """At most `limit` accepted requests in any `window` seconds (exact, log based)."""

    limit: int
    window: float = 1.0

    def __post_init__(self) -> None:
        if self.limit < 1 or self.window <= 0:
            raise ValueError("a sliding window needs limit >= 1 and window > 0")

    def to_json(self) -> dict[str, Any]:
        return {"kind": "window", "limit": self.limit, "window": self.window}


@dataclass(frozen=True)
class TokenBucket:
    """`rate` requests per second on average with bursts of up to `burst`."""

    rate: float
    burst: int = 1

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.burst < 1:
            raise ValueError("a token bucket needs rate > 0 and burst >= 1")

    def to_json(self) -> dict[str, Any]:
        return {"kind": "bucket", "rate": self.rate, "burst": self.burst}


Rule = SlidingWindow | TokenBucket


@dataclass(frozen=True)
class Penalty:
    """Longer waits for repeat offenders: a key blocked at its n-th refusal within `window`
    seconds of its first is blocked `step * (n - 1)` seconds (at most `cap`) longer.

    Unverified model: Telegram's Bot FAQ only says repeated flooding lengthens the wait, not
    by how much; these numbers make flooding cost more than it gains, nothing more.
    """

    step: float = 1.0
    window: float = 60.0
    cap: float = 60.0

    def __post_init__(self) -> None:
        if self.step < 0 or self.window <= 0 or self.cap < 0:
            raise ValueError("a penalty needs step >= 0, window > 0 and cap >= 0")

    def extra_seconds(self, strikes: int) -> float:
        """Seconds added to the wait of a key refused for the `strikes`-th time."""
        return min(self.cap, self.step * max(strikes - 1, 0))

    def to_json(self) -> dict[str, Any]:
        return {"step": self.step, "window": self.window, "cap": self.cap}


def penalty_from_json(data: Mapping[str, Any] | None) -> Penalty | None:
    """`{"step": 1, "window": 60, "cap": 60}` (each optional) or `None` for no penalty."""
    if data is None:
        return None
    unknown = set(data) - {"step", "window", "cap"}
    if unknown:
        raise ValueError(f"unknown penalty fields: {sorted(unknown)}")
    return Penalty(**{k: float(v) for k, v in data.items()})


def rule_from_json(data: Mapping[str, Any] | None) -> Rule | None:
    """Build a rule from its JSON form; `None` means "no limit".

    Accepts `{"limit": 30, "window": 1}` (sliding window) or `{"rate": 1, "burst": 3}`
    (token bucket); `kind` may be given explicitly as "window" or "bucket".
    """
    if data is None:
        return None
    kind = data.get("kind") or ("bucket" if "rate" in data else "window")
    if kind == "bucket":
        return TokenBucket(rate=float(data["rate"]), burst=int(data.get("burst", 1)))
    if kind == "window":
        return SlidingWindow(limit=int(data["limit"]), window=float(data.get("window", 1.0)))
    raise ValueError(f"unknown rate limit kind {kind!r}")


def retry_after_seconds(wait: float) -> int:
    """Whole seconds a client is told to wait: rounded up, never less than 1."""
    return max(1, math.ceil(wait - _EPSILON))


@dataclass(frozen=True)
class Decision:
    """Outcome of one acquire: allowed, or refused with the whole seconds to wait."""

    allowed: bool
    retry_after: int = 0
    key: str | None = None


@dataclass
class _KeyState:
    stamps: deque[float] = field(default_factory=deque)
    tokens: float | None = None
    updated: float = 0.0
    blocked_until: float = -math.inf
    strikes: int = 0
    strikes_since: float = -math.inf


class RateLimiter:
    """Keyed limiter: `acquire` checks several (key, rule) pairs atomically."""

    def __init__(self, clock: Clock | None = None) -> None:
        self._clock = clock or SystemClock()
        self._keys: dict[str, _KeyState] = {}

    def acquire(
        self,
        checks: Iterable[tuple[str, Rule]],
        now: float | None = None,
        penalty: Penalty | None = None,
    ) -> Decision:
        """Accept one request for every key, or refuse it for all of them.

        A key already blocked answers with the time left; a key whose rule is exceeded is
        blocked for `retry_after` whole seconds. With a `penalty`, every refusal of a key
        (also one while it is blocked) counts as a strike, and a new block lasts the rule's
        wait plus the extra seconds of the strikes so far. Nothing is consumed on refusal.
        """
        at = self._clock.monotonic() if now is None else now
        pairs = list(checks)
        worst: tuple[int, str] | None = None
        for key, rule in pairs:
            state = self._keys.setdefault(key, _KeyState())
            if state.blocked_until > at:
                # A blocked key tells the time left and never extends the block, so a client
                # that waits as told gets through; with a penalty the refusal is a strike
                # that lengthens the key's next block.
                self._strike(state, penalty, at)
                left = retry_after_seconds(state.blocked_until - at)
                worst = max(worst or (0, key), (left, key))
                continue
            wait = self._wait(state, rule, at)
            if wait <= 0:
                continue
            if penalty is not None:
                wait += penalty.extra_seconds(self._strike(state, penalty, at))
            seconds = retry_after_seconds(wait)
            state.blocked_until = at + seconds
            worst = max(worst or (0, key), (seconds, key))
        if worst is not None:
            return Decision(allowed=False, retry_after=worst[0], key=worst[1])
        for key, rule in pairs:
            self._consume(self._keys[key], rule, at)
        return Decision(allowed=True)

    @staticmethod
    def _strike(state: _KeyState, penalty: Penalty | None, at: float) -> int:
        """Count one refusal inside the penalty window; the key's strikes so far."""
        if penalty is None:
            return 0
        if at - state.strikes_since > penalty.window:
            state.strikes, state.strikes_since = 0, at
        state.strikes += 1
        return state.strikes

    def wait_time(self, key: str, rule: Rule, now: float | None = None) -> float:
        """Seconds until `key` would accept one more request (0 when it would now)."""
        at = self._clock.monotonic() if now is None else now
        state = self._keys.get(key)
        if state is None:
            return 0.0
        return max(state.blocked_until - at, self._wait(state, rule, at), 0.0)

    def reset(self, prefix: str = "") -> None:
        """Forget the history of every key starting with `prefix` (all keys by default)."""
        for key in [k for k in self._keys if k.startswith(prefix)]:
            del self._keys[key]

    @staticmethod
    def _wait(state: _KeyState, rule: Rule, at: float) -> float:
        if isinstance(rule, SlidingWindow):
            stamps = state.stamps
            while stamps and stamps[0] <= at - rule.window:
                stamps.popleft()
            if len(stamps) < rule.limit:
                return 0.0
            return stamps[len(stamps) - rule.limit] + rule.window - at
        tokens = _refill(state, rule, at)
        if tokens >= 1.0 - _EPSILON:
            return 0.0
        return (1.0 - tokens) / rule.rate

    @staticmethod
    def _consume(state: _KeyState, rule: Rule, at: float) -> None:
        if isinstance(rule, SlidingWindow):
            state.stamps.append(at)
            return
        state.tokens = max(_refill(state, rule, at) - 1.0, 0.0)
        state.updated = at


def _refill(state: _KeyState, rule: TokenBucket, at: float) -> float:
    if state.tokens is None:
        state.tokens = float(rule.burst)
        state.updated = at
    elapsed = max(at - state.updated, 0.0)
    state.tokens = min(float(rule.burst), state.tokens + elapsed * rule.rate)
    state.updated = at
    return state.tokens
