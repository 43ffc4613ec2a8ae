"""The limiter's semantics: exact windows, buckets, sticky 429s, refusals not counted."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from switchboard.sandbox.clock import ManualClock
from switchboard.sandbox.ratelimit import (
    Decision,
    Penalty,
    RateLimiter,
    Rule,
    SlidingWindow,
    TokenBucket,
    penalty_from_json,
    retry_after_seconds,
    rule_from_json,
)


@dataclass
class OneKey:
    """One key under one rule (and maybe a penalty) on a clock the test moves."""

    rule: Rule
    penalty: Penalty | None = None
    clock: ManualClock = field(default_factory=ManualClock)

    def __post_init__(self) -> None:
        self.limiter = RateLimiter(self.clock)

    def acquire(self) -> Decision:
        return self.limiter.acquire([("k", self.rule)], penalty=self.penalty)


def test_sliding_window_admits_limit_then_refuses_with_whole_seconds() -> None:
    limiter = RateLimiter(ManualClock())
    rule = SlidingWindow(limit=30, window=1.0)
    decisions = [limiter.acquire([("bot", rule)]) for _ in range(31)]
    assert all(d.allowed for d in decisions[:30])
    assert not decisions[30].allowed
    assert decisions[30].retry_after == 1
    assert decisions[30].key == "bot"


def test_refusal_sticks_until_retry_after_has_passed() -> None:
    key = OneKey(SlidingWindow(limit=2, window=0.5))
    for _ in range(2):
        assert key.acquire().allowed
    refused = key.acquire()
    assert (refused.allowed, refused.retry_after) == (False, 1)
    key.clock.advance(0.6)  # the window alone would allow again, the announced wait not yet
    again = key.acquire()
    assert (again.allowed, again.retry_after) == (False, 1)
    key.clock.advance(0.4)
    assert key.acquire().allowed


def test_token_bucket_allows_burst_then_about_rate() -> None:
    key = OneKey(TokenBucket(rate=1.0, burst=3))
    assert [key.acquire().allowed for _ in range(4)] == [True] * 3 + [False]
    key.clock.advance(1.0)
    assert key.acquire().allowed
    assert not key.acquire().allowed


def test_refused_request_consumes_nothing_on_any_key() -> None:
    limiter = RateLimiter(ManualClock())
    wide, narrow = SlidingWindow(limit=2, window=1.0), SlidingWindow(limit=1, window=1.0)
    assert limiter.acquire([("bot", wide), ("chat:1", narrow)]).allowed
    for _ in range(5):
        assert not limiter.acquire([("bot", wide), ("chat:1", narrow)]).allowed
    # the bot key only spent one slot, so another chat still gets through
    assert limiter.acquire([("bot", wide), ("chat:2", narrow)]).allowed


def test_longest_wait_is_reported_across_keys() -> None:
    limiter = RateLimiter(ManualClock())
    minute = SlidingWindow(limit=1, window=60.0)
    second = SlidingWindow(limit=1, window=1.0)
    assert limiter.acquire([("a", second), ("b", minute)]).allowed
    refused = limiter.acquire([("a", second), ("b", minute)])
    assert (refused.retry_after, refused.key) == (60, "b")


def test_retry_after_rounds_up_and_is_at_least_one() -> None:
    assert retry_after_seconds(0.0001) == 1
    assert retry_after_seconds(1.0) == 1
    assert retry_after_seconds(1.2) == 2
    assert retry_after_seconds(59.5) == 60


def test_rules_from_json() -> None:
    assert rule_from_json({"limit": 20, "window": 60}) == SlidingWindow(20, 60.0)
    assert rule_from_json({"rate": 1, "burst": 3}) == TokenBucket(1.0, 3)
    assert rule_from_json(None) is None


def _accepted(rule: Rule, gaps: list[float]) -> list[float]:
    """When requests ``gaps`` seconds apart were admitted under ``rule``."""
    key = OneKey(rule)
    accepted: list[float] = []
    for gap in gaps:
        key.clock.advance(gap)
        if key.acquire().allowed:
            accepted.append(key.clock.monotonic())
    return accepted


@settings(max_examples=60, deadline=None)
@given(
    gaps=st.lists(st.floats(min_value=0.0, max_value=0.2), min_size=1, max_size=300),
    limit=st.integers(min_value=1, max_value=10),
    window=st.sampled_from([0.25, 0.5, 1.0]),
)
def test_sliding_window_never_exceeds_limit_in_any_window(
    gaps: list[float], limit: int, window: float
) -> None:
    accepted = _accepted(SlidingWindow(limit=limit, window=window), gaps)
    for i, start in enumerate(accepted):
        in_window = [t for t in accepted[i:] if t < start + window]
        assert len(in_window) <= limit


@settings(max_examples=60, deadline=None)
@given(
    gaps=st.lists(st.floats(min_value=0.0, max_value=0.5), min_size=1, max_size=200),
    burst=st.integers(min_value=1, max_value=5),
)
def test_token_bucket_never_exceeds_burst_plus_rate(gaps: list[float], burst: int) -> None:
    accepted = _accepted(TokenBucket(rate=2.0, burst=burst), gaps)
    for i, start in enumerate(accepted):
        for j in range(i, len(accepted)):
            span = accepted[j] - start
            assert j - i + 1 <= burst + span * 2.0 + 1e-6


def test_retry_after_is_the_actual_wait_not_always_one() -> None:
    key = OneKey(SlidingWindow(limit=2, window=10.0))
    assert key.acquire().allowed
    key.clock.advance(4.0)
    assert key.acquire().allowed
    # the oldest stamp leaves the window 6 s from now
    assert key.acquire().retry_after == 6


def test_without_a_penalty_hammering_does_not_lengthen_the_wait() -> None:
    key = OneKey(SlidingWindow(limit=1, window=1.0))
    assert key.acquire().allowed
    waits = [key.acquire().retry_after for _ in range(5)]
    assert waits == [1] * 5
    key.clock.advance(1.0)
    assert key.acquire().allowed


def test_penalty_lengthens_the_next_block_by_the_strikes_so_far() -> None:
    key = OneKey(SlidingWindow(limit=1, window=1.0), Penalty(step=2.0, window=60.0, cap=5.0))
    assert key.acquire().allowed
    # hammering while blocked: each refusal is told the time left, the block stays as it is
    waits = [key.acquire().retry_after for _ in range(4)]
    assert waits == [1, 1, 1, 1]
    key.clock.advance(1.0)
    assert key.acquire().allowed
    # the next block: the rule's 1 s plus 2 s per earlier strike (4), capped at 5 s
    refused = key.acquire()
    assert refused.retry_after == 6
    key.clock.advance(5.9)
    assert not key.acquire().allowed
    key.clock.advance(0.1)
    assert key.acquire().allowed


def test_a_client_that_waits_as_told_is_admitted_and_strikes_expire() -> None:
    key = OneKey(SlidingWindow(limit=1, window=1.0), Penalty(step=1.0, window=10.0, cap=60.0))
    assert key.acquire().allowed
    first = key.acquire()
    assert (first.allowed, first.retry_after) == (False, 1)
    key.clock.advance(first.retry_after)
    assert key.acquire().allowed
    # a second block inside the penalty window costs one second more
    second = key.acquire()
    assert second.retry_after == 2
    key.clock.advance(second.retry_after)
    assert key.acquire().allowed
    # after the penalty window the count starts over
    key.clock.advance(11.0)
    assert key.acquire().allowed
    assert key.acquire().retry_after == 1


def test_flooding_gains_nothing_over_waiting_under_a_penalty() -> None:
    """Over 60 simulated seconds a client that retries every 10 ms gets no more accepted
    than one that sleeps exactly the announced retry_after."""

    def run(flood: bool) -> tuple[int, int]:
        key = OneKey(SlidingWindow(limit=30, window=1.0), Penalty())
        accepted = refused = 0
        end = key.clock.monotonic() + 60.0
        while key.clock.monotonic() < end:
            decision = key.acquire()
            if decision.allowed:
                accepted += 1
                key.clock.advance(0.01)
            else:
                refused += 1
                key.clock.advance(0.01 if flood else decision.retry_after)
        return accepted, refused

    flood_ok, flood_refused = run(flood=True)
    polite_ok, polite_refused = run(flood=False)
    assert flood_refused > 10 * polite_refused
    # without a penalty the two come out about even (1380 vs 1401 accepted)
    assert flood_ok < polite_ok / 2


def test_penalty_from_json() -> None:
    assert penalty_from_json(None) is None
    assert penalty_from_json({"step": 2}) == Penalty(step=2.0)
    with pytest.raises(ValueError, match="unknown penalty fields"):
        penalty_from_json({"steps": 2})
    with pytest.raises(ValueError, match="step >= 0"):
        Penalty(step=-1)
