"""The dashboard's sign-in cookie: Secure wherever the browser is not on a loopback host,
because behind a TLS-terminating ingress the pod itself only ever sees plain http."""

from __future__ import annotations

import pytest
from starlette.requests import Request

from switchboard.analytics.dashboard import COOKIE, login
from switchboard.runtime.auth import ApiKeyAuth


def _request(host: str, body: bytes) -> Request:
    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": body, "more_body": False}

    scope = {
        "type": "http",
        "method": "POST",
        "scheme": "http",
        "path": "/login",
        "query_string": b"",
        "headers": [(b"host", host.encode())],
        "server": (host, 80),
    }
    return Request(scope, receive)


@pytest.mark.parametrize(
    ("host", "secure"),
    [
        ("analytics.example.com", True),
        ("10.0.3.7", True),
        ("127.0.0.1", False),
        ("localhost", False),
    ],
)
async def test_the_cookie_is_secure_except_on_loopback(host: str, secure: bool) -> None:
    response = await login(_request(host, b"key=k-demo"), ApiKeyAuth({"k-demo": "demo"}))
    assert response.status_code == 303
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=k-demo")
    assert "httponly" in cookie.lower()
    assert ("secure" in cookie.lower()) is secure


async def test_a_wrong_key_sets_no_cookie() -> None:
    response = await login(_request("a.example.com", b"key=nope"), ApiKeyAuth({"k": "demo"}))
    assert response.status_code == 401
    assert "set-cookie" not in response.headers
