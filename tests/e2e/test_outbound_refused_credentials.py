"""An account whose credentials the provider refuses (a revoked bot token, an expired access
token) is the operator's to fix, not the messages' fault: its sends wait, unspent, and
leave once the account's secret is fixed in the registry. Before, each one failed
permanently at once (a DLQ entry apiece), and a campaign through the account failed every
recipient within seconds of the token's revocation."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
import structlog
from tests.support.ingest import ADMIN, ADMIN_TOKEN
from tests.support.outbound import (
    OutboundStack,
    outbound_stack,
    sandbox_account,
    telegram_shop,
)
from tests.support.stack import API_KEY

from switchboard.events.catalog.common import Channel
from switchboard.ingest.app import create_app as ingest_app
from switchboard.ingest.settings import IngestSettings
from switchboard.runtime.embedded import free_port
from switchboard.runtime.logging import configure_logging
from switchboard.runtime.settings import load_settings
from switchboard.runtime.testing import eventually, serve_app
from switchboard.sandbox import Sandbox, SandboxConfig

pytestmark = pytest.mark.e2e
TOKEN = "300000093:refused-a"
REVOKED = "300000093:revoked-token"
CHATS = (4401, 4402, 4403)
A = {"Authorization": f"Bearer {API_KEY}"}


@pytest.fixture
async def env(nats_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[OutboundStack]:
    box = Sandbox(SandboxConfig())
    box.telegram.add_bot(TOKEN, "refused_bot")
    for chat in CHATS:
        box.telegram.add_chat(TOKEN, chat, "private")

    def accounts(sandbox: str) -> list[Any]:
        return [telegram_shop(sandbox, REVOKED)]  # the token Telegram no longer takes

    # A retry budget of 2 attempts: the refusals below outlast it.
    settings = {
        "SWITCHBOARD_OUTBOUND_UNAUTHORIZED_WAIT_S": "0.5",
        "SWITCHBOARD_OUTBOUND_MAX_ATTEMPTS": "2",
    }
    async with outbound_stack(box, nats_url, monkeypatch, accounts, **settings) as stack:
        yield stack


async def _statuses(env: OutboundStack) -> dict[str, dict[str, Any]]:
    found = {}
    for chat in CHATS:
        r = await env.http.get(f"{env.url}/v1/messages/refused-{chat}", headers=A)
        assert r.status_code == 200, r.text
        found[str(chat)] = r.json()
    return found


async def test_sends_wait_for_refused_credentials_and_leave_once_they_are_fixed(
    env: OutboundStack,
) -> None:
    for chat in CHATS:
        text = {"kind": "text", "text": "your order"}
        body = {"message_id": f"refused-{chat}", "channel": "telegram", "account": "shop",
                "recipient": str(chat), "content": text}  # fmt: skip
        r = await env.http.post(f"{env.url}/v1/messages", json=body, headers=A)
        assert r.status_code == 202, r.text

    async def refused_past_the_budget() -> dict[str, dict[str, Any]] | None:
        found = await _statuses(env)
        retried = [h for m in found.values() for h in m["history"] if h["status"] == "retrying"]
        return found if len(retried) >= 4 else None  # twice the 2 attempts a send may spend

    found = await eventually(
        refused_past_the_budget, timeout=30, message="refused longer than the retry budget"
    )
    assert {m["status"] for m in found.values()} <= {"queued", "retrying", "in_flight"}, found
    reasons = {h["reason"] for m in found.values() for h in m["history"] if h["reason"]}
    assert any("Unauthorized" in r for r in reasons), reasons
    assert all(m["attempts"] <= 1 for m in found.values()), found  # none spent on the token
    assert env.box.telegram.messages(TOKEN) == []

    # The operator gives the account its new token: the waiting sends leave, each once.
    await env.accounts.put(telegram_shop(env.sandbox, TOKEN))

    async def all_sent() -> dict[str, dict[str, Any]] | None:
        found = await _statuses(env)
        return found if {m["status"] for m in found.values()} == {"sent"} else None

    await eventually(all_sent, timeout=30, message="the sends left with the fixed token")
    sent = env.box.telegram.messages(TOKEN)
    assert sorted(int(m["chat"]["id"]) for m in sent) == sorted(CHATS)


WA_NUMBER, WA_TOKEN, WA_USER = "100200393", "wa-pair-token", "15550007799"


class _Lines(logging.Handler):
    """Every record the process logs, as its event dict or message reads."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(str(record.msg))


async def test_a_recipient_pause_is_logged_without_naming_the_recipient(
    nats_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A provider's pause of one recipient (WhatsApp's pair limit, 131056) was logged with
    its pause key, which holds the person's phone number: logs are no place for it. The
    account's limits here are set faster than Meta allows, so the second send meets it."""
    box = Sandbox(SandboxConfig())
    box.whatsapp.add_number(WA_NUMBER, WA_TOKEN)
    box.whatsapp.add_user(WA_NUMBER, WA_USER, "Olena", last_inbound_at=box.clock.time())

    def accounts(sandbox: str) -> list[Any]:
        return [sandbox_account(sandbox, Channel.WHATSAPP, "wa", {"access_token": WA_TOKEN},
                                phone_number_id=WA_NUMBER, limits={"pair": [10, 1]})]  # fmt: skip

    # Logging as a service process configures it (structlog through the stdlib), read at
    # the record by a handler of the root's: in any test order, whatever stream an earlier
    # configuration left the root's handler writing to. Restored afterwards.
    lines, root, saved = _Lines(), logging.getLogger(), structlog.get_config()
    handlers, level = root.handlers[:], root.level
    async with outbound_stack(box, nats_url, monkeypatch, accounts) as env:
        configure_logging("outbound", json=True)
        root.addHandler(lines)
        try:
            for n in (1, 2):
                text = {"kind": "text", "text": f"hi {n}"}
                body = {"message_id": f"pair-{n}", "channel": "whatsapp", "account": "wa",
                        "recipient": WA_USER, "content": text}  # fmt: skip
                r = await env.http.post(f"{env.url}/v1/messages", json=body, headers=A)
                assert r.status_code == 202, r.text

            async def paused() -> bool:
                r = await env.http.get(f"{env.url}/v1/messages/pair-2", headers=A)
                return any("131056" in (h["reason"] or "") for h in r.json()["history"])

            await eventually(paused, timeout=30, message="the second send met the pair limit")
        finally:
            root.handlers[:] = handlers
            root.setLevel(level)
            structlog.configure(**saved)
    logs = "\n".join(lines.lines)
    assert "paused for every instance" in logs
    assert WA_USER not in logs


async def test_the_operator_fixes_the_token_in_place_and_the_waiting_sends_leave(
    env: OutboundStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fix as an operator makes it: ``PATCH /admin/accounts/telegram/shop`` with the
    bot's new token (checked with getMe first, the webhook set again). Before, the admin API
    could only remove the account and add it again, and the removal failed every waiting
    send as an unknown account."""
    text = {"kind": "text", "text": "your order"}
    body = {"message_id": "fixed-1", "channel": "telegram", "account": "shop",
            "recipient": str(CHATS[0]), "content": text}  # fmt: skip
    r = await env.http.post(f"{env.url}/v1/messages", json=body, headers=A)
    assert r.status_code == 202, r.text

    async def refused() -> bool:
        r = await env.http.get(f"{env.url}/v1/messages/fixed-1", headers=A)
        return any(h["status"] == "retrying" for h in r.json()["history"])

    await eventually(refused, timeout=30, message="the revoked token refused")
    port = free_port()
    monkeypatch.setenv("SWITCHBOARD_ADMIN_TOKEN", ADMIN_TOKEN)
    monkeypatch.setenv("SWITCHBOARD_INGEST_PUBLIC_URL", f"http://127.0.0.1:{port}")
    async with serve_app(ingest_app(load_settings(IngestSettings)), port=port) as ingest:
        url = f"{ingest}/admin/accounts/telegram/shop"
        change = {"secrets": {"token": TOKEN}}
        for who in ({}, A):  # no token, a workspace's API key: the operator's route only
            assert (await env.http.patch(url, headers=who, json=change)).status_code == 401
        other = await env.http.patch(url, headers=ADMIN, json={"secrets": {"token": "1:x"}})
        assert (other.status_code, other.json()["code"]) == (409, "another_identity"), other.text
        fixed = await env.http.patch(url, headers=ADMIN, json={"secrets": {"token": TOKEN}})
        assert fixed.status_code == 200, fixed.text
        assert TOKEN not in fixed.text

    async def sent() -> bool:
        r = await env.http.get(f"{env.url}/v1/messages/fixed-1", headers=A)
        return bool(r.json()["status"] == "sent")

    await eventually(sent, timeout=30, message="the waiting send left with the new token")
    assert [int(m["chat"]["id"]) for m in env.box.telegram.messages(TOKEN)] == [CHATS[0]]
    webhook = env.box.telegram.bot(TOKEN).webhook
    assert webhook.url == f"http://127.0.0.1:{port}/webhooks/telegram/shop"
