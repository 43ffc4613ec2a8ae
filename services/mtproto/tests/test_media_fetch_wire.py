"""The CRM's file downloads through a user session (``mtproto.fetch_media``): the gateway
running the real Telethon adapter against the wire-level fake reads the message again,
downloads its file with upload.getFile into the object store, whole or not at all, and
answers on the caller's inbox."""

from __future__ import annotations

import base64
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from switchboard.events.catalog.mtproto import FetchMedia, MediaFetched
from switchboard.mtproto.media_fetch import MediaDownload, store, too_large
from switchboard.runtime.bus import Bus
from switchboard.runtime.holder_call import ask_holder
from switchboard.runtime.objectstore import LocalObjectStore, ObjectStoreSettings

from .mtproto_support import world


def _fetch(chat: int, message_id: int, key: str, max_bytes: int = 10_000_000) -> FetchMedia:
    return FetchMedia(
        session_id="agent",
        chat_id=str(chat),
        message_id=message_id,
        object_key=key,
        max_bytes=max_bytes,
        deadline=datetime.now(UTC) + timedelta(seconds=60),
    )


async def test_a_customers_photo_is_stored_whole_and_named_in_the_answer(
    nats_url: str, postgres_url: str, tmp_path: Path
) -> None:
    objects = LocalObjectStore(tmp_path)
    async with world(nats_url, postgres_url) as w:
        agent, _ = w.fake.add_user("15550303030", first_name="Agent")
        customer, _ = w.fake.add_user("15550303031", first_name="Cus", username="cus_media")
        settings = ObjectStoreSettings(local_dir=str(tmp_path))
        base = await w.gateway(adapter="telethon", instance_id="media", objects=settings)
        await w.connect_session(base, agent, "agent")
        photo = os.urandom(700_000)  # several getFile windows
        sent = w.fake.post(
            agent,
            "my receipt",
            sender=customer,
            media={"kind": "photo", "data": base64.b64encode(photo).decode()},
        )
        message_id = int(sent["ids"][str(agent.id)])
        bus = await Bus.connect(nats_url, name="test-media")
        try:

            async def ask(cmd: FetchMedia, workspace: str = "demo") -> MediaFetched:
                raw = await ask_holder(bus, cmd, workspace, timeout=30)
                return MediaFetched.model_validate_json(raw)

            stored = await ask(_fetch(customer.id, message_id, "inbound/t/photo/0"))
            assert (stored.status, stored.object_key, stored.size) == (
                "stored",
                "inbound/t/photo/0",
                len(photo),
            )
            kept = await objects.get("inbound/t/photo/0")
            assert kept is not None
            assert kept.data == photo
            small = await ask(_fetch(customer.id, message_id, "inbound/t/small/0", 1000))
            assert (small.status, small.size) == ("too_large", len(photo))
            assert await objects.get("inbound/t/small/0") is None
            missing = await ask(_fetch(customer.id, message_id + 50, "inbound/t/none/0"))
            assert missing.status == "not_found"
            foreign = await ask(_fetch(customer.id, message_id, "inbound/t/other/0"), "other")
            assert (foreign.status, foreign.error_code) == ("unusable", "unknown_account")
            assert await objects.get("inbound/t/other/0") is None
        finally:
            await bus.close()


async def _chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def test_a_file_of_unknown_size_over_the_limit_leaves_nothing(tmp_path: Path) -> None:
    objects = LocalObjectStore(tmp_path)
    download = MediaDownload(
        size=None, mime_type="image/jpeg", chunks=_chunks(b"a" * 600, b"b" * 600)
    )
    answer = await store(objects, "inbound/x/0", download, limit=1000)
    assert answer.status == "too_large"
    assert await objects.get("inbound/x/0") is None
    whole = MediaDownload(size=None, mime_type="image/jpeg", chunks=_chunks(b"a" * 600, b"b"))
    answer = await store(objects, "inbound/y/0", whole, limit=1000)
    assert (answer.status, answer.size) == ("stored", 601)
    kept = await objects.get("inbound/y/0")
    assert kept is not None
    assert (kept.data, kept.content_type) == (b"a" * 600 + b"b", "image/jpeg")


def test_a_declared_size_over_the_limit_is_refused_before_any_download() -> None:
    refused = too_large(2001, 2000)
    assert refused is not None
    assert (refused.status, refused.size, refused.error_code) == (
        "too_large",
        2001,
        "file_too_large",
    )
    assert too_large(2000, 2000) is None
    assert too_large(None, 2000) is None
