"""Telegram as webhook sender: setWebhook rules, ordered delivery, retries, getWebhookInfo."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from switchboard.sandbox import Sandbox
from switchboard.sandbox.testing import WebhookReceiver, serve, wait_until

from .conftest import TelegramEnv, fast_config


def text_update(text: str, chat_id: int = 4242) -> dict[str, Any]:
    return {
        "message": {
            "message_id": 1,
            "date": 1_700_000_000,
            "text": text,
            "chat": {"id": chat_id, "type": "private", "first_name": "Ann"},
            "from": {"id": chat_id, "is_bot": False, "first_name": "Ann"},
        }
    }


async def enqueue_texts(tg: TelegramEnv, prefix: str, count: int) -> None:
    """Queue ``count`` messages for the bot, one after the other: ``<prefix>0``, ..."""
    for i in range(count):
        await tg.sandbox.telegram.enqueue_update(tg.bot, text_update(f"{prefix}{i}"))


@asynccontextmanager
async def hooked(tg: TelegramEnv, receiver: WebhookReceiver, **params: Any) -> AsyncIterator[str]:
    """Serve ``receiver`` and set the bot's webhook to it (``params`` for setWebhook)."""
    async with serve(receiver.app) as hook:
        await tg.call("setWebhook", url=f"{hook}/tg", **params)
        yield hook


async def info(tg: TelegramEnv) -> dict[str, Any]:
    result: dict[str, Any] = (await tg.call("getWebhookInfo")).json()["result"]
    return result


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.mark.parametrize(
    ("params", "description"),
    [
        ({"url": "ftp://example.com/hook"}, "bad webhook: HTTPS url must be provided for webhook"),
        (
            {"url": "https://example.com/h", "secret_token": "a b"},
            "secret token contains unallowed characters",
        ),
        ({"url": "https://example.com/h", "secret_token": "s" * 257}, "secret token is too long"),
    ],
)
async def test_set_webhook_validation(
    tg: TelegramEnv, params: dict[str, Any], description: str
) -> None:
    response = await tg.call("setWebhook", **params)
    assert response.json() == {
        "ok": False,
        "error_code": 400,
        "description": f"Bad Request: {description}",
    }


async def test_strict_webhook_urls_need_https_on_telegram_ports(tg: TelegramEnv) -> None:
    tg.sandbox.telegram.config.require_https_webhook = True
    plain = await tg.call("setWebhook", url="http://example.com/hook")
    assert plain.json()["description"] == (
        "Bad Request: bad webhook: HTTPS url must be provided for webhook"
    )
    port = await tg.call("setWebhook", url="https://example.com:8080/hook")
    assert port.json()["description"] == (
        "Bad Request: bad webhook: Webhook can be set up only on ports 80, 88, 443 or 8443"
    )
    assert (await tg.call("setWebhook", url="https://example.com:8443/h")).json()["ok"]


async def test_set_and_delete_descriptions(tg: TelegramEnv) -> None:
    url = f"http://127.0.0.1:{closed_port()}/hook"
    assert (await tg.call("setWebhook", url=url)).json() == {
        "ok": True,
        "result": True,
        "description": "Webhook was set",
    }
    assert (await tg.call("setWebhook", url=url)).json()["description"] == (
        "Webhook is already set"
    )
    assert (await tg.call("deleteWebhook")).json()["description"] == "Webhook was deleted"
    assert (await tg.call("deleteWebhook")).json()["description"] == "Webhook is already deleted"


async def test_updates_arrive_in_order_with_the_secret_header(tg: TelegramEnv) -> None:
    receiver = WebhookReceiver()
    async with hooked(tg, receiver, secret_token="s3cr3t-Token_1", max_connections=10):
        sent = [
            await tg.sandbox.telegram.enqueue_update(tg.bot, text_update(f"m{i}")) for i in range(5)
        ]
        await wait_until(lambda: len(receiver.received) == 5, message="5 updates delivered")
    ids = [u["update_id"] for u in sent if u]
    assert ids == list(range(ids[0], ids[0] + 5))
    assert [body["update_id"] for body in receiver.bodies] == ids  # type: ignore[index]
    assert [body["message"]["text"] for body in receiver.bodies] == [  # type: ignore[index]
        f"m{i}" for i in range(5)
    ]
    headers = receiver.received[0][0]
    assert headers["x-telegram-bot-api-secret-token"] == "s3cr3t-Token_1"
    assert headers["content-type"] == "application/json"
    state = await info(tg)
    assert state["pending_update_count"] == 0
    assert state["max_connections"] == 10


async def test_failed_deliveries_are_retried_in_order(tg: TelegramEnv) -> None:
    receiver = WebhookReceiver()
    receiver.fail_next(3, 503)
    async with hooked(tg, receiver):
        await enqueue_texts(tg, "r", 3)
        await wait_until(lambda: len(receiver.received) == 3, message="retried deliveries")
    assert [b["message"]["text"] for b in receiver.bodies] == ["r0", "r1", "r2"]  # type: ignore[index]
    attempts = tg.sandbox.recorder.deliveries(provider="telegram")
    first_ref = attempts[0].ref
    assert [(d.ref, d.attempt, d.status) for d in attempts[:4]] == [
        (first_ref, 1, 503),
        (first_ref, 2, 503),
        (first_ref, 3, 503),
        (first_ref, 4, 200),
    ]
    assert all(d.ok for d in attempts[4:])
    state = await info(tg)
    assert state["last_error_message"] == "Wrong response from the webhook: 503 Service Unavailable"
    assert isinstance(state["last_error_date"], int)


async def test_pending_count_and_error_while_the_receiver_fails(tg: TelegramEnv) -> None:
    receiver = WebhookReceiver()
    receiver.fail_next(10_000, 500)
    async with hooked(tg, receiver):
        await enqueue_texts(tg, "p", 4)
        await wait_until(lambda: receiver.attempts >= 3, message="a few failed attempts")
        state = await info(tg)
        assert state["pending_update_count"] == 4
        assert state["last_error_message"] == (
            "Wrong response from the webhook: 500 Internal Server Error"
        )
        receiver._failures.clear()
        await tg.sandbox.telegram.wait_delivered(tg.bot)
    assert [b["message"]["text"] for b in receiver.bodies] == [f"p{i}" for i in range(4)]  # type: ignore[index]
    assert (await info(tg))["pending_update_count"] == 0


async def test_connection_refused_is_reported(tg: TelegramEnv) -> None:
    await tg.call("setWebhook", url=f"http://127.0.0.1:{closed_port()}/hook")
    await tg.sandbox.telegram.enqueue_update(tg.bot, text_update("nobody home"))

    async def reported() -> bool:
        return (await info(tg)).get("last_error_message") == "Connection refused"

    await wait_until(reported, message="connection refused reported")
    assert (await info(tg))["pending_update_count"] == 1


async def test_delete_webhook_stops_delivery_and_can_drop_pending(tg: TelegramEnv) -> None:
    await tg.call("setWebhook", url=f"http://127.0.0.1:{closed_port()}/hook")
    await enqueue_texts(tg, "d", 3)
    await tg.call("deleteWebhook")
    assert (await info(tg)) == {
        "url": "",
        "has_custom_certificate": False,
        "pending_update_count": 3,
    }
    polled = (await tg.call("getUpdates")).json()["result"]
    assert [u["message"]["text"] for u in polled] == ["d0", "d1", "d2"]
    confirmed = (await tg.call("getUpdates", offset=polled[-1]["update_id"] + 1)).json()
    assert confirmed["result"] == []
    await tg.sandbox.telegram.enqueue_update(tg.bot, text_update("later"))
    await tg.call("deleteWebhook", drop_pending_updates=True)
    assert (await info(tg))["pending_update_count"] == 0


async def test_get_updates_conflicts_with_an_active_webhook(tg: TelegramEnv) -> None:
    await tg.call("setWebhook", url=f"http://127.0.0.1:{closed_port()}/hook")
    response = await tg.call("getUpdates")
    assert response.status_code == 409
    assert response.json()["description"] == (
        "Conflict: can't use getUpdates method while webhook is active; "
        "use deleteWebhook to delete the webhook first"
    )


async def test_allowed_updates_filter_what_is_queued(tg: TelegramEnv) -> None:
    await tg.call(
        "setWebhook", url=f"http://127.0.0.1:{closed_port()}/hook", allowed_updates=["message"]
    )
    queued = await tg.sandbox.telegram.enqueue_update(tg.bot, text_update("yes"))
    dropped = await tg.sandbox.telegram.enqueue_update(
        tg.bot, {"callback_query": {"id": "1", "from": {"id": 1}, "chat_instance": "1"}}
    )
    assert queued is not None
    assert dropped is None
    state = await info(tg)
    assert state["allowed_updates"] == ["message"]
    assert state["pending_update_count"] == 1


async def test_set_webhook_with_drop_pending_updates(tg: TelegramEnv) -> None:
    await enqueue_texts(tg, "old", 2)
    receiver = WebhookReceiver()
    async with hooked(tg, receiver, drop_pending_updates=True):
        await tg.sandbox.telegram.enqueue_update(tg.bot, text_update("new"))
        await wait_until(lambda: len(receiver.received) == 1)
    assert receiver.bodies[0]["message"]["text"] == "new"  # type: ignore[index]


async def test_deliveries_resume_when_the_sandbox_serves_again() -> None:
    box = Sandbox(fast_config())
    bot = box.telegram.add_bot("31:Restart")
    receiver = WebhookReceiver()
    receiver.fail_next(10_000, 502)
    async with serve(receiver.app) as hook:
        async with serve(box.app()):
            box.telegram.set_webhook(bot, f"{hook}/tg", secret_token="again")
            await box.telegram.enqueue_update(bot, text_update("kept"))
            await wait_until(lambda: receiver.attempts >= 1)
        assert bot.updates.pending == 1  # the server stopped, the update stayed queued
        receiver._failures.clear()
        async with serve(box.app()):
            await box.telegram.wait_delivered(bot)
    assert receiver.bodies[0]["message"]["text"] == "kept"  # type: ignore[index]
    assert receiver.received[0][0]["x-telegram-bot-api-secret-token"] == "again"
