"""The login flow over HTTP against the fake Telegram: code, two-step password, and each
failure answered with a precise status and reason, and published as ``mtproto.login_failed``;
the authorized session is stored encrypted (no plaintext session in KV or Postgres) and
claimed and connected by the gateway."""

from __future__ import annotations

import time

import httpx

from switchboard.runtime.testing import eventually
from switchboard.runtime.testing.dumps import postgres_dump, stream_dump

from .mtproto_support import (
    ADMIN,
    API_HASH,
    stream,
    wait_for_event,
    world,
)

PHONE = "+15551230001"


async def _failures(nats_url: str) -> list[str]:
    return [
        d.model.reason.value  # type: ignore[attr-defined]
        for d in await stream(nats_url, "MTPROTO")
        if d.model.name == "mtproto.login_failed"
    ]


async def test_login_with_password_and_every_error_over_http(
    nats_url: str, postgres_url: str
) -> None:
    async with world(nats_url, postgres_url) as w:
        user, _ = w.fake.add_user(PHONE, first_name="Grace", password="correct horse")
        banned, _ = w.fake.add_user("+15551230002", first_name="Banned")
        w.fake.ban(banned)
        base = await w.gateway(instance_id="g1")
        async with w.http(base) as http:
            login = "/v1/sessions/grace/login"
            # no admin token: refused before anything happens
            async with httpx.AsyncClient(base_url=base) as anon:
                r = await anon.post(login, json={"phone": PHONE})
                assert r.status_code == 401
                r = await anon.post(login, json={"phone": PHONE},
                                    headers={"Authorization": "Bearer wrong-token"})  # fmt: skip
                assert r.status_code == 401
            # bad input: a precise 4xx naming the problem
            r = await http.post(login, json={"phone": "call me"})
            assert r.status_code == 422
            assert "phone" in r.json()["detail"]

            r = await http.post("/v1/sessions/banned/login", json={"phone": "+15551230002"})
            assert r.status_code == 403, r.text
            assert r.json()["code"] == "phone_number_banned"

            r = await http.post("/v1/sessions/grace/login", json={"phone": "+123456"})
            assert r.status_code == 400
            assert r.json()["code"] == "phone_number_invalid"

            w.fake.add_fault(method="auth.sendCode", error="FLOOD_WAIT", seconds=7, times=1)
            r = await http.post(login, json={"phone": PHONE})
            assert r.status_code == 429
            assert r.headers["Retry-After"] == "7"
            assert r.json()["retry_after_s"] == 7

            r = await http.post(f"{login}/code", json={"code": "12345"})
            assert r.status_code == 404
            assert r.json()["code"] == "no_login_in_progress"

            r = await http.post(login, json={"phone": PHONE, "workspace_id": "demo"})
            assert r.status_code == 200, r.text
            assert r.json()["state"] == "code_sent"
            assert r.json()["phone_hint"] == "+15*******01"
            code = w.fake.code(PHONE).code

            r = await http.post(f"{login}/password", json={"password": "too soon"})
            assert r.status_code == 409
            assert r.json()["code"] == "wrong_step"

            wrong = "00000" if code != "00000" else "11111"
            r = await http.post(f"{login}/code", json={"code": wrong})
            assert r.status_code == 400
            assert r.json()["code"] == "phone_code_invalid"
            assert r.json()["restart_required"] is False

            r = await http.post(f"{login}/code", json={"code": code})
            assert r.status_code == 200, r.text
            assert r.json()["state"] == "password_needed"

            r = await http.post(f"{login}/password", json={"password": "wrong horse"})
            assert r.status_code == 400
            assert r.json()["code"] == "password_invalid"

            r = await http.post(f"{login}/password", json={"password": "correct horse"})
            assert r.status_code == 200, r.text
            assert r.json()["state"] == "authorized"
            assert r.json()["user_id"] == str(user.id)

            r = await http.post(login, json={"phone": PHONE})
            assert r.status_code == 409
            assert r.json()["code"] == "already_authorized"

            # The gateway claims and connects the new session.
            async def connected() -> bool:
                r = await http.get("/v1/sessions/grace")
                return r.json().get("holder") is not None and bool(
                    w.fake.connection_log(user=user)["active"]
                )

            await eventually(connected, message="logged-in session connected")
            shown = (await http.get("/v1/sessions/grace")).json()
            assert shown["status"] == "active"
            assert shown["workspace_id"] == "demo"
            assert "session" not in shown
            assert "api_hash" not in shown

        # An expired code: the login must start again.
        w.fake.add_user("+15551230003", first_name="Late")
        async with w.http(base) as http:
            late = "/v1/sessions/late/login"
            r = await http.post(late, json={"phone": "+15551230003"})
            assert r.status_code == 200
            code = w.fake.code("+15551230003").code
            w.fake.config.code_ttl = 0.01
            r = await http.post(late, json={"phone": "+15551230003"})
            assert r.status_code == 200, r.text
            code = w.fake.code("+15551230003").code

            async def expired() -> bool:
                record = w.fake.code("+15551230003")
                return bool(record.expires_mono < time.monotonic())

            await eventually(expired, message="code expired at the fake")
            r = await http.post(f"{late}/code", json={"code": code})
            assert r.status_code == 410, r.text
            assert r.json()["code"] == "phone_code_expired"
            assert r.json()["restart_required"] is True
            r = await http.post(f"{late}/code", json={"code": code})
            assert r.status_code == 404

        failures = await _failures(nats_url)
        for reason in (
            "phone_number_banned",
            "phone_number_invalid",
            "flood_wait",
            "no_login_in_progress",
            "wrong_step",
            "phone_code_invalid",
            "password_invalid",
            "already_authorized",
            "phone_code_expired",
        ):
            assert reason in failures, (reason, failures)
        await wait_for_event(nats_url, "mtproto.login_succeeded", session_id="grace")
        await wait_for_event(nats_url, "mtproto.login_code_sent", session_id="grace")
        await wait_for_event(nats_url, "mtproto.login_password_needed", session_id="grace")

        # Nothing secret at rest: not the session string, not the app hash, not the password.
        secrets = [w.fake.session(k["key_id"]).session for k in
                   w.fake.connection_log(user=user)["keys"]]  # fmt: skip
        assert secrets
        dumps = await stream_dump(nats_url) + await postgres_dump(postgres_url)
        # The dump really covers both stores: the session's lease (KV) and its row (Postgres).
        assert "$KV.leases.mtproto.session.grace\n" in dumps
        assert "(grace,demo,active," in dumps
        for secret in [*secrets, API_HASH, "correct horse", ADMIN]:
            assert secret not in dumps


async def test_a_login_through_a_proxy_nobody_listens_on_is_a_422_naming_the_proxy(
    nats_url: str, postgres_url: str
) -> None:
    """The API fuzz found a login through an unreachable proxy answered 503 ("Telegram could
    not be reached"): the caller's proxy is what is wrong, so the answer names it; a login
    without a proxy still reaches the fake Telegram."""
    from switchboard.runtime.embedded import free_port

    async with world(nats_url, postgres_url) as w:
        w.fake.add_user(PHONE, first_name="Grace")
        base = await w.gateway(instance_id="g1")
        async with w.http(base) as http:
            dead = {"type": "socks5", "host": "127.0.0.1", "port": free_port("127.0.0.1")}
            r = await http.post(
                "/v1/sessions/proxied/login",
                json={"phone": PHONE, "api_hash": API_HASH, "proxy": dead},
            )
            assert r.status_code == 422, r.text
            problem = r.json()
            assert problem["error_code"] == "PROXY_UNREACHABLE"
            assert problem["errors"][0]["path"] == "body.proxy"
            assert f"127.0.0.1:{dead['port']}" in problem["detail"]
            r = await http.post("/v1/sessions/proxied/login", json={"phone": PHONE})
            assert r.status_code == 200, r.text
