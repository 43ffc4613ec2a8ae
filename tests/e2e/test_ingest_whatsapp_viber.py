"""WhatsApp and Viber reach ingest as they do in production: the sandbox performs Meta's GET
handshake and signs every POST; a Viber bot added through the admin API gets its
set_webhook (with Viber's immediate callback check); simulated users' traffic then
arrives as exactly one conv/delivery event per provider event."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from tests.support.ingest import ADMIN, ADMIN_TOKEN, ingest_behind_sandbox
from tests.support.ingest import IngestEnv as Env
from tests.support.stack import add_account
from tests.support.streams import by_type, stream_messages

from switchboard.runtime.testing import eventually
from switchboard.sandbox import Sandbox, SandboxConfig

pytestmark = pytest.mark.e2e
VIBER_TOKEN = "4453b6ac1234abcd-e2e-viber-token"
WA_APP_SECRET = "5f0c8e2a9b7d4c1e6a3f8b0d2e4c6a81"  # a Meta app secret: 32 hex characters
CALLBACK_KINDS = {"interactive", "button"}
STATUS_KINDS = {"subscribed", "unsubscribed", "conversation_started"}


@pytest.fixture
async def env(nats_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Env]:
    box = Sandbox(SandboxConfig())
    box.whatsapp.add_number("109000000000001", "wa-token", app_secret=WA_APP_SECRET,
                            verify_token="wa-verify")  # fmt: skip
    box.viber.add_bot(VIBER_TOKEN, "E2E Shop", uri="e2eshop")
    async with ingest_behind_sandbox(box, nats_url, monkeypatch, "viber") as env:
        yield env


async def _add(env: Env, body: dict[str, Any]) -> None:
    await add_account(env.http, env.ingest, ADMIN_TOKEN, body)


async def test_whatsapp_handshake_signed_webhooks_and_every_kind(env: Env, nats_url: str) -> None:
    await _add(env, {"channel": "whatsapp", "id": "wa1", "workspace_id": "acme",
                     "secrets": {"app_secret": WA_APP_SECRET, "verify_token": "wa-verify"},
                     "settings": {"phone_number_id": "109000000000001"}})  # fmt: skip
    await env.box.whatsapp.set_webhook("109000000000001", f"{env.ingest}/webhooks/whatsapp/wa1")
    generated = await env.box.whatsapp.generate("109000000000001", count=120, rate=400, seed=7)
    await env.box.whatsapp.wait_delivered("109000000000001", timeout=30)
    kinds = [g.kind for g in generated]
    expected = {
        "conv.message_received": sum(k not in CALLBACK_KINDS | {"status"} for k in kinds),
        "conv.callback_received": sum(k in CALLBACK_KINDS for k in kinds),
    }
    expected = {k: v for k, v in expected.items() if v}
    receipts = kinds.count("status")

    async def arrived() -> bool:
        conv = by_type(await stream_messages(nats_url, "CONV"))
        delivery = await stream_messages(nats_url, "DELIVERY") if receipts else []
        return conv == expected and len(delivery) == receipts

    await eventually(arrived, timeout=30, message=f"{expected} + {receipts} receipts")
    assert not [d for d in env.box.recorder.deliveries(provider="whatsapp") if not d.ok]


async def test_viber_added_by_admin_gets_its_webhook_and_every_kind(
    env: Env, nats_url: str
) -> None:
    await _add(env, {"channel": "viber", "id": "vb1", "workspace_id": "acme",
                     "secrets": {"token": VIBER_TOKEN}})  # fmt: skip
    bot = env.box.viber.bot("e2eshop")
    assert bot.webhook.url == f"{env.ingest}/webhooks/viber/vb1"
    generated = await env.box.viber.generate("e2eshop", count=80, rate=400, seed=3)
    await env.box.viber.wait_delivered("e2eshop", timeout=30)
    queued = [g.kind for g in generated if g.queued]
    expected = {
        "conv.message_received": sum(k not in STATUS_KINDS for k in queued),
        "conv.contact_status_changed": sum(k in STATUS_KINDS for k in queued),
    }

    async def arrived() -> dict[str, int] | None:
        counts = by_type(await stream_messages(nats_url, "CONV"))
        return counts if counts == {k: v for k, v in expected.items() if v} else None

    await eventually(arrived, timeout=30, message=f"CONV holds {expected}")

    # A wrong token at Viber is refused by the check before anything is stored.
    r = await env.http.post(f"{env.ingest}/admin/accounts", headers=ADMIN, json={
        "channel": "viber", "id": "vb2", "secrets": {"token": "not-a-viber-token"}})  # fmt: skip
    assert r.status_code == 422
    assert "Viber refused the token" in r.json()["detail"]
    assert [e["path"] for e in r.json()["errors"]] == ["secrets.token"]
    listing = await env.http.get(f"{env.ingest}/admin/accounts", headers=ADMIN)
    assert [a["id"] for a in listing.json()["items"]] == ["vb1"]


async def test_operator_cli_manages_accounts_through_the_admin_api(env: Env) -> None:
    import asyncio
    import os
    import sys

    async def cli(*args: str, **extra_env: str) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "switchboard.ingest.cli", "--url", env.ingest, *args,
            env={**os.environ, "SWITCHBOARD_ADMIN_TOKEN": ADMIN_TOKEN, **extra_env},
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await proc.communicate()
        return proc.returncode or 0, out.decode(), err.decode()

    code, out, err = await cli("accounts", "add", "viber", "vb9", "--workspace", "acme",
                               SWITCHBOARD_VIBER_TOKEN=VIBER_TOKEN)  # fmt: skip
    assert code == 0, err
    assert VIBER_TOKEN not in out
    assert json.loads(out)["secrets"] == ["token"]
    code, out, _ = await cli("accounts", "list")
    assert [a["id"] for a in json.loads(out)["items"]] == ["vb9"]
    code, _, err = await cli("accounts", "add", "viber", "vb10")  # no token in env, no tty
    assert (code, err.strip()) == (
        1,
        "set SWITCHBOARD_VIBER_TOKEN (secrets are not taken as arguments)",
    )
    # Changed in place, checked first: a welcome added, then one Viber would refuse (422,
    # nothing changed), a setting removed; a token of a bot Viber does not know is refused.
    code, out, err = await cli("accounts", "update", "viber", "vb9",
                               "--setting", "welcome_text=Hi there")  # fmt: skip
    assert (code, json.loads(out)["settings"]["welcome_text"]) == (0, "Hi there"), err
    code, _, err = await cli("accounts", "update", "viber", "vb9",
                             "--setting", "welcome_buttons=" + ",".join("abcdefg"))  # fmt: skip
    assert (code, "422 check_failed: settings.welcome_buttons" in err) == (1, True), err
    code, out, err = await cli("accounts", "update", "viber", "vb9", "--unset", "welcome_text")
    assert (code, "welcome_text" in json.loads(out)["settings"]) == (0, False), err
    code, _, err = await cli("accounts", "update", "viber", "vb9", "--secret", "token",
                             SWITCHBOARD_VIBER_TOKEN="not-a-viber-token")  # fmt: skip
    assert (code, "Viber refused the token" in err) == (1, True), err
    code, _, err = await cli("accounts", "update", "viber", "vb404", "--setting", "a=b")
    assert (code, "404 unknown_account" in err) == (1, True), err
    code, _, err = await cli("accounts", "rotate", "viber", "vb9")
    assert code == 1
    assert "400 not_rotatable" in err
    code, _, _ = await cli("accounts", "remove", "viber", "vb9")
    assert code == 0
    assert env.box.viber.bot("e2eshop").webhook.url in ("", None)
    code, _, err = await cli("accounts", "remove", "viber", "vb9")
    assert (code, "404 unknown_account" in err) == (1, True)


async def test_a_viber_bot_welcomes_a_user_who_only_opened_the_chat(env: Env) -> None:
    """Viber lets a bot send one message to a user who has not subscribed: the answer to
    the conversation_started callback. Before, nothing could reach such a user (every
    later send fails receiverNotSubscribed). The sandbox shows the answer as Viber does,
    and viberbot reads it as the keyboard message it is."""
    from viberbot.api.messages import get_message

    r = await env.http.post(f"{env.ingest}/admin/accounts", headers=ADMIN, json={
        "channel": "viber", "id": "vb3", "secrets": {"token": VIBER_TOKEN},
        "settings": {"welcome_buttons": "Start"}})  # fmt: skip
    assert (r.status_code, [e["path"] for e in r.json()["errors"]]) == (
        422,
        ["settings.welcome_buttons"],  # buttons without a text
    )
    await _add(env, {"channel": "viber", "id": "vb3", "workspace_id": "acme",
                     "secrets": {"token": VIBER_TOKEN},
                     "settings": {"welcome_text": "Hi! Press Start to get our prices.",
                                  "welcome_buttons": "Start,Prices"}})  # fmt: skip
    viber = env.box.viber
    await viber.inject_event("e2eshop", "v-new", "conversation_started", context="promo")
    await viber.wait_delivered("e2eshop", timeout=30)

    [welcome] = viber.sent_messages("e2eshop", "v-new")
    assert (welcome["welcome"], welcome["type"]) == (True, "text")
    body = welcome["message"]
    assert body["sender"]["name"] == "E2E Shop"  # the bot's name, stored when it was added
    assert body["text"] == "Hi! Press Start to get our prices."
    parsed = get_message({**body, "receiver": "v-new"})
    parsed.validate()
    assert [b["ActionBody"] for b in parsed.keyboard["Buttons"]] == ["Start", "Prices"]
    assert viber.bot("e2eshop").welcome_refused == []

    # Other callbacks are answered as before: no second message to anyone.
    await viber.inject_event(
        "e2eshop", "v-new", "message", message={"type": "text", "text": "Start"}
    )
    await viber.wait_delivered("e2eshop", timeout=30)
    assert len(viber.sent_messages("e2eshop", "v-new")) == 1
