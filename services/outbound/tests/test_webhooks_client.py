"""Outbound Standard Webhooks: signatures verify with the `standardwebhooks` library,
answers are classified, and the generic channel delivers a SendMessage."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook

from switchboard.outbound.providers.base import Failure, ProviderError, Scope
from switchboard.outbound.providers.webhooks import GenericWebhookClient, WebhookClient
from switchboard.sandbox.testing import WebhookReceiver, serve

from .support import Mock, account, assert_error, command, keyboard, reply, text

SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
WHEN = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def verify(request: httpx.Request, secret: str = SECRET) -> Any:
    headers = {k: v for k, v in request.headers.items() if k.startswith("webhook-")}
    return Webhook(secret).verify(request.content.decode(), headers)


async def test_delivery_is_signed_and_verifiable() -> None:
    mock = Mock([reply(200, {"received": True})])
    payload = {"type": "order.paid", "data": {"id": "o-1", "name": "Олена"}}
    async with mock.client() as http:
        delivered = await WebhookClient(http).deliver(
            "https://crm.test/hooks", SECRET, "msg_1", payload, timestamp=WHEN
        )
    request = mock.requests[0]
    assert request.headers["webhook-id"] == "msg_1"
    assert request.headers["webhook-timestamp"] == str(int(WHEN.timestamp()))
    assert request.headers["webhook-signature"].startswith("v1,")
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.content) == payload
    assert request.extensions["timeout"]["read"] == 15.0
    assert delivered.status == 200
    assert delivered.body == {"received": True}
    with pytest.raises(Exception, match="timestamp"):  # 2026-01-02 is not "now"
        verify(request)


async def test_signature_verifies_for_a_current_timestamp() -> None:
    mock = Mock([reply(204)])
    async with mock.client() as http:
        await WebhookClient(http).deliver("https://crm.test/h", SECRET, "msg_2", '{"raw": true}')
    request = mock.requests[0]
    assert request.content == b'{"raw": true}'
    assert verify(request) == {"raw": True}
    with pytest.raises(Exception, match="signature"):
        verify(request, "whsec_" + base64.b64encode(b"another secret!!").decode())


def status(code: int, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(code, headers=headers)


@pytest.mark.parametrize(
    ("answer", "failure", "code", "retry_after"),
    [
        (status(410), Failure.PERMANENT, "webhook_410", None),
        (status(429, {"Retry-After": "12"}), Failure.RATE_LIMITED, "webhook_429", 12.0),
        (status(429), Failure.RATE_LIMITED, "webhook_429", 60.0),
        (status(503, {"Retry-After": "5"}), Failure.RATE_LIMITED, "webhook_503", 5.0),
        (
            status(502, {"Retry-After": "Fri, 02 Jan 2099 00:00:00 GMT"}),
            Failure.RATE_LIMITED,
            "webhook_502",
            None,
        ),
        (status(504), Failure.RETRYABLE, "webhook_504", None),
        (status(500), Failure.RETRYABLE, "webhook_500", None),
        (status(408), Failure.RETRYABLE, "webhook_408", None),
        (status(400), Failure.PERMANENT, "webhook_400", None),
        (status(401), Failure.UNAUTHORIZED, "webhook_401", None),
        (
            status(301, {"Location": "https://elsewhere.test"}),
            Failure.PERMANENT,
            "webhook_301",
            None,
        ),
        (httpx.ReadTimeout("slow"), Failure.RETRYABLE, "webhook_timeout", None),
        (httpx.ConnectError("refused"), Failure.RETRYABLE, "webhook_network", None),
    ],
)
async def test_classification(
    answer: Any, failure: Failure, code: str, retry_after: float | None
) -> None:
    mock = Mock([answer])
    async with mock.client() as http:
        with pytest.raises(ProviderError) as caught:
            await WebhookClient(http).deliver("https://crm.test/h", SECRET, "m", {"a": 1})
    assert_error(caught.value, failure, code, retry_after=retry_after)
    if failure is Failure.RATE_LIMITED:
        assert caught.value.scope is Scope.ACCOUNT
        assert caught.value.retry_after is not None
        assert caught.value.retry_after > 0
    assert SECRET not in str(caught.value)


async def test_a_bad_secret_is_permanent_without_a_call() -> None:
    mock = Mock()
    async with mock.client() as http:
        with pytest.raises(ProviderError) as caught:
            await WebhookClient(http).deliver("https://crm.test/h", "whsec_", "m", {})
    assert_error(caught.value, Failure.PERMANENT, "webhook_config")
    assert mock.requests == []


async def test_generic_channel_against_a_served_receiver() -> None:
    receiver = WebhookReceiver()
    async with serve(receiver.app) as url, httpx.AsyncClient() as http:
        generic = GenericWebhookClient(http)
        shop = account("generic", settings={"url": f"{url}/hooks/outbound"})
        cmd = command(
            text("hello"),
            channel="generic",
            keyboard=keyboard([("Ok", "ok", None)]),
            message_id="msg-77",
        )
        sent = await generic.send(shop, cmd)
        receiver.fail_next(1, 410)
        with pytest.raises(ProviderError) as caught:
            await generic.send(shop, cmd)
    assert sent.provider_message_id == "msg-77"
    [(headers, body)] = receiver.received
    assert headers["webhook-id"] == "msg-77"
    assert isinstance(body, dict)
    assert body["type"] == "message.send"
    assert body["data"]["content"] == {"kind": "text", "text": "hello", "preview_url": False}
    assert body["data"]["keyboard"]["rows"][0][0]["callback_data"] == "ok"
    raw = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
    assert Webhook(shop.secrets["signing_secret"]).verify(raw, headers) == body
    assert_error(caught.value, Failure.PERMANENT, "webhook_410")


async def test_generic_channel_needs_url_and_secret() -> None:
    async with Mock().client() as http:
        with pytest.raises(ProviderError) as caught:
            await GenericWebhookClient(http).send(
                account("generic"), command(text(), channel="generic")
            )
    assert_error(caught.value, Failure.PERMANENT, "webhook_config")
