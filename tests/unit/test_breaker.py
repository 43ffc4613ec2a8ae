"""The circuit breaker's states: closed, open after failures, one half-open probe."""

from __future__ import annotations

from prometheus_client import REGISTRY

from switchboard.runtime.breaker import Breaker, Breakers
from switchboard.runtime.integrations import p95


def test_opens_after_threshold_and_probes_once_after_cooldown() -> None:
    now = [0.0]
    b = Breaker(threshold=3, cooldown=10, clock=lambda: now[0])
    for _ in range(2):
        b.failure("502")
    assert b.state == "closed"
    assert b.allow() == (True, 0.0)
    b.failure("502")
    assert b.state == "open"
    allowed, wait = b.allow()
    assert (allowed, wait) == (False, 10.0)
    now[0] = 10.0
    assert b.state == "half_open"
    assert b.allow() == (True, 0.0)  # the probe
    assert b.allow()[0] is False  # only one at a time
    b.failure("502")  # the probe failed: open again for a full cooldown
    assert b.state == "open"
    now[0] = 20.0
    assert b.allow() == (True, 0.0)
    b.success()
    assert b.state == "closed"
    assert b.failures == 0


def test_rate_limit_answers_release_the_probe_without_closing() -> None:
    now = [0.0]
    b = Breaker(threshold=1, cooldown=1, clock=lambda: now[0])
    b.failure("timeout")
    now[0] = 1.0
    assert b.allow()[0] is True
    b.release()
    assert b.state == "half_open"
    assert b.allow()[0] is True


def test_report_names_every_integration() -> None:
    breakers = Breakers(threshold=1)
    breakers.get("telegram", "shop").failure("503 Service Unavailable")
    breakers.get("whatsapp", "main")
    report = breakers.report()
    assert report["telegram/shop"]["state"] == "open"
    assert report["telegram/shop"]["last_error"] == "503 Service Unavailable"
    assert report["whatsapp/main"]["state"] == "closed"


def _sample(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def test_calls_are_counted_and_reported_per_account() -> None:
    """What /health/integrations shows and the alerts read: outcomes, last success and
    failure, p95 latency, and the open-breaker gauge."""
    breakers = Breakers(threshold=2)
    b = breakers.get("viber", "reportme")
    labels = {"provider": "viber", "account": "reportme"}
    assert _sample("switchboard_provider_breaker_open", **labels) == 0
    for ms in range(1, 101):
        b.success(ms / 1000)
    b.rejected("400 bad recipient")
    b.rate_limited("429 too many requests")
    assert b.state == "closed"
    b.failure("502")
    b.failure("502")
    assert b.state == "open"
    assert _sample("switchboard_provider_breaker_open", **labels) == 1
    for outcome, n in (("ok", 100), ("rejected", 1), ("rate_limited", 1), ("failed", 2)):
        assert _sample("switchboard_provider_calls_total", outcome=outcome, **labels) == n
    report = breakers.report()["viber/reportme"]
    assert report["p95_latency_ms"] == 95.0
    assert report["last_error"] == "502"
    assert report["last_success_at"] is not None
    assert report["last_failure_at"] is not None
    b.success()
    assert _sample("switchboard_provider_breaker_open", **labels) == 0


def test_p95_of_nothing_is_none() -> None:
    assert p95([]) is None
    assert p95([0.2]) == 0.2
