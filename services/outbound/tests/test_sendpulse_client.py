"""SendPulseClient: token caching, the refresh-once-on-401 rule, request shapes and
classification (MockTransport), then the same flows against the sandbox's SendPulse fake."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import httpx
import pytest

from switchboard.outbound.providers.base import Failure, ProviderError, Scope
from switchboard.outbound.providers.sendpulse import (
    Address,
    Contact,
    Email,
    SendPulseAccount,
    SendPulseClient,
    Sms,
)
from switchboard.runtime.accounts import Account
from switchboard.sandbox import SlidingWindow

from .support import Env, Mock, assert_error, reply

CREDENTIALS = SendPulseAccount("client-id", "client-secret")
API = "https://api.sendpulse.com"


def token(value: str, expires_in: int = 3600) -> httpx.Response:
    return reply(200, {"access_token": value, "token_type": "Bearer", "expires_in": expires_in})


def expired() -> httpx.Response:
    return reply(
        401,
        {
            "error": "access_denied",
            "error_description": "The resource owner or authorization server denied the request.",
            "hint": "Access token has expired",
            "message": "The resource owner or authorization server denied the request.",
        },
    )


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_token_is_fetched_once_and_reused() -> None:
    mock = Mock(
        [token("t1"), reply(200, {"result": True}), reply(200, {"result": True, "id": "e1"})]
    )
    async with mock.client() as http:
        client = SendPulseClient(http)
        await client.add_to_address_book(CREDENTIALS, 42, [Contact("a@x.test", {"name": "A"})])
        sent = await client.send_email(
            CREDENTIALS,
            Email(
                sender=Address("shop@x.test", "Shop"),
                to=[Address("a@x.test")],
                subject="Hi",
                html="<p>Привіт</p>",
            ),
        )
    auth, book, email = mock.requests
    assert (auth.method, str(auth.url)) == ("POST", f"{API}/oauth/access_token")
    assert mock.json(0) == {
        "grant_type": "client_credentials",
        "client_id": "client-id",
        "client_secret": "client-secret",
    }
    assert str(book.url) == f"{API}/addressbooks/42/emails"
    assert book.headers["authorization"] == "Bearer t1"
    assert mock.json(1) == {"emails": [{"email": "a@x.test", "variables": {"name": "A"}}]}
    body = mock.json(2)["email"]
    assert base64.b64decode(body["html"]).decode() == "<p>Привіт</p>"
    assert body["from"] == {"email": "shop@x.test", "name": "Shop"}
    assert body["to"] == [{"email": "a@x.test"}]
    assert email.headers["authorization"] == "Bearer t1"
    assert sent.id == "e1"


async def test_sms_shape_and_result() -> None:
    answer = {"result": True, "campaign_id": 7, "counters": {"exceptions": 0, "sends": 2}}
    mock = Mock([token("t1"), reply(200, answer)])
    async with mock.client() as http:
        sent = await SendPulseClient(http).send_sms(
            CREDENTIALS,
            Sms(sender="Shop", phones=["380501234567", "+380671234567"], body="Code 1234"),
        )
    assert mock.json(1) == {
        "sender": "Shop",
        "phones": ["380501234567", "+380671234567"],
        "body": "Code 1234",
        "transliterate": 0,
    }
    assert (sent.campaign_id, sent.sends) == (7, 2)


async def test_a_401_refreshes_once_and_repeats_the_call_once() -> None:
    mock = Mock([token("t1"), expired(), token("t2"), reply(200, {"result": True})])
    async with mock.client() as http:
        await SendPulseClient(http).add_to_address_book(CREDENTIALS, 1, [Contact("a@x.test")])
    urls = [str(r.url).removeprefix(API) for r in mock.requests]
    assert urls == [
        "/oauth/access_token",
        "/addressbooks/1/emails",
        "/oauth/access_token",
        "/addressbooks/1/emails",
    ]
    assert [r.headers.get("authorization") for r in mock.requests[1::2]] == [
        "Bearer t1",
        "Bearer t2",
    ]


async def test_a_second_401_waits_for_the_credentials_and_is_not_repeated() -> None:
    mock = Mock([token("t1"), expired(), token("t2"), expired()])
    async with mock.client() as http:
        with pytest.raises(ProviderError) as caught:
            await SendPulseClient(http).add_to_address_book(CREDENTIALS, 1, [Contact("a@x.test")])
    assert_error(caught.value, Failure.UNAUTHORIZED, "sendpulse_401")
    assert "after a refresh" in caught.value.reason
    assert len(mock.requests) == 4


async def test_the_token_is_renewed_before_it_expires() -> None:
    clock = Clock()
    mock = Mock(
        [
            token("t1", 600),
            reply(200, {"result": True}),
            token("t2", 600),
            reply(200, {"result": True}),
        ]
    )
    async with mock.client() as http:
        client = SendPulseClient(http, clock=clock)
        await client.add_to_address_book(CREDENTIALS, 1, [])
        clock.now += 600 - 60  # inside the safety margin (a tenth of the lifetime)
        await client.add_to_address_book(CREDENTIALS, 1, [])
    assert mock.requests[3].headers["authorization"] == "Bearer t2"


async def test_concurrent_calls_share_one_refresh() -> None:
    tokens = iter(["t1", "t2", "t3"])
    valid = {"t2"}

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth/access_token":
            return token(next(tokens))
        if request.headers["authorization"].removeprefix("Bearer ") not in valid:
            return expired()
        return reply(200, {"result": True})

    mock = Mock(default=handle)
    async with mock.client() as http:
        client = SendPulseClient(http)
        await client.token(CREDENTIALS)  # t1, which the server no longer accepts
        await asyncio.gather(*(client.add_to_address_book(CREDENTIALS, 1, []) for _ in range(5)))
    fetches = [r for r in mock.requests if r.url.path == "/oauth/access_token"]
    assert len(fetches) == 2


@pytest.mark.parametrize(
    ("answer", "failure", "code", "retry_after"),
    [
        (
            reply(
                429,
                {"is_error": True, "error_code": 429, "message": "Too Many Requests"},
                {"Retry-After": "2"},
            ),
            Failure.RATE_LIMITED,
            "sendpulse_429",
            2.0,
        ),
        (
            reply(429, {"is_error": True, "error_code": 429}),
            Failure.RATE_LIMITED,
            "sendpulse_429",
            1.0,
        ),
        (
            reply(400, {"is_error": True, "error_code": 213, "message": "Book not found"}),
            Failure.PERMANENT,
            "sendpulse_213",
            None,
        ),
        (
            reply(
                400,
                {"is_error": True, "error_code": 11, "message": "Can't find recipients addresses"},
            ),
            Failure.PERMANENT,
            "sendpulse_11",
            None,
        ),
        (httpx.Response(502, text="bad gateway"), Failure.RETRYABLE, "sendpulse_502", None),
        (httpx.ConnectError("refused"), Failure.RETRYABLE, "sendpulse_network", None),
    ],
)
async def test_call_classification(
    answer: Any, failure: Failure, code: str, retry_after: float | None
) -> None:
    mock = Mock([token("t1"), answer])
    async with mock.client() as http:
        with pytest.raises(ProviderError) as caught:
            await SendPulseClient(http).add_to_address_book(CREDENTIALS, 1, [Contact("a@x.test")])
    assert_error(caught.value, failure, code, retry_after=retry_after)
    if failure is Failure.RATE_LIMITED:
        assert caught.value.scope is Scope.ACCOUNT


async def test_bad_credentials_wait_for_the_operator() -> None:
    answer = reply(
        401,
        {
            "error": "invalid_client",
            "error_description": "Client authentication failed.",
            "message": "Client authentication failed.",
        },
    )
    mock = Mock([answer])
    async with mock.client() as http:
        with pytest.raises(ProviderError) as caught:
            await SendPulseClient(http).send_sms(CREDENTIALS, Sms("Shop", ["380501234567"], "x"))
    assert_error(caught.value, Failure.UNAUTHORIZED, "sendpulse_invalid_client")
    assert "client-secret" not in str(caught.value)


def test_credentials_from_a_registry_account() -> None:
    registry = Account(
        channel="generic",
        id="mail",
        settings={"api_base_url": "http://sb.test/sendpulse"},
        secrets={"client_id": "id", "client_secret": "s"},
    )
    assert SendPulseAccount.from_account(registry) == SendPulseAccount(
        "id", "s", "http://sb.test/sendpulse"
    )
    assert "s'" not in repr(SendPulseAccount.from_account(registry))
    with pytest.raises(ProviderError):
        SendPulseAccount.from_account(Account(channel="generic", id="x"))


# -- against the sandbox ---------------------------------------------------------------


async def test_sandbox_flows_and_token_expiry(env: Env) -> None:
    sp = env.box.sendpulse
    sp.add_account("sp-id", "sp-secret")
    sp.add_address_book("sp-id", "Leads", 42)
    creds = SendPulseAccount("sp-id", "sp-secret", f"{env.url}/sendpulse")
    client = SendPulseClient(env.http)

    await client.add_to_address_book(creds, 42, [Contact("olena@x.test", {"name": "Olena"})])
    assert [(c["email"], c["variables"]) for c in sp.contacts(42)] == [
        ("olena@x.test", {"name": "Olena"})
    ]
    sent = await client.send_email(
        creds,
        Email(
            sender=Address("shop@x.test", "Shop"),
            to=[Address("olena@x.test", "Olena")],
            subject="Hi",
            html="<b>hi</b>",
            text="hi",
        ),
    )
    [email] = sp.emails("sp-id")
    assert (email.id, email.html, email.subject) == (sent.id, "<b>hi</b>", "Hi")
    sms = await client.send_sms(creds, Sms("Shop", ["+380501234567"], "Code 1234"))
    assert sms.sends == 1
    assert sp.sms("sp-id")[0].phones == ["380501234567"]

    sp.expire_tokens("sp-id")
    mark = env.box.recorder.mark()
    await client.add_to_address_book(creds, 42, [Contact("taras@x.test")])
    calls = [
        (r.method, r.status) for r in env.box.recorder.requests(provider="sendpulse", after=mark)
    ]
    assert calls == [
        ("add_emails_to_addressbook", 401),
        ("access_token", 200),
        ("add_emails_to_addressbook", 200),
    ]
    tokens = env.box.recorder.requests(provider="sendpulse", method="access_token")
    assert len(tokens) == 2  # the first call's token, and the single refresh


async def test_sandbox_errors(env: Env) -> None:
    env.box.sendpulse.add_account("sp-id", "sp-secret")
    client = SendPulseClient(env.http)
    base = f"{env.url}/sendpulse"
    with pytest.raises(ProviderError) as caught:
        await client.send_sms(
            SendPulseAccount("sp-id", "wrong", base), Sms("Shop", ["380501234567"], "x")
        )
    assert_error(caught.value, Failure.UNAUTHORIZED, "sendpulse_invalid_client")
    creds = SendPulseAccount("sp-id", "sp-secret", base)
    with pytest.raises(ProviderError) as caught:
        await client.add_to_address_book(creds, 9999, [Contact("a@x.test")])
    assert_error(caught.value, Failure.PERMANENT, "sendpulse_213")
    env.box.config.sendpulse.limits.account = SlidingWindow(limit=1, window=2.0)
    env.clock.advance(2.0)  # the refused book call above used this second's slot
    await client.send_sms(creds, Sms("Shop", ["380501234567"], "x"))
    with pytest.raises(ProviderError) as caught:
        await client.send_sms(creds, Sms("Shop", ["380501234567"], "x"))
    assert_error(
        caught.value, Failure.RATE_LIMITED, "sendpulse_429", retry_after=2.0, scope=Scope.ACCOUNT
    )
    env.box.config.sendpulse.limits.account = None
    env.box.set_fault("sendpulse", "sp-id", error_rate=1.0, error_status=503)
    with pytest.raises(ProviderError) as caught:
        await client.send_sms(creds, Sms("Shop", ["380501234567"], "x"))
    assert caught.value.failure is Failure.RETRYABLE
