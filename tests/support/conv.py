"""Publishing conversation and delivery events as ingest/outbound would, for CRM tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from switchboard.events import Envelope
from switchboard.events.catalog.common import Channel, Chat, Sender
from switchboard.events.catalog.conv import (
    MessageDeleted,
    MessageEdited,
    MessageReceived,
    MessageSent,
    ProviderIds,
    TextContent,
)
from switchboard.runtime import pii
from switchboard.runtime.bus import Bus

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def received(
    channel: Channel,
    account: str,
    sender: str,
    text: str,
    n: int,
    *,
    phone: str | None = None,
    name: str | None = "Ada",
) -> MessageReceived:
    return MessageReceived(
        channel=channel,
        account=account,
        chat=Chat(id=sender),
        content=TextContent(text=text),
        sender=Sender(id=sender, display_name=name, phone=phone),
        provider=ProviderIds(message_id=str(n)),
        sent_at=T0 + timedelta(seconds=n),
        received_at=T0 + timedelta(seconds=n),
    )


def received_envelope(n: int, workspace: str, time: datetime = T0) -> Envelope:
    """The envelope of the ``n``th received message of ``workspace`` (what caused a
    resolution: its id is the causation id of what the CRM appends)."""
    return Envelope(
        id=f"conv-{workspace}-{n}",
        type="switchboard.conv.message_received.v1",
        source="test",
        time=time,
        workspace_id=workspace,
    )


# The fields by which an edit or a deletion names the received message it is about.
_NAMING = ("channel", "account", "chat", "provider", "received_at")


def _of(msg: MessageReceived) -> dict[str, Any]:
    return {name: getattr(msg, name) for name in _NAMING}


def edited(msg: MessageReceived, text: str, after: int) -> MessageEdited:
    return MessageEdited(
        **_of(msg),
        sender=msg.sender,
        content=TextContent(text=text),
        edited_at=msg.sent_at + timedelta(seconds=after),
    )


def deleted(msg: MessageReceived) -> MessageDeleted:
    return MessageDeleted(
        **_of(msg),
        message_ids=(msg.provider.message_id,),
        deleted_at=msg.sent_at + timedelta(minutes=5),
    )


def sent(
    channel: Channel, account: str, chat: str, message_id: str, provider_id: str, text: str, n: int
) -> MessageSent:
    return MessageSent(
        channel=channel,
        account=account,
        chat=Chat(id=chat),
        message_id=message_id,
        provider_message_id=provider_id,
        text=text,
        content_kind="text",
        sent_at=T0 + timedelta(seconds=n),
    )


async def publish_sealed(
    nats_url: str, models: list[Any], workspace: str = "demo", *, unsealed: tuple[str, ...] = ()
) -> None:
    """Publish as ingest and outbound do (``pii.publish_sealed``), but for the channels in
    ``unsealed`` (as events written before sealing were)."""
    bus = await Bus.connect(nats_url, name="test-publisher")
    try:
        await bus.provision()
        keys = pii.PiiKeys(await bus.kv(pii.BUCKET))
        for model in models:
            if getattr(model, "channel", None) in unsealed:
                await bus.publish(model, workspace_id=workspace)
            else:
                await pii.publish_sealed(bus, model, workspace=workspace, keys=keys)
    finally:
        await bus.close()


async def publish_all(nats_url: str, models: list[Any], workspace: str = "demo") -> None:
    bus = await Bus.connect(nats_url, name="test-publisher")
    try:
        await bus.provision()
        for model in models:
            await bus.publish(model, workspace_id=workspace)
    finally:
        await bus.close()
