"""Files on the wire-level fake: media keeps its bytes (seeded by the control API or
uploaded by a client) and a stock Telethon client downloads them with upload.getFile."""

from __future__ import annotations

import base64
import os

import httpx
import pytest
from telethon import errors, events, functions, types

from switchboard.sandbox.mtproto.errors import RpcError
from switchboard.sandbox.mtproto.files import check_window

from .mtproto_wire_support import WireEnv, collecting, wire

__all__ = ["wire"]


async def test_a_seeded_photo_downloads_byte_identical_in_chunks(wire: WireEnv) -> None:
    mtproto = wire.sandbox.mtproto
    customer, _ = mtproto.add_user("15550006666", first_name="Customer", username="cust_wire")
    agent, _ = mtproto.add_user("15550007777", first_name="Agent")
    content = os.urandom(300_000)  # several of Telethon's getFile windows
    sent = mtproto.post(
        agent,
        "look",
        sender=customer,
        media={"kind": "photo", "data": base64.b64encode(content).decode()},
    )
    assert sent["media"]["file_size"] == len(content)
    assert "data" not in sent["media"]
    client = await wire.signed_in(agent)
    [message] = await client.get_messages("cust_wire", limit=1)
    assert isinstance(message.media, types.MessageMediaPhoto)
    assert message.media.photo.dc_id == wire.descriptor["dc_id"]
    downloaded = await client.download_media(message, file=bytes)
    assert downloaded == content
    assert mtproto.stats()["calls"]["upload.getFile"] >= 3


async def test_an_uploaded_document_reaches_the_recipient_whole(wire: WireEnv) -> None:
    mtproto = wire.sandbox.mtproto
    alice, bob, a, b = await wire.chat()
    content = os.urandom(700_000)
    async with collecting(b, events.NewMessage(incoming=True)) as (inbox, arrived):
        await a.send_file("bob_wire", content, force_document=True, caption="report")
        await arrived(1)
    assert isinstance(inbox[0].media, types.MessageMediaDocument)
    assert await b.download_media(inbox[0].message, file=bytes) == content
    [stored] = mtproto.messages(alice, user=bob)
    assert stored["media"]["file_size"] == len(content)
    assert mtproto.world.files.get(stored["media"]["file_id"]) == content


async def test_get_file_refuses_bad_locations_references_and_windows(wire: WireEnv) -> None:
    mtproto = wire.sandbox.mtproto
    customer, _ = mtproto.add_user("15550006666", username="cust_wire")
    agent, _ = mtproto.add_user("15550007777")
    data = base64.b64encode(b"x" * 5000).decode()
    mtproto.post(agent, "", sender=customer, media={"kind": "document", "data": data})
    client = await wire.signed_in(agent)
    [message] = await client.get_messages("cust_wire", limit=1)
    document = message.media.document

    def location(**changes: object) -> types.InputDocumentFileLocation:
        fields = {
            "id": document.id,
            "access_hash": document.access_hash,
            "file_reference": document.file_reference,
            "thumb_size": "",
            **changes,
        }
        return types.InputDocumentFileLocation(**fields)  # type: ignore[arg-type]

    part = await client(functions.upload.GetFileRequest(location(), offset=4096, limit=4096))
    assert part.bytes == b"x" * (5000 - 4096)
    with pytest.raises(errors.FileReferenceExpiredError):
        await client(functions.upload.GetFileRequest(location(file_reference=b"old"), 0, 4096))
    with pytest.raises(errors.LocationInvalidError):
        await client(functions.upload.GetFileRequest(location(id=document.id + 1), 0, 4096))
    with pytest.raises(errors.LimitInvalidError):
        await client(functions.upload.GetFileRequest(location(), offset=0, limit=1000))


def test_get_file_windows_follow_telegrams_rules() -> None:
    check_window(0, 1024 * 1024)
    check_window(512 * 1024, 512 * 1024)
    for offset, limit, name in [
        (0, 4095, "LIMIT_INVALID"),
        (0, 3 * 4096, "LIMIT_INVALID"),  # 1 MB must be divisible by the limit
        (0, 2 * 1024 * 1024, "LIMIT_INVALID"),
        (1024 * 1024 - 4096, 8192, "LIMIT_INVALID"),  # crosses a 1 MB boundary
        (100, 4096, "OFFSET_INVALID"),
    ]:
        with pytest.raises(RpcError) as refused:
            check_window(offset, limit)
        assert refused.value.name == name


async def test_control_api_serves_a_files_bytes_and_refuses_bad_base64(wire: WireEnv) -> None:
    transport = httpx.ASGITransport(app=wire.sandbox.app())
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as http:
        ids = []
        for phone in ("15550006666", "15550007777"):
            created = await http.post("/_sandbox/mtproto/users", json={"phone": phone})
            assert created.status_code == 201, created.text
            ids.append(created.json()["user"]["id"])
        body = {"peer": ids[1], "from": ids[0]}
        bad = await http.post(
            "/_sandbox/mtproto/messages", json={**body, "media": {"kind": "photo", "data": "@@"}}
        )
        assert bad.status_code == 400
        assert "media.data" in bad.json()["error"]
        media = {"kind": "photo", "data": base64.b64encode(b"\x89PNG tiny").decode()}
        posted = await http.post("/_sandbox/mtproto/messages", json={**body, "media": media})
        assert posted.status_code == 201, posted.text
        file_id = posted.json()["media"]["file_id"]
        served = await http.get(f"/_sandbox/mtproto/files/{file_id}")
        assert (served.status_code, served.content) == (200, b"\x89PNG tiny")
        assert (await http.get("/_sandbox/mtproto/files/file:none")).status_code == 404
