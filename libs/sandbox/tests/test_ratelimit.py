"""The limiter's semantics: exact windows, buckets, sticky 429s, refusals not counted."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from switchboard.sandbox.clock import ManualClock
from switchboard.sandbox.ratelimit import (
    RateLimiter,
    SlidingWindow,
    TokenBucket,
    retry_after_seconds,
    rule_from_json,
)


def test_sliding_window_admits_limit_then_refuses_with_whole_seconds() -> None:
    limiter = RateLimiter(ManualClock())
    rule = SlidingWindow(limit=30, window=1.0)
    decisions = [limiter.acquire([("bot", rule)]) for _ in range(31)]
    assert all(d.allowed for d in decisions[:30])
    assert not decisions[30].allowed
    assert decisions[30].retry_after == 1
    assert decisions[30].key == "bot"


def test_refusal_sticks_until_retry_after_has_passed() -> None:
    clock = ManualClock()
    limiter = RateLimiter(clock)
    rule = SlidingWindow(limit=2, window=0.5)
    for _ in range(2):
        assert limiter.acquire([("k", rule)]).allowed
    refused = limiter.acquire([("k", rule)])
    assert (refused.allowed, refused.retry_after) == (False, 1)
    clock.advance(0.6)  # the window alone would allow again, the announced wait not yet
    again = limiter.acquire([("k", rule)])
    assert (again.allowed, again.retry_after) == (False, 1)
    clock.advance(0.4)
    assert limiter.acquire([("k", rule)]).allowed


def test_token_bucket_allows_burst_then_about_rate() -> None:
    clock = ManualClock()
    limiter = RateLimiter(clock)
    rule = TokenBucket(rate=1.0, burst=3)
    assert [limiter.acquire([("chat", rule)]).allowed for _ in range(4)] == [True] * 3 + [False]
    clock.advance(1.0)
    assert limiter.acquire([("chat", rule)]).allowed
    assert not limiter.acquire([("chat", rule)]).allowed


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


@settings(max_examples=60, deadline=None)
@given(
    gaps=st.lists(st.floats(min_value=0.0, max_value=0.2), min_size=1, max_size=300),
    limit=st.integers(min_value=1, max_value=10),
    window=st.sampled_from([0.25, 0.5, 1.0]),
)
def test_sliding_window_never_exceeds_limit_in_any_window(
    gaps: list[float], limit: int, window: float
) -> None:
    clock = ManualClock()
    limiter = RateLimiter(clock)
    rule = SlidingWindow(limit=limit, window=window)
    accepted: list[float] = []
    for gap in gaps:
        clock.advance(gap)
        if limiter.acquire([("k", rule)]).allowed:
            accepted.append(clock.monotonic())
    for i, start in enumerate(accepted):
        in_window = [t for t in accepted[i:] if t < start + window]
        assert len(in_window) <= limit


@settings(max_examples=60, deadline=None)
@given(
    gaps=st.lists(st.floats(min_value=0.0, max_value=0.5), min_size=1, max_size=200),
    burst=st.integers(min_value=1, max_value=5),
)
def test_token_bucket_never_exceeds_burst_plus_rate(gaps: list[float], burst: int) -> None:
    clock = ManualClock()
    limiter = RateLimiter(clock)
    rule = TokenBucket(rate=2.0, burst=burst)
    accepted: list[float] = []
    for gap in gaps:
        clock.advance(gap)
        if limiter.acquire([("k", rule)]).allowed:
            accepted.append(clock.monotonic())
    for i, start in enumerate(accepted):
        for j in range(i, len(accepted)):
            span = accepted[j] - start
            assert j - i + 1 <= burst + span * 2.0 + 1e-6
