"""The dashboard's cookies (CSRF token, session id): Secure wherever the browser is not on a
loopback host, because behind a TLS-terminating ingress the pod only ever sees plain http;
and the sign-in decisions that need no bus: idle and absolute lifetimes, attempt windows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from starlette.requests import Request

from switchboard.analytics.dashboard import CSRF_COOKIE, login_page
from switchboard.analytics.signin import (
    Lifetimes,
    SignIn,
    alive,
    attempt_key,
    needs_refresh,
    retry_after,
    session_key,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
LIFETIMES = Lifetimes(idle=timedelta(minutes=30), absolute=timedelta(hours=12))


def _request(host: str) -> Request:
    scope = {
        "type": "http",
        "method": "GET",
        "scheme": "http",
        "path": "/",
        "query_string": b"",
        "headers": [(b"host", host.encode())],
        "server": (host, 80),
    }
    return Request(scope)


@pytest.mark.parametrize(
    ("host", "secure"),
    [
        ("analytics.example.com", True),
        ("10.0.3.7", True),
        ("127.0.0.1", False),
        ("localhost", False),
    ],
)
def test_the_cookie_is_secure_except_on_loopback(host: str, secure: bool) -> None:
    response = login_page(_request(host))
    assert response.status_code == 401
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{CSRF_COOKIE}=")
    token = cookie.split(";")[0].split("=", 1)[1]
    assert f'value="{token}"' in response.body.decode()  # the form carries the same token
    assert "httponly" in cookie.lower()
    assert "samesite=strict" in cookie.lower()
    assert ("secure" in cookie.lower()) is secure


def _signin(created: datetime, seen: datetime) -> SignIn:
    return SignIn(workspace_id="demo", key_id=None, csrf="c", created_at=created,
                  last_seen_at=seen)  # fmt: skip


def test_a_sign_in_ends_when_idle_or_too_old() -> None:
    fresh = _signin(NOW, NOW)
    assert alive(fresh, NOW + timedelta(minutes=29), LIFETIMES)
    assert not alive(fresh, NOW + timedelta(minutes=30), LIFETIMES)
    busy = _signin(NOW - timedelta(hours=12), NOW)  # active a moment ago, but 12 h old
    assert not alive(busy, NOW, LIFETIMES)
    assert not needs_refresh(fresh, NOW + timedelta(seconds=59))
    assert needs_refresh(fresh, NOW + timedelta(seconds=60))


def test_attempts_count_per_window_without_the_value_in_the_key() -> None:
    window = timedelta(minutes=5)
    first = attempt_key("ip", "203.0.113.9", NOW, window)
    assert "203.0.113.9" not in first
    assert first == attempt_key("ip", "203.0.113.9", NOW + timedelta(minutes=4), window)
    assert first != attempt_key("ip", "203.0.113.9", NOW + timedelta(minutes=5), window)
    assert first != attempt_key("key", "203.0.113.9", NOW, window)
    assert retry_after(NOW + timedelta(seconds=10), window) == 290
    assert "secret-session-id" not in session_key("secret-session-id")
