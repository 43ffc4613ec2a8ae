"""Hostile input at every webhook endpoint: never a 5xx, never a crash, and nothing is
published unless it was verified; verified-but-unreadable payloads end in the DLQ with a
reason instead of looping."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from standardwebhooks.webhooks import Webhook
from tests.support.stack import keyring, service_env
from tests.support.streams import stream_count, stream_messages

from switchboard.events.catalog.common import Channel
from switchboard.ingest.app import create_app
from switchboard.ingest.settings import IngestSettings
from switchboard.runtime.accounts import Account, AccountStore
from switchboard.runtime.bus import Bus
from switchboard.runtime.dlq import list_dead_letters
from switchboard.runtime.settings import load_settings
from switchboard.runtime.testing import eventually, serve_app

SIGNING = "whsec_" + base64.b64encode(b"z" * 32).decode()
ALLOWED = {200, 400, 401, 403, 404, 405, 413, 415, 422, 429}
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)
bodies = st.one_of(
    st.binary(max_size=300),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries(
        {"update_id": st.integers(-5, 2**40)},
        optional={
            "message": json_values,
            "edited_message": json_values,
            "callback_query": json_values,
            "my_chat_member": json_values,
        },
    ).map(lambda v: json.dumps(v).encode()),
    st.just(b"x" * 5000),
)
accounts = st.sampled_from(["demo", "nobody", "de%2Fmo", "a" * 300, "..", "%00"])
providers = st.sampled_from(["telegram", "whatsapp", "viber", "generic", "fax"])
headers = st.fixed_dictionaries(
    {},
    optional={
        "Content-Type": st.sampled_from(
            ["application/json", "text/plain", "application/json; charset=utf-8", "", "\x7f"]
        ),
        "X-Telegram-Bot-Api-Secret-Token": st.sampled_from(
            ["fz-secret", "", "wrong", "fz-secret\x00"]
        ),
        "X-Hub-Signature-256": st.text(max_size=80),
        "X-Viber-Content-Signature": st.text(max_size=80),
        "webhook-id": st.text(max_size=20),
        "webhook-timestamp": st.text(max_size=12),
        "webhook-signature": st.text(max_size=60),
    },
).map(
    # What an HTTP client can send at all: h11 refuses a value with whitespace at either end
    # (a lone " " failed the client before the request left, in a fresh-clone run).
    lambda h: {k: v.strip() for k, v in h.items() if v.isascii() and v.isprintable()}
)


@pytest.fixture
async def ingest(nats_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[str]:
    for key, value in service_env(nats_url, SWITCHBOARD_INGEST_MAX_BODY_BYTES=4096).items():
        monkeypatch.setenv(key, value)
    bus = await Bus.connect(nats_url, name="setup")
    await bus.provision()
    store = AccountStore(await bus.kv("accounts"), keyring())
    for channel, secrets in (
        (Channel.TELEGRAM, {"webhook_secret": "fz-secret", "token": "1:x"}),
        (Channel.WHATSAPP, {"app_secret": "fz", "verify_token": "v"}),
        (Channel.VIBER, {"token": "fz"}),
        (Channel.GENERIC, {"signing_secret": SIGNING}),
    ):
        await store.put(Account(channel=channel, id="demo", workspace_id="demo", secrets=secrets))
    await bus.close()
    async with serve_app(create_app(load_settings(IngestSettings))) as url:
        yield url


@settings(max_examples=250, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    provider=providers,
    account=accounts,
    hdrs=headers,
    body=bodies,
    method=st.sampled_from(["POST", "GET", "PUT"]),
)
async def test_unverified_input_never_5xx_and_never_published(
    ingest: str,
    nats_url: str,
    provider: str,
    account: str,
    hdrs: dict[str, str],
    body: bytes,
    method: str,
) -> None:
    before = await stream_count(nats_url, "RAW")
    async with httpx.AsyncClient(timeout=10) as http:
        r = await http.request(
            method, f"{ingest}/webhooks/{provider}/{account}", content=body, headers=hdrs
        )
    assert r.status_code in ALLOWED, (r.status_code, r.text)
    if r.status_code != 200:
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["detail"]
        assert await stream_count(nats_url, "RAW") == before
    else:
        # only verifiable requests are accepted: the Telegram secret or a valid GET handshake
        verified = hdrs.get("X-Telegram-Bot-Api-Secret-Token") == "fz-secret" or method == "GET"
        assert verified, (provider, hdrs)
        assert account == "demo"


@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@given(payload=json_values, webhook_id=st.text("abcdef0123456789_", min_size=1, max_size=16))
async def test_verified_garbage_is_accepted_then_dead_lettered_not_looped(
    ingest: str, nats_url: str, payload: Any, webhook_id: str
) -> None:
    body = json.dumps({"type": "message.received", "data": payload}).encode()
    now = datetime.now(UTC)
    hdrs = {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(SIGNING).sign(webhook_id, now, body.decode()),
        "Content-Type": "application/json",
    }
    async with httpx.AsyncClient(timeout=10) as http:
        r = await http.post(f"{ingest}/webhooks/generic/demo", content=body, headers=hdrs)
    assert r.status_code == 200, r.text


async def test_after_fuzzing_the_normalizer_is_idle_and_every_failure_has_a_reason(
    ingest: str, nats_url: str
) -> None:
    """Verified garbage: each payload either normalizes or sits in the DLQ with a reason."""
    async with httpx.AsyncClient(timeout=10) as http:
        for i, payload in enumerate([{"chat_id": 1}, "text", None, {"sender": {}}, [1, 2]]):
            body = json.dumps({"type": "message.received", "data": payload}).encode()
            now = datetime.now(UTC)
            hdrs = {
                "webhook-id": f"g{i}",
                "webhook-timestamp": str(int(now.timestamp())),
                "webhook-signature": Webhook(SIGNING).sign(f"g{i}", now, body.decode()),
                "Content-Type": "application/json",
            }
            assert (
                await http.post(f"{ingest}/webhooks/generic/demo", content=body, headers=hdrs)
            ).status_code == 200
    bus = await Bus.connect(nats_url, name="probe")
    try:

        async def idle() -> bool:
            info = await bus.js.consumer_info("RAW", "ingest-normalizer")
            return info.num_pending == 0 and info.num_ack_pending == 0

        await eventually(idle, timeout=20, message="normalizer idle")
        letters = await list_dead_letters(bus)
    finally:
        await bus.close()
    assert len(letters) == 5
    assert all(lt.reason.startswith("message.received data") for lt in letters), letters
    assert await stream_messages(nats_url, "CONV") == []


@pytest.mark.parametrize(
    ("declared", "sent", "status"),
    [("99999999", b"{}", 413), ("2", b"{}", 401), ("abc", b"{}", 400)],
)
async def test_lying_content_length_is_refused_without_buffering(
    ingest: str, nats_url: str, declared: str, sent: bytes, status: int
) -> None:
    """What httpx will not send: a raw request whose Content-Length is huge or not a number."""
    host, port = ingest.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        f"POST /webhooks/telegram/demo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {declared}\r\n\r\n".encode()
        + sent
    )
    await writer.drain()
    status_line = await asyncio.wait_for(reader.readline(), 10)
    writer.close()
    assert int(status_line.split()[1]) == status
    assert await stream_count(nats_url, "RAW") == 0
