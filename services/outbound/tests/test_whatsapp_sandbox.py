"""WhatsAppClient against the sandbox's Cloud API fake: the 24 h window, content kinds,
rate limits and faults."""

from __future__ import annotations

from typing import Any

import pytest

from switchboard.events.catalog.outbound import OutLocation, OutTemplate, SendMessage
from switchboard.outbound.providers.base import Failure, ProviderError, Scope
from switchboard.outbound.providers.whatsapp import WINDOW_REASON, WhatsAppClient
from switchboard.sandbox import SlidingWindow

from .support import (
    WA_PHONE_ID,
    WA_TOKEN,
    Env,
    account,
    assert_error,
    buttons,
    command,
    keyboard,
    media,
    text,
)

USER = "15551234567"


def client(env: Env) -> WhatsAppClient:
    return WhatsAppClient(env.http, base_url=f"{env.url}/whatsapp", graph_version="v21.0")


def wa(content: Any, to: str = USER, **kwargs: Any) -> SendMessage:
    return command(content, channel="whatsapp", recipient=to, **kwargs)


@pytest.fixture
def number(env: Env) -> None:
    env.box.whatsapp.add_number(WA_PHONE_ID, WA_TOKEN)


@pytest.mark.usefixtures("number")
async def test_outside_the_window_only_templates_pass(env: Env) -> None:
    wa_client = client(env)
    with pytest.raises(ProviderError) as caught:
        await wa_client.send(account("whatsapp"), wa(text("are you there?")))
    assert_error(caught.value, Failure.PERMANENT, "whatsapp_131047")
    assert caught.value.reason == WINDOW_REASON

    template = OutTemplate(
        name="order_update",
        language="en_US",
        components=({"type": "body", "parameters": [{"type": "text", "text": "42"}]},),
    )
    sent = await wa_client.send(account("whatsapp"), wa(template))
    [stored] = env.box.whatsapp.sent_messages(WA_PHONE_ID, to=USER)
    assert stored["id"] == sent.provider_message_id
    assert sent.provider_message_id.startswith("wamid.")
    assert stored["message"]["template"] == {
        "name": "order_update",
        "language": {"code": "en_US"},
        "components": [{"type": "body", "parameters": [{"type": "text", "text": "42"}]}],
    }


@pytest.mark.usefixtures("number")
async def test_content_kinds_arrive_with_their_fields(env: Env) -> None:
    env.box.config.whatsapp.limits.enabled = False
    env.box.whatsapp.add_user(WA_PHONE_ID, USER, "Olena", last_inbound_at=env.clock.time())
    wa_client = client(env)
    shop = account("whatsapp")
    first = await wa_client.send(shop, wa(text("hi https://x.test", preview_url=True)))
    await wa_client.send(shop, wa(text("thanks"), reply_to=first.provider_message_id))
    await wa_client.send(shop, wa(media("photo", url="https://cdn.test/p.jpg", caption="p")))
    await wa_client.send(shop, wa(media("document", file_id="4490709327384033", file_name="r.pdf")))
    await wa_client.send(shop, wa(media("voice", url="https://cdn.test/v.ogg")))
    await wa_client.send(shop, wa(media("sticker", file_id="77")))
    await wa_client.send(shop, wa(OutLocation(latitude=50.45, longitude=30.52)))
    await wa_client.send(shop, wa(text("Confirm?"), keyboard=buttons(3)))
    await wa_client.send(shop, wa(text("Pick"), keyboard=buttons(7)))
    await wa_client.send(
        shop, wa(text("Track"), keyboard=keyboard([("Open", None, "https://t.test")]))
    )
    sent = env.box.whatsapp.sent_messages(WA_PHONE_ID, to=USER)
    bodies = [s["message"] for s in sent]
    assert [s["type"] for s in sent] == [
        "text",
        "text",
        "image",
        "document",
        "audio",
        "sticker",
        "location",
        "interactive",
        "interactive",
        "interactive",
    ]
    assert bodies[0]["text"] == {"body": "hi https://x.test", "preview_url": True}
    assert sent[1]["reply_to"] == first.provider_message_id
    assert bodies[2]["image"] == {"link": "https://cdn.test/p.jpg", "caption": "p"}
    assert bodies[3]["document"] == {"id": "4490709327384033", "filename": "r.pdf"}
    assert bodies[6]["location"] == {"latitude": 50.45, "longitude": 30.52}
    assert [b["interactive"]["type"] for b in bodies[7:]] == ["button", "list", "cta_url"]
    assert len(bodies[7]["interactive"]["action"]["buttons"]) == 3
    assert len(bodies[8]["interactive"]["action"]["sections"][0]["rows"]) == 7


@pytest.mark.usefixtures("number")
async def test_rate_limits_are_classified(env: Env) -> None:
    limits = env.box.config.whatsapp.limits
    limits.throughput = SlidingWindow(limit=2, window=1.0)
    for user in ("15550000001", "15550000002", "15550000003"):
        env.box.whatsapp.add_user(WA_PHONE_ID, user, last_inbound_at=env.clock.time())
    wa_client = client(env)
    shop = account("whatsapp")
    await wa_client.send(shop, wa(text("1"), to="15550000001"))
    with pytest.raises(ProviderError) as caught:
        await wa_client.send(shop, wa(text("again"), to="15550000001"))
    assert_error(
        caught.value,
        Failure.RATE_LIMITED,
        "whatsapp_131056",
        retry_after=6.0,
        scope=Scope.RECIPIENT,
    )
    await wa_client.send(shop, wa(text("2"), to="15550000002"))
    with pytest.raises(ProviderError) as caught:
        await wa_client.send(shop, wa(text("3"), to="15550000003"))
    assert_error(
        caught.value, Failure.RATE_LIMITED, "whatsapp_130429", retry_after=1.0, scope=Scope.ACCOUNT
    )
    env.clock.advance(1.0)
    await wa_client.send(shop, wa(text("3"), to="15550000003"))


@pytest.mark.usefixtures("number")
async def test_faults_and_bad_tokens(env: Env) -> None:
    wa_client = client(env)
    env.box.set_fault("whatsapp", WA_PHONE_ID, error_rate=1.0, error_status=500)
    with pytest.raises(ProviderError) as caught:
        await wa_client.send(account("whatsapp"), wa(text()))
    assert_error(caught.value, Failure.RETRYABLE, "whatsapp_1")
    env.box.clear_faults()
    with pytest.raises(ProviderError) as caught:
        await wa_client.send(account("whatsapp", secrets={"access_token": "wrong"}), wa(text()))
    assert_error(caught.value, Failure.UNAUTHORIZED, "whatsapp_190")


@pytest.mark.usefixtures("number")
async def test_bytes_are_uploaded_to_the_fake_once_and_sent_by_media_id(env: Env) -> None:
    """`POST /{phone_number_id}/media` stores the bytes; the send names the answered id, and
    the same bytes again go by the cached id without a second upload."""
    env.box.whatsapp.add_user(WA_PHONE_ID, USER, last_inbound_at=env.clock.time())
    wa_client = client(env)
    data = b"\xff\xd8jpeg" + bytes(range(256))
    await wa_client.send(account("whatsapp"), wa(media("photo", data=data)))
    env.clock.advance(6.0)  # one message per 6 s to the same user (pair rate limit)
    await wa_client.send(account("whatsapp"), wa(media("photo", data=data)))
    sent = env.box.whatsapp.sent_messages(WA_PHONE_ID)
    ids = {m["message"]["image"]["id"] for m in sent}
    assert len(sent) == 2
    assert len(ids) == 1
    stored = env.box.whatsapp.state.media.get(ids.pop())
    assert stored is not None
    assert stored.data == data
    uploads = env.box.recorder.requests(provider="whatsapp", method="media_upload")
    assert len(uploads) == 1


@pytest.mark.usefixtures("number")
async def test_a_user_known_only_by_bsuid_is_sent_to_by_bsuid(env: Env) -> None:
    """A user who adopted a username may withhold their phone: sends go to the BSUID."""
    bsuid = "US.13491208655302741918"
    template = OutTemplate(name="order_update", language="en_US")
    sent = await client(env).send(account("whatsapp"), wa(template, to=bsuid))
    [stored] = env.box.whatsapp.sent_messages(WA_PHONE_ID, to=bsuid)
    assert stored["id"] == sent.provider_message_id
    assert sent.raw.get("wa_id") is None  # Meta names no phone for such a recipient
    assert sent.chat_id is None  # the conversation is the BSUID, as addressed


@pytest.mark.usefixtures("number")
async def test_a_phone_written_with_a_plus_is_filed_under_the_chat_whatsapp_names(
    env: Env,
) -> None:
    """Meta answers the ``wa_id`` of the number however it was written: the sent message's
    conversation is that chat (where the customer's messages and the read receipts are),
    not "+1 555 123 4567" (a conversation of its own that never showed a reply or a read)."""
    env.box.whatsapp.add_user(WA_PHONE_ID, USER, "Olena", last_inbound_at=env.clock.time())
    sent = await client(env).send(account("whatsapp"), wa(text("hi"), to="+1 555 123 4567"))
    assert sent.chat_id == USER
