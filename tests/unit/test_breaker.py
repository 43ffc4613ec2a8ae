"""The circuit breaker's states: closed, open after failures, one half-open probe."""

from __future__ import annotations

from switchboard.outbound.breaker import Breaker, Breakers


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
