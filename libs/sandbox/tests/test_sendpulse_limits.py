"""SendPulse fake: 10 requests/s per account, faults, control routes, combined mounting."""

from __future__ import annotations

import asyncio

import httpx

from switchboard.sandbox import Sandbox, SandboxConfig
from switchboard.sandbox.sendpulse import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, SendPulseConfig
from switchboard.sandbox.testing import serve

from .sendpulse_support import BOOK_ID, CLIENT_ID, SendPulseEnv, sendpulse_env

TOO_MANY = {"is_error": True, "error_code": 429, "message": "Too Many Requests"}


async def burst(env: SendPulseEnv, token: str, count: int) -> list[httpx.Response]:
    path = f"/addressbooks/{BOOK_ID}/emails"
    return list(await asyncio.gather(*(env.call("GET", path, token) for _ in range(count))))


async def test_fifteen_calls_in_one_second_get_five_429s() -> None:
    async with sendpulse_env() as sp:
        token = await sp.token()
        responses = await burst(sp, token, 15)
        statuses = [r.status_code for r in responses]
        assert (statuses.count(200), statuses.count(429)) == (10, 5)
        refused = [r for r in responses if r.status_code == 429]
        assert all(r.json() == TOO_MANY for r in refused)
        assert all(r.headers["retry-after"] == "1" for r in refused)
        records = sp.sandbox.recorder.requests(provider="sendpulse", account=CLIENT_ID)
        accepted = [r for r in records if r.ok and r.method == "get_emails_from_addressbook"]
        assert len(accepted) == 10
        assert max(r.mono for r in accepted) - min(r.mono for r in accepted) < 1.0
        sp.clock.advance(0.5)
        assert (await burst(sp, token, 1))[0].status_code == 429
        sp.clock.advance(0.5)
        assert [r.status_code for r in await burst(sp, token, 10)] == [200] * 10


async def test_token_requests_and_other_accounts_are_not_limited() -> None:
    async with sendpulse_env() as sp:
        other = sp.sandbox.sendpulse.add_account("other-id", "other-secret")
        sp.sandbox.sendpulse.add_address_book(other, "Theirs", 7)
        token = await sp.token()
        await burst(sp, token, 10)
        assert (await burst(sp, token, 1))[0].status_code == 429
        assert (await sp.request_token()).status_code == 200
        theirs = sp.sandbox.sendpulse.issue_token(other)
        response = await sp.call("GET", "/addressbooks/7/emails", theirs)
        assert response.status_code == 200


async def test_limit_is_configurable_and_can_be_disabled() -> None:
    config = SandboxConfig(sendpulse=SendPulseConfig())
    config.sendpulse.limits.update({"account": {"limit": 2, "window": 1}})
    async with sendpulse_env(config) as sp:
        token = await sp.token()
        assert [r.status_code for r in await burst(sp, token, 3)].count(429) == 1
        put = await sp.http.put("/_sandbox/sendpulse/limits", json={"enabled": False})
        assert put.json()["enabled"] is False
        assert {r.status_code for r in await burst(sp, token, 20)} == {200}


async def test_injected_faults_answer_in_sendpulse_shape() -> None:
    async with sendpulse_env() as sp:
        token = await sp.token()
        sp.sandbox.set_fault("sendpulse", CLIENT_ID, error_rate=1.0, error_status=503)
        response = await sp.call("POST", "/sms/send", token, json={})
        assert response.status_code == 503
        assert response.json() == {
            "is_error": True,
            "error_code": 503,
            "message": "Service Unavailable",
        }
        assert sp.sandbox.recorder.requests(provider="sendpulse", fault="error")[0].method == (
            "sms_send"
        )
        assert (await sp.request_token()).status_code == 200  # the rule is scoped to calls


async def test_control_routes_configure_accounts_and_show_what_was_sent() -> None:
    async with sendpulse_env() as sp:
        http = sp.http
        created = await http.post(
            "/_sandbox/sendpulse/accounts",
            json={
                "client_id": "new-id",
                "client_secret": "new-secret",
                "token_ttl": 5,
                "address_books": [{"id": 900, "name": "VIP"}],
            },
        )
        assert created.status_code == 201
        assert created.json()["address_books"][0]["id"] == 900
        issued = (await http.post("/_sandbox/sendpulse/accounts/new-id/tokens")).json()
        assert issued["expires_in"] == 5
        token = issued["access_token"]
        added = await sp.add_emails(token, ["vip@example.com"], 900)
        assert added.json() == {"result": True}
        await sp.call(
            "POST",
            "/sms/send",
            token,
            json={"sender": "VIP", "phones": ["14155550100"], "body": "hello"},
        )
        book = (await http.get("/_sandbox/sendpulse/addressbooks/900")).json()
        assert [c["email"] for c in book["contacts"]] == ["vip@example.com"]
        sms = (await http.get("/_sandbox/sendpulse/sms", params={"account": "new-id"})).json()
        assert sms["count"] == 1
        assert sms["sms"][0]["phones"] == ["14155550100"]
        assert (await http.get("/_sandbox/sendpulse/emails")).json()["count"] == 0
        expired = await http.delete("/_sandbox/sendpulse/accounts/new-id/tokens")
        assert expired.json() == {"expired": 1}
        assert (await sp.call("GET", "/addressbooks/900/emails", token)).status_code == 401
        settings = await http.put("/_sandbox/sendpulse/settings", json={"token_ttl": 120})
        assert settings.json()["token_ttl"] == 120
        assert (await sp.request_token()).json()["expires_in"] == 120
        missing = await http.get("/_sandbox/sendpulse/accounts/nobody")
        assert missing.status_code == 404
        assert (await http.post("/_sandbox/reset")).json() == {"reset": True}
        assert (await http.get("/_sandbox/sendpulse/accounts")).json() == {"accounts": []}


async def test_combined_app_mounts_sendpulse_with_the_demo_account() -> None:
    box = Sandbox(SandboxConfig(demo=True))
    try:
        async with serve(box.app()) as url, httpx.AsyncClient(base_url=url) as http:
            token = await http.post(
                "/sendpulse/oauth/access_token",
                json={
                    "grant_type": "client_credentials",
                    "client_id": DEMO_CLIENT_ID,
                    "client_secret": DEMO_CLIENT_SECRET,
                },
            )
            value = token.json()["access_token"]
            response = await http.post(
                "/sendpulse/addressbooks/1/emails",
                headers={"Authorization": f"Bearer {value}"},
                json={"emails": [{"email": "demo@example.com"}]},
            )
            assert response.json() == {"result": True}
            state = (await http.get("/_sandbox/state")).json()["sendpulse"]
            assert state["address_books"][0]["emails"] == 1
            assert (await http.get("/sendpulse/nope")).status_code == 404
    finally:
        await box.aclose()
    assert box.recorder.requests(provider="sendpulse", account=DEMO_CLIENT_ID)
