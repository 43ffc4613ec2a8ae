"""WhatsApp webhooks: GET handshake first, then signed status and message POSTs, retries."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from switchboard.sandbox.testing import serve, wait_until

from .messaging_support import (
    APP_SECRET,
    PHONE_ID,
    TEMPLATE,
    VERIFY_TOKEN,
    Hit,
    HookReceiver,
    WaEnv,
    whatsapp_env,
)

USER = "5511987654321"


def expected_signature(raw: bytes) -> str:
    return "sha256=" + hmac.new(APP_SECRET.encode(), raw, hashlib.sha256).hexdigest()


def value_of(hit: Hit) -> dict[str, Any]:
    """The `value` of a Meta envelope, checking the envelope on the way."""
    body = hit.body
    assert body["object"] == "whatsapp_business_account"
    [entry] = body["entry"]
    assert entry["id"] == "102290129340398"
    [change] = entry["changes"]
    assert change["field"] == "messages"
    value: dict[str, Any] = change["value"]
    assert value["messaging_product"] == "whatsapp"
    assert value["metadata"] == {"display_phone_number": "15551234567", "phone_number_id": PHONE_ID}
    return value


async def subscribe(env: WaEnv, url: str) -> dict[str, Any]:
    response = await env.http.put(
        f"/_sandbox/whatsapp/numbers/{PHONE_ID}/webhook", json={"url": f"{url}/hook"}
    )
    result: dict[str, Any] = response.json()
    return result


async def test_handshake_then_signed_statuses_that_verify_with_the_app_secret() -> None:
    receiver = HookReceiver()
    async with whatsapp_env() as env, serve(receiver.app) as hook:
        subscription = await subscribe(env, hook)
        assert subscription["verified"] is True
        [handshake] = receiver.handshakes
        assert handshake["hub.mode"] == "subscribe"
        assert handshake["hub.verify_token"] == VERIFY_TOKEN
        assert handshake["hub.challenge"]
        sent = (await env.send(USER, "template", **TEMPLATE)).json()["messages"][0]["id"]
        await wait_until(lambda: len(receiver.hits) == 3, message="sent, delivered, read")
        for hit in receiver.hits:
            header = hit.headers["x-hub-signature-256"]
            assert hmac.compare_digest(header, expected_signature(hit.raw))
        statuses = [value_of(hit)["statuses"][0] for hit in receiver.hits]
        assert [s["status"] for s in statuses] == ["sent", "delivered", "read"]
        for status in statuses:
            assert (status["id"], status["recipient_id"]) == (sent, USER)
            assert status["timestamp"].isdigit()
        assert statuses[0]["conversation"]["origin"]["type"] == "utility"
        assert statuses[0]["pricing"]["billable"] is True
        verification = env.sandbox.recorder.deliveries(provider="whatsapp")[0]
        assert (verification.ref, verification.ok) == ("verification", True)


async def test_nothing_is_delivered_until_the_handshake_passed() -> None:
    receiver = HookReceiver(verify_token="something-else")
    async with whatsapp_env() as env, serve(receiver.app) as hook:
        failed = await env.http.put(
            f"/_sandbox/whatsapp/numbers/{PHONE_ID}/webhook", json={"url": f"{hook}/hook"}
        )
        assert failed.status_code == 400
        assert failed.json()["verified"] is False
        assert "couldn't be validated" in failed.json()["error"]
        await env.send(USER, "template", **TEMPLATE)
        await env.user_writes(USER)
        assert env.number.deliveries.pending == 4
        assert receiver.attempts == 0
        receiver.echo = False
        receiver.verify_token = VERIFY_TOKEN
        wrong_echo = await subscribe(env, hook)
        assert "did not echo hub.challenge" in wrong_echo["error"]
        assert receiver.attempts == 0
        receiver.echo = True
        assert (await subscribe(env, hook))["verified"] is True
        await wait_until(lambda: len(receiver.hits) == 4, message="queued webhooks delivered")
        kinds = ["statuses" if "statuses" in value_of(h) else "messages" for h in receiver.hits]
        assert kinds == ["statuses", "statuses", "statuses", "messages"]


async def test_inbound_messages_carry_contacts_and_open_the_window() -> None:
    receiver = HookReceiver()
    async with whatsapp_env() as env, serve(receiver.app) as hook:
        await subscribe(env, hook)
        injected = await env.http.post(
            f"/_sandbox/whatsapp/numbers/{PHONE_ID}/inbound",
            json={"from": USER, "name": "Ana", "message": {"type": "text", "text": {"body": "Oi"}}},
        )
        assert injected.status_code == 202
        await wait_until(lambda: len(receiver.hits) == 1, message="inbound message delivered")
        value = value_of(receiver.hits[0])
        assert value["contacts"] == [{"profile": {"name": "Ana"}, "wa_id": USER}]
        [message] = value["messages"]
        assert message["from"] == USER
        assert message["id"].startswith("wamid.")
        assert message["timestamp"].isdigit()
        assert message["text"] == {"body": "Oi"}
        assert (await env.send(USER, body="Olá Ana!")).status_code == 200


async def test_non_2xx_answers_are_retried_with_backoff() -> None:
    receiver = HookReceiver()
    async with whatsapp_env() as env, serve(receiver.app) as hook:
        await subscribe(env, hook)
        receiver.fail_next(2, status=500)
        inbound = await env.user_writes(USER)
        await wait_until(lambda: len(receiver.hits) == 1, message="delivered after retries")
        attempts = env.sandbox.recorder.deliveries(provider="whatsapp", account=PHONE_ID)[1:]
        assert [(a.attempt, a.status, a.ok) for a in attempts] == [
            (1, 500, False),
            (2, 500, False),
            (3, 200, True),
        ]
        assert {a.ref for a in attempts} == {inbound["id"]}


async def test_duplicate_rate_delivers_payloads_twice_with_the_same_ids() -> None:
    receiver = HookReceiver()
    async with whatsapp_env() as env, serve(receiver.app) as hook:
        env.sandbox.whatsapp.config.duplicate_rate = 1.0
        await subscribe(env, hook)
        inbound = await env.user_writes(USER)
        await wait_until(lambda: len(receiver.hits) == 2, message="duplicate delivered")
        ids = [value_of(hit)["messages"][0]["id"] for hit in receiver.hits]
        assert ids == [inbound["id"], inbound["id"]]
        assert receiver.hits[0].raw == receiver.hits[1].raw


async def test_undeliverable_users_and_failure_rate_give_failed_statuses() -> None:
    receiver = HookReceiver()
    async with whatsapp_env() as env, serve(receiver.app) as hook:
        await subscribe(env, hook)
        env.sandbox.whatsapp.add_user(PHONE_ID, USER, undeliverable=True)
        await env.send(USER, "template", **TEMPLATE)
        await wait_until(lambda: len(receiver.hits) == 1, message="failed status")
        [status] = value_of(receiver.hits[0])["statuses"]
        assert status["status"] == "failed"
        assert status["errors"][0]["code"] == 131026
        assert "conversation" not in status
        await env.http.put(
            "/_sandbox/whatsapp/settings",
            json={"statuses": {"read": False, "failure_rate": 0.0}},
        )
        await env.send("5511900000000", "template", **TEMPLATE)
        await wait_until(lambda: len(receiver.hits) == 3, message="sent and delivered")
        tail = [value_of(h)["statuses"][0]["status"] for h in receiver.hits[1:]]
        assert tail == ["sent", "delivered"]
