"""WhatsApp, Viber and Standard Webhooks verification, secret rotation, the inbound limit,
and the second line of dedup (a provider retry after the duplicate window)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from standardwebhooks.webhooks import Webhook
from tests.support.stack import add_telegram_account, keyring, service_env
from tests.support.streams import by_type, stream_count, stream_messages
from tests.support.telegram import text_update

from switchboard.events import ids
from switchboard.events.catalog.common import Channel
from switchboard.events.envelope import H_ID
from switchboard.events.subjects import raw_subject
from switchboard.ingest.app import create_app
from switchboard.ingest.raw import H_RECEIVED_AT
from switchboard.ingest.settings import IngestSettings
from switchboard.runtime.accounts import Account, AccountStore
from switchboard.runtime.app import ServiceApp
from switchboard.runtime.bus import Bus
from switchboard.runtime.settings import load_settings
from switchboard.runtime.testing import eventually, serve_app

APP_SECRET = "wa-app-secret"
VIBER_TOKEN = "4453b6ac1234-viber-token"
SIGNING = "whsec_" + base64.b64encode(b"k" * 32).decode()
ADMIN = {"Authorization": "Bearer admin-token-123"}


@dataclass
class Ingest:
    url: str
    http: httpx.AsyncClient
    nats_url: str
    app: ServiceApp


async def _put(nats_url: str, account: Account) -> None:
    bus = await Bus.connect(nats_url, name="setup")
    try:
        await bus.provision()
        await AccountStore(await bus.kv("accounts"), keyring()).put(account)
    finally:
        await bus.close()


@pytest.fixture
async def ingest(nats_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Ingest]:
    for key, value in service_env(
        nats_url,
        SWITCHBOARD_ADMIN_TOKEN="admin-token-123",
        SWITCHBOARD_INGEST_INBOUND_RATE_PER_ACCOUNT=5,
        SWITCHBOARD_INGEST_INBOUND_BURST_PER_ACCOUNT=5,
    ).items():
        monkeypatch.setenv(key, value)
    await add_telegram_account(nats_url, secret="tg-secret")
    await _put(
        nats_url,
        Account(
            channel=Channel.WHATSAPP,
            id="wa1",
            workspace_id="demo",
            secrets={"app_secret": APP_SECRET, "verify_token": "vt-1"},
        ),
    )
    await _put(
        nats_url,
        Account(
            channel=Channel.VIBER, id="vb1", workspace_id="demo", secrets={"token": VIBER_TOKEN}
        ),
    )
    await _put(
        nats_url,
        Account(
            channel=Channel.GENERIC,
            id="erp",
            workspace_id="demo",
            secrets={"signing_secret": SIGNING},
        ),
    )
    app = create_app(load_settings(IngestSettings))
    async with serve_app(app) as url, httpx.AsyncClient(timeout=10) as http:
        yield Ingest(url, http, nats_url, app)


def _wa_body(wamid: str = "wamid.A1") -> bytes:
    return json.dumps(
        {
            "object": "whatsapp_business_account",
            "entry": [
                {
                    "id": "WABA",
                    "changes": [
                        {
                            "field": "messages",
                            "value": {
                                "messaging_product": "whatsapp",
                                "metadata": {
                                    "display_phone_number": "15550001111",
                                    "phone_number_id": "111",
                                },
                                "contacts": [
                                    {"profile": {"name": "Max"}, "wa_id": "4917612345678"}
                                ],
                                "messages": [
                                    {
                                        "from": "4917612345678",
                                        "id": wamid,
                                        "timestamp": "1763640000",
                                        "type": "text",
                                        "text": {"body": "Hallo"},
                                    }
                                ],
                            },
                        }
                    ],
                }
            ],
        }
    ).encode()


def _sig(key: str, body: bytes) -> str:
    return hmac.new(key.encode(), body, hashlib.sha256).hexdigest()


async def test_whatsapp_handshake_and_signature(ingest: Ingest) -> None:
    base = f"{ingest.url}/webhooks/whatsapp/wa1"
    ok = await ingest.http.get(
        base,
        params={"hub.mode": "subscribe", "hub.verify_token": "vt-1", "hub.challenge": "1158201444"},
    )
    assert (ok.status_code, ok.text) == (200, "1158201444")
    bad = await ingest.http.get(
        base, params={"hub.mode": "subscribe", "hub.verify_token": "x", "hub.challenge": "1"}
    )
    assert bad.status_code == 403
    body = _wa_body()
    json_type = {"Content-Type": "application/json"}
    r = await ingest.http.post(
        base,
        content=body,
        headers={**json_type, "X-Hub-Signature-256": f"sha256={_sig(APP_SECRET, body)}"},
    )
    assert r.json() == {"ok": True, "id": "wa:wamid.A1"}
    for wrong in ("", f"sha256={_sig('other', body)}", _sig(APP_SECRET, body)):
        r = await ingest.http.post(
            base, content=body, headers={**json_type, "X-Hub-Signature-256": wrong}
        )
        assert r.status_code == 401
    tampered = body.replace(b"Hallo", b"Hallo!")
    r = await ingest.http.post(
        base,
        content=tampered,
        headers={**json_type, "X-Hub-Signature-256": f"sha256={_sig(APP_SECRET, body)}"},
    )
    assert r.status_code == 401
    assert await stream_count(ingest.nats_url, "RAW") == 1


async def test_viber_signature(ingest: Ingest) -> None:
    body = json.dumps(
        {
            "event": "message",
            "timestamp": 1763640000000,
            "message_token": 4912661846655238145,
            "sender": {"id": "01234567890A=", "name": "Ann"},
            "message": {"type": "text", "text": "hi"},
        }
    ).encode()
    url = f"{ingest.url}/webhooks/viber/vb1"
    headers = {"Content-Type": "application/json"}
    r = await ingest.http.post(
        url, content=body, headers={**headers, "X-Viber-Content-Signature": _sig(VIBER_TOKEN, body)}
    )
    assert r.status_code == 200, r.text
    assert r.json()["id"] == "vb:vb1:message:4912661846655238145:01234567890A="
    r = await ingest.http.post(
        url, content=body, headers={**headers, "X-Viber-Content-Signature": _sig("x", body)}
    )
    assert r.status_code == 401


def _signed(body: bytes, msg_id: str, at: datetime | None = None) -> dict[str, str]:
    at = at or datetime.now(UTC)
    sig = Webhook(SIGNING).sign(msg_id, at, body)  # bytes as sent (any encoding)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": sig,
        "Content-Type": "application/json",
    }


async def test_standard_webhooks(ingest: Ingest) -> None:
    body = json.dumps(
        {
            "type": "message.received",
            "data": {
                "chat_id": "c1",
                "message_id": "m1",
                "text": "order 42 shipped?",
                "sent_at": "2026-11-20T12:00:00Z",
                "sender": {"id": "u1", "name": "Bo", "phone": "+49 176 1"},
            },
        }
    ).encode()
    url = f"{ingest.url}/webhooks/generic/erp"
    r = await ingest.http.post(url, content=body, headers=_signed(body, "msg_1"))
    assert r.json() == {"ok": True, "id": "wh:erp:msg_1"}
    replay = await ingest.http.post(url, content=body, headers=_signed(body, "msg_1"))
    assert replay.status_code == 200  # same webhook-id: accepted again, stored once
    stale = _signed(body, "msg_2", datetime.fromtimestamp(time.time() - 600, UTC))
    r = await ingest.http.post(url, content=body, headers=stale)
    assert (r.status_code, r.json()["detail"]) == (
        401,
        "Standard Webhooks: Message timestamp too old",
    )
    future = _signed(body, "msg_3", datetime.fromtimestamp(time.time() + 600, UTC))
    assert (await ingest.http.post(url, content=body, headers=future)).status_code == 401
    missing = {k: v for k, v in _signed(body, "msg_4").items() if k != "webhook-signature"}
    assert (await ingest.http.post(url, content=body, headers=missing)).status_code == 401
    garbage = {**_signed(body, "msg_5"), "webhook-signature": "v1 nocomma"}
    assert (await ingest.http.post(url, content=body, headers=garbage)).status_code == 401
    # a signed body that is not UTF-8: the signature holds, the body is what is wrong
    latin = b'{"type": "message.received", "data": {"text": "caf\xe9"}}'
    r = await ingest.http.post(url, content=latin, headers=_signed(latin, "msg_6"))
    assert r.status_code == 400, r.text
    # a signature list with another scheme beside v1 (standardwebhooks 1.1 choked on it)
    listed = _signed(body, "msg_7")
    listed["webhook-signature"] = f"v1a,c29tZS1vdGhlci1zY2hlbWU= {listed['webhook-signature']}"
    assert (await ingest.http.post(url, content=body, headers=listed)).status_code == 200
    # msg_1 and msg_7 are two deliveries of one message: two RAW entries, one event
    assert await stream_count(ingest.nats_url, "RAW") == 2

    async def normalized() -> bool:
        return by_type(await stream_messages(ingest.nats_url, "CONV")) == {
            "conv.message_received": 1
        }

    await eventually(normalized)
    event = (await stream_messages(ingest.nats_url, "CONV"))[0].model
    assert event.sender.phone == "491761"  # type: ignore[attr-defined]


async def test_inbound_limit_answers_429_with_retry_after(ingest: Ingest) -> None:
    statuses = []
    for i in range(8):
        r = await ingest.http.post(
            f"{ingest.url}/webhooks/telegram/demo",
            json=text_update(i + 1),
            headers={"X-Telegram-Bot-Api-Secret-Token": "tg-secret"},
        )
        statuses.append(r.status_code)
        if r.status_code == 429:
            assert int(r.headers["Retry-After"]) >= 1
            assert r.json()["code"] == "rate_limited"
    assert statuses[:5] == [200] * 5
    assert 429 in statuses[5:]
    assert await stream_count(ingest.nats_url, "RAW") == statuses.count(200)


async def test_rotated_secret_keeps_the_old_one_for_a_grace_period(ingest: Ingest) -> None:
    r = await ingest.http.post(f"{ingest.url}/admin/accounts/generic/erp/rotate", headers=ADMIN)
    assert r.status_code == 200, r.text
    body = b'{"type": "ping"}'

    async def old_and_new_both_work() -> bool:
        old = await ingest.http.post(
            f"{ingest.url}/webhooks/generic/erp",
            content=body,
            headers=_signed(body, "after-rotation"),
        )
        return old.status_code == 200

    await eventually(old_and_new_both_work)
    listing = await ingest.http.get(f"{ingest.url}/admin/accounts", headers=ADMIN)
    assert SIGNING not in listing.text
    assert "signing_secret_previous" in listing.text  # names only, never values


class _StoppedClock:
    """A server clock standing where the test puts it, years from this machine's."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def utcnow(self) -> datetime:
        return self.at

    def now(self) -> float:
        return self.at.timestamp()


async def test_the_rotation_grace_and_received_at_are_on_the_server_clock(ingest: Ingest) -> None:
    """The grace's end is written by the instance that rotated and judged by every other,
    and flows times its delays from ``received-at``: both on the clock the instances share
    (the server's), never on this machine's, which here is years behind it."""
    clock = _StoppedClock(datetime(2030, 1, 1, tzinfo=UTC))
    ingest.app.runtime.clock = clock  # type: ignore[assignment]
    rotated = await ingest.http.post(
        f"{ingest.url}/admin/accounts/generic/erp/rotate", headers=ADMIN
    )
    assert rotated.status_code == 200, rotated.text
    body = b'{"type": "ping"}'

    async def post_with_the_old_secret(msg_id: str) -> int:
        r = await ingest.http.post(
            f"{ingest.url}/webhooks/generic/erp", content=body, headers=_signed(body, msg_id)
        )
        return r.status_code

    clock.at += timedelta(minutes=9)
    assert await post_with_the_old_secret("within-grace") == 200
    clock.at += timedelta(minutes=2)  # past the 10 minutes of grace on the server clock
    assert await post_with_the_old_secret("after-grace") == 401
    bus = await Bus.connect(ingest.nats_url, name="test-reader")
    try:
        stored = await bus.js.get_last_msg("RAW", raw_subject("generic", "erp"))
    finally:
        await bus.close()
    assert stored.headers is not None
    assert stored.headers[H_ID] == ids.generic_webhook("erp", "within-grace")
    assert stored.headers[H_RECEIVED_AT].startswith("2030-01-01T00:09:00")


async def test_a_retry_after_the_duplicate_window_is_still_one_event(ingest: Ingest) -> None:
    bus = await Bus.connect(ingest.nats_url, name="setup")
    for stream in ("RAW", "CONV"):  # shrink the windows so "later" is seconds, not minutes
        config = (await bus.js.stream_info(stream)).config
        config.duplicate_window = 0.5
        await bus.js.update_stream(config)
    await bus.close()
    post = {
        "json": text_update(4242, "late retry"),
        "headers": {"X-Telegram-Bot-Api-Secret-Token": "tg-secret"},
    }
    assert (
        await ingest.http.post(f"{ingest.url}/webhooks/telegram/demo", **post)
    ).status_code == 200

    async def stored_twice() -> bool:
        # the provider retries until its copy is past the window and RAW stores it again
        await ingest.http.post(f"{ingest.url}/webhooks/telegram/demo", **post)
        return await stream_count(ingest.nats_url, "RAW") == 2

    await eventually(stored_twice, timeout=10, interval=0.2, message="RAW holds the late retry")

    async def both_normalized() -> bool:
        return await _consumer_done(ingest.nats_url)

    await eventually(both_normalized, message="normalizer processed both copies")
    assert by_type(await stream_messages(ingest.nats_url, "CONV")) == {"conv.message_received": 1}


async def _consumer_done(nats_url: str) -> bool:
    bus = await Bus.connect(nats_url, name="probe")
    try:
        info = await bus.js.consumer_info("RAW", "ingest-normalizer")
        return info.num_pending == 0 and info.num_ack_pending == 0
    finally:
        await bus.close()


def _wa_change(number: str, wamid: str, text: str) -> dict[str, object]:
    body = json.loads(_wa_body(wamid))
    change: dict[str, object] = body["entry"][0]["changes"][0]
    value = change["value"]
    assert isinstance(value, dict)
    value["metadata"] = {"display_phone_number": "15550001111", "phone_number_id": number}
    value["messages"][0]["text"] = {"body": text}
    return change


async def test_one_app_s_webhook_goes_to_each_number_s_own_workspace(ingest: Ingest) -> None:
    """One Meta app posts every number's changes to its one callback URL: a body posted to
    workspace demo's account holds changes for demo's number, for workspace other's number
    of the same app, for a number of another app and for an unknown one. Each of the first
    two is stored and normalized under its own account and workspace; the last two nowhere.
    Before, every change was demo's: other's customers' messages in demo's CRM, and demo's
    replies to them sent through demo's number. A retry stores nothing twice."""
    for account_id, number, secret, workspace in (
        ("wa-a", "111", "shared-app", "demo"),
        ("wa-b", "222", "shared-app", "other"),
        ("wa-x", "333", "another-app", "third"),
    ):
        await _put(
            ingest.nats_url,
            Account(
                channel=Channel.WHATSAPP, id=account_id, workspace_id=workspace,
                settings={"phone_number_id": number}, secrets={"app_secret": secret},
            ),
        )  # fmt: skip

    body = json.dumps(
        {
            "object": "whatsapp_business_account",
            "entry": [
                {"id": "WABA", "changes": [_wa_change("111", "wamid.own", "for demo"),
                                           _wa_change("222", "wamid.b", "for other")]},
                {"id": "WABA", "changes": [_wa_change("333", "wamid.x", "another app"),
                                           _wa_change("444", "wamid.u", "unknown")]},
            ],
        }
    ).encode()  # fmt: skip
    headers = {
        "Content-Type": "application/json",
        "X-Hub-Signature-256": f"sha256={_sig('shared-app', body)}",
    }

    async def accepted() -> dict[str, object]:
        r = await ingest.http.post(f"{ingest.url}/webhooks/whatsapp/wa-a", content=body,
                                   headers=headers)  # fmt: skip
        assert r.status_code == 200, r.text  # 404 until ingest's copy has the accounts
        found: dict[str, object] = r.json()
        return found

    answer = await eventually(accepted, timeout=30)
    assert answer == {"ok": True, "ids": ["wa:wamid.own", "wa:wamid.b"]}

    async def normalized() -> list[tuple[str, str, str]] | None:
        received = [d for d in await stream_messages(ingest.nats_url, "CONV")
                    if d.model.name == "conv.message_received"]  # fmt: skip
        found = sorted(
            (d.envelope.workspace_id, d.model.account, d.model.provider.message_id)  # type: ignore[attr-defined]
            for d in received
        )
        return found if len(found) >= 2 else None

    assert await eventually(normalized, timeout=30) == [
        ("demo", "wa-a", "wamid.own"), ("other", "wa-b", "wamid.b"),
    ]  # fmt: skip
    bus = await Bus.connect(ingest.nats_url, name="probe")
    try:
        info = await bus.js.stream_info("RAW", subjects_filter=">")
    finally:
        await bus.close()
    assert info.state.subjects == {"raw.whatsapp.v1.wa-a": 1, "raw.whatsapp.v1.wa-b": 1}
    r = await ingest.http.post(f"{ingest.url}/webhooks/whatsapp/wa-a", content=body,
                               headers=headers)  # fmt: skip
    assert r.status_code == 200, r.text
    assert await stream_count(ingest.nats_url, "RAW") == 2  # the retry: JetStream's duplicates
