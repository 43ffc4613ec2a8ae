"""RPC fault rules (flood waits, any error, latency) and the flood waits Telegram enforces.

A FLOOD_WAIT_X given to (account, method) holds: calling that method again before X
seconds have passed gets FLOOD_WAIT with the remaining time and is counted as a violation,
so a test can prove that the gateway waits as told.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from dataclasses import dataclass
from typing import Any

from switchboard.sandbox.clock import Clock
from switchboard.sandbox.mtproto.config import MtprotoConfig
from switchboard.sandbox.mtproto.errors import RpcError, flood_wait
from switchboard.sandbox.mtproto.keys import AuthKey
from switchboard.sandbox.settings import check_not_negative

_RULE_FIELDS = {"method", "user_id", "key_id", "error", "seconds", "code", "every", "times"}
_MAX_VIOLATIONS = 1000


@dataclass
class RpcFault:
    """Inject `error` (FLOOD_WAIT gets `_<seconds>`) and/or `latency` into matching calls.

    `every`: the N-th, 2N-th... matching call; `times`: the next N matching calls; neither:
    every matching call. Latency applies to every matching call.
    """

    id: int
    method: str | None = None
    user_id: int | None = None
    key_id: str | None = None
    error: str | None = None
    seconds: int = 0
    code: int | None = None
    every: int | None = None
    times: int | None = None
    latency: float = 0.0
    matched: int = 0
    hits: int = 0

    def __post_init__(self) -> None:
        if self.error is None and self.seconds:
            self.error = "FLOOD_WAIT"
        if self.error == "FLOOD_WAIT" and self.seconds < 1:
            raise ValueError("a FLOOD_WAIT rule needs seconds >= 1")
        if self.every is not None and self.every < 1:
            raise ValueError("every must be >= 1")
        if self.times is not None and self.times < 0:
            raise ValueError("times cannot be negative")
        check_not_negative(self, "latency")
        if self.error is None and not self.latency:
            raise ValueError("a fault rule needs an error, seconds or latency")

    def matches(self, method: str, key: AuthKey) -> bool:
        return (
            (self.method is None or self.method.lower() == method.lower())
            and (self.user_id is None or self.user_id == key.user_id)
            and (self.key_id is None or self.key_id == key.key_id)
        )

    def draw(self) -> RpcError | None:
        """Count one matching call; the error to raise for it, if any."""
        self.matched += 1
        if self.error is None:
            return None
        if self.every is not None:
            fire = self.matched % self.every == 0
        elif self.times is not None:
            fire = self.hits < self.times
        else:
            fire = True
        if not fire:
            return None
        self.hits += 1
        if self.error == "FLOOD_WAIT":
            return flood_wait(self.seconds)
        return RpcError(self.error, self.code)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "method": self.method,
            "user_id": self.user_id,
            "key_id": self.key_id,
            "error": self.error,
            "seconds": self.seconds,
            "code": self.code,
            "every": self.every,
            "times": self.times,
            "latency": self.latency,
            "matched": self.matched,
            "hits": self.hits,
        }


class FloodControl:
    """Fault rules, active flood waits and call statistics."""

    def __init__(self, config: MtprotoConfig, clock: Clock) -> None:
        self.config = config
        self.clock = clock
        self.rules: dict[int, RpcFault] = {}
        self.waits: dict[tuple[str, str], float] = {}  # (scope, method) -> monotonic end
        self.calls: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.flood_waits: Counter[str] = Counter()
        self.violations: list[dict[str, Any]] = []
        self.violation_count = 0
        self._ids = itertools.count(1)

    def add(self, **spec: Any) -> RpcFault:
        unknown = set(spec) - _RULE_FIELDS - {"latency"}
        if unknown:
            raise ValueError(f"unknown fault fields: {sorted(unknown)}")
        rule = RpcFault(id=next(self._ids), **spec)
        self.rules[rule.id] = rule
        return rule

    def remove(self, rule_id: int) -> bool:
        return self.rules.pop(rule_id, None) is not None

    @staticmethod
    def scope(key: AuthKey) -> str:
        return f"user:{key.user_id}" if key.user_id is not None else f"key:{key.key_id}"

    def before(self, method: str, key: AuthKey) -> tuple[float, RpcError | None]:
        """(latency, error) for a call about to run: an enforced wait, then the rules."""
        self.calls[method] += 1
        scope = self.scope(key)
        now = self.clock.monotonic()
        until = self.waits.get((scope, method))
        if until is not None:
            if now < until - self.config.flood_grace:
                self.violation_count += 1
                if len(self.violations) < _MAX_VIOLATIONS:
                    self.violations.append(
                        {
                            "method": method,
                            "scope": scope,
                            "at": self.clock.time(),
                            "early_by": round(until - now, 3),
                        }
                    )
                # Answer with the rest of the wait; rounding up must not extend the wait.
                early = flood_wait(math.ceil(until - now))
                self.errors[early.name] += 1
                self.flood_waits[method] += 1
                return 0.0, early
            del self.waits[(scope, method)]
        latency, error = 0.0, None
        for rule in list(self.rules.values()):
            if rule.matches(method, key):
                latency = max(latency, rule.latency)
                error = error or rule.draw()
        if error is not None:
            error = self.issue(scope, method, error)
        return latency, error

    def issue(self, scope: str, method: str, error: RpcError) -> RpcError:
        """Count an error answer; a flood wait starts being enforced."""
        self.errors[error.name] += 1
        if error.seconds is not None:
            self.flood_waits[method] += 1
            end = self.clock.monotonic() + error.seconds
            self.waits[(scope, method)] = max(end, self.waits.get((scope, method), 0.0))
        return error

    def stats(self) -> dict[str, Any]:
        return {
            "calls": dict(self.calls),
            "errors": dict(self.errors),
            "flood_waits": dict(self.flood_waits),
            "flood_violations": self.violation_count,
            "violations": list(self.violations),
        }

    def reset(self) -> None:
        self.rules.clear()
        self.waits.clear()
        self.calls.clear()
        self.errors.clear()
        self.flood_waits.clear()
        self.violations.clear()
        self.violation_count = 0
