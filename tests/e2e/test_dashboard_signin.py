"""The dashboard signs browsers in to server-side sessions: the cookie holds a random id
(never the key, and the bucket holds neither), sign-out ends the session everywhere, the
forms carry CSRF tokens, attempts are limited per address and per key, and a sign-in made
with a stored key ends when the key is revoked."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest
from tests.support.stack import API_KEY, service_env

from switchboard.analytics.app import create_app
from switchboard.analytics.dashboard import COOKIE, CSRF_COOKIE
from switchboard.analytics.settings import AnalyticsSettings
from switchboard.events.streams import DASHBOARD_SESSIONS
from switchboard.runtime.bus import Bus
from switchboard.runtime.settings import load_settings
from switchboard.runtime.testing import eventually, serve_app

pytestmark = pytest.mark.e2e
PEPPER = "dashboard-pepper-0123456789abcdef"
ADMIN = "dashboard-operator-token"


@pytest.fixture
async def analytics(
    nats_url: str, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[str]:
    env = service_env(
        nats_url,
        postgres_url,
        SWITCHBOARD_API_KEY_PEPPER=PEPPER,
        SWITCHBOARD_ADMIN_TOKEN=ADMIN,
        SWITCHBOARD_ANALYTICS_LOGIN_ATTEMPTS_PER_KEY=3,
        SWITCHBOARD_ANALYTICS_LOGIN_ATTEMPTS_PER_IP=8,
    )
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    async with serve_app(create_app(load_settings(AnalyticsSettings))) as url:
        yield url


def _csrf(page: httpx.Response) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert match, page.text
    return match.group(1)


async def _bucket(nats_url: str) -> bytes:
    bus = await Bus.connect(nats_url, name="test-dashboard")
    try:
        kv = await bus.kv(DASHBOARD_SESSIONS.name)
        try:
            keys = await kv.keys()
        except Exception:
            return b""
        values = [(await kv.get(k)).value or b"" for k in keys]
        return b"".join(values) + " ".join(keys).encode()
    finally:
        await bus.close()


async def test_sign_in_and_out_with_a_server_side_session(analytics: str, nats_url: str) -> None:
    async with httpx.AsyncClient(base_url=analytics) as http:
        form = await http.get("/")
        assert form.status_code == 401
        token = _csrf(form)
        # No CSRF token, or a wrong one: refused before the key is even looked at.
        async with httpx.AsyncClient(base_url=analytics) as stranger:
            assert (await stranger.post("/login", data={"key": API_KEY})).status_code == 403
        wrong = await http.post("/login", data={"key": API_KEY, "csrf": token + "x"})
        assert wrong.status_code == 403

        signed = await http.post("/login", data={"key": API_KEY, "csrf": token})
        assert signed.status_code == 303
        session_id = http.cookies[COOKIE]
        assert API_KEY not in session_id
        assert "max-age" not in signed.headers["set-cookie"].lower()  # ends with the browser
        stored = await _bucket(nats_url)
        assert API_KEY.encode() not in stored
        assert session_id.encode() not in stored
        page = await http.get("/")
        assert page.status_code == 200
        logout_token = _csrf(page)

        assert (await http.post("/logout", data={"csrf": "forged"})).status_code == 403
        out = await http.post("/logout", data={"csrf": logout_token})
        assert out.status_code == 303
        # The old cookie replayed (e.g. stolen before sign-out) opens nothing any more.
        async with httpx.AsyncClient(base_url=analytics, cookies={COOKIE: session_id}) as replay:
            assert (await replay.get("/")).status_code == 401


async def test_sign_in_attempts_are_limited_per_key_and_per_address(analytics: str) -> None:
    async with httpx.AsyncClient(base_url=analytics) as http:
        token = _csrf(await http.get("/"))
        statuses = [
            (await http.post("/login", data={"key": "guessed-key-1", "csrf": token})).status_code
            for _ in range(4)
        ]
        assert statuses == [401, 401, 401, 429]
        limited = await http.post("/login", data={"key": "guessed-key-1", "csrf": token})
        assert int(limited.headers["Retry-After"]) > 0
        # Other keys from the same address: the per-address limit (8) stops them too.
        more = [
            (await http.post("/login", data={"key": f"other-{i}", "csrf": token})).status_code
            for i in range(5)
        ]
        assert more[-1] == 429
        assert CSRF_COOKIE in http.cookies


async def test_a_sign_in_ends_when_its_key_is_revoked(analytics: str) -> None:
    admin = {"Authorization": f"Bearer {ADMIN}"}
    async with httpx.AsyncClient(base_url=analytics) as http:
        made = await http.post("/admin/api-keys", headers=admin,
                               json={"workspace_id": "demo", "scopes": ["read"]})  # fmt: skip
        assert made.status_code == 201, made.text
        key, key_id = made.json()["key"], made.json()["key_id"]
        token = _csrf(await http.get("/"))
        assert (await http.post("/login", data={"key": key, "csrf": token})).status_code == 303
        assert (await http.get("/")).status_code == 200
        assert (await http.delete(f"/admin/api-keys/{key_id}", headers=admin)).status_code == 200

        async def signed_out() -> bool:
            return (await http.get("/")).status_code == 401

        await eventually(signed_out, message="the sign-in ended with its key")
        send_only = await http.post("/admin/api-keys", headers=admin,
                                    json={"workspace_id": "demo", "scopes": ["send"]})  # fmt: skip
        token = _csrf(await http.get("/"))
        refused = await http.post("/login", data={"key": send_only.json()["key"], "csrf": token})
        assert refused.status_code == 403


async def test_an_idle_sign_in_ends_and_leaves_nothing_behind(nats_url: str) -> None:
    """The idle timeout against the real bucket: a session past it opens nothing and is
    deleted (a zero idle time stands in for half an hour without a request)."""
    from datetime import timedelta

    from nats.js.errors import NoKeysError

    from switchboard.analytics.signin import Lifetimes, SignInStore, session_key

    bus = await Bus.connect(nats_url, name="test-idle")
    try:
        await bus.provision()
        kv = await bus.kv(DASHBOARD_SESSIONS.name)
        live = SignInStore(kv, Lifetimes(idle=timedelta(minutes=30), absolute=timedelta(hours=1)))
        session_id, _ = await live.create("demo", None)
        assert (await live.get(session_id)) is not None
        idle = SignInStore(kv, Lifetimes(idle=timedelta(0), absolute=timedelta(hours=1)))
        assert (await idle.get(session_id)) is None
        assert (await live.get(session_id)) is None  # ended for every instance
        try:
            left = await kv.keys()
        except NoKeysError:  # nats-py's answer for an empty bucket
            left = []
        assert session_key(session_id) not in left
    finally:
        await bus.close()


async def test_lifetimes_are_judged_on_the_clock_the_service_gives(nats_url: str) -> None:
    """A session one instance wrote is judged by another on one shared clock (the server's,
    in the service), never on each instance's own."""
    from datetime import UTC, datetime, timedelta

    from switchboard.analytics.signin import Lifetimes, SignInStore

    bus = await Bus.connect(nats_url, name="test-lifetimes")
    try:
        await bus.provision()
        kv = await bus.kv(DASHBOARD_SESSIONS.name)
        shared = [datetime(2026, 1, 1, tzinfo=UTC)]
        lifetimes = Lifetimes(idle=timedelta(minutes=30), absolute=timedelta(hours=1))
        a, b = (SignInStore(kv, lifetimes, lambda: shared[0]) for _ in range(2))
        session_id, made = await a.create("demo", None)
        assert made.created_at == shared[0]
        shared[0] += timedelta(minutes=29)
        seen = await b.get(session_id)  # and refreshed: it was last seen a minute ago
        assert seen is not None
        assert seen.last_seen_at == shared[0]
        shared[0] += timedelta(minutes=29)
        assert await a.get(session_id) is not None
        shared[0] += timedelta(minutes=3)  # 61 minutes old: past its lifetime
        assert await b.get(session_id) is None
    finally:
        await bus.close()
