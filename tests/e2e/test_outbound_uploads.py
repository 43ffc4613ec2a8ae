"""Files uploaded to outbound (``POST /v1/uploads``) and sent by ``upload_id``, against the
sandbox with real NATS: the bytes reach the provider identical without travelling in the
stream, the shared file-id cache sends the same file by id the second time, and an
oversize file is a 413 before any provider call (at upload with a channel and kind, or at
the send); another workspace's upload does not exist."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.support.outbound import OutboundStack, outbound_stack, sandbox_account, telegram_shop
from tests.support.stack import API_KEY, OTHER_KEY

from switchboard.events.catalog.common import Channel
from switchboard.events.catalog.outbound import MediaSource, OutMedia, OutText, SendMessage
from switchboard.outbound.media_limits import MB, largest_limit
from switchboard.runtime.accounts import Account
from switchboard.runtime.testing import eventually
from switchboard.sandbox import Sandbox, SandboxConfig

pytestmark = pytest.mark.e2e
TOKEN = "300000091:uploads-a"
WA_NUMBER = "100200391"
WA_TOKEN = "wa-uploads-token"
WA_USER = "15550007777"
VB_TOKEN = "4453b6ac1234abcd-uploads-viber"
VB_USER = "vb-uploads-user=="
VB_USER2 = "vb-uploads-user-2=="
CHAT = 4301
A = {"Authorization": f"Bearer {API_KEY}"}
OTHER = {"Authorization": f"Bearer {OTHER_KEY}"}
PHOTO = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x01\x00\x00\x00\x00\xc0\x08\x02\x00\x00\x00"
    + bytes(range(256)) * 2000  # ~500 KB: within Telegram's photo limit, over half a bus message
)


class Env(OutboundStack):
    def provider_calls(self) -> list[Any]:
        # Sends and uploads only: the periodic health probes (getMe, the number's info)
        # cost no send budget.
        probes = ("getMe", "phone_number", "get_account_info")
        return [r for r in self.box.recorder.requests() if r.method not in probes]

    async def upload(self, data: bytes, headers: dict[str, str] = A, **form: str) -> httpx.Response:
        return await self.http.post(
            f"{self.url}/v1/uploads",
            files={"file": ("bike.png", data, "image/png")},
            data=form,
            headers=headers,
        )

    async def send(self, message_id: str, upload_id: str, headers: dict[str, str] = A) -> Any:
        body = {
            "message_id": message_id,
            "channel": "telegram",
            "account": "shop",
            "recipient": str(CHAT),
            "content": {"kind": "photo", "source": {"upload_id": upload_id}, "caption": "yours"},
        }
        return await self.http.post(f"{self.url}/v1/messages", json=body, headers=headers)

    async def status(self, message_id: str, wanted: str) -> dict[str, Any]:
        async def probe() -> dict[str, Any] | None:
            r = await self.http.get(f"{self.url}/v1/messages/{message_id}", headers=A)
            found: dict[str, Any] = r.json()
            return found if r.status_code == 200 and found["status"] == wanted else None

        return await eventually(probe, timeout=30, message=f"{message_id} {wanted}")


@pytest.fixture
async def env(nats_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> AsyncIterator[Env]:
    box = Sandbox(SandboxConfig())
    box.telegram.add_bot(TOKEN, "uploads_bot")
    box.telegram.add_chat(TOKEN, CHAT, "private")
    box.whatsapp.add_number(WA_NUMBER, WA_TOKEN)
    box.whatsapp.add_user(WA_NUMBER, WA_USER, "Olena", last_inbound_at=box.clock.time())
    box.viber.add_bot(VB_TOKEN, "Uploads", uri="uploads")
    box.viber.add_user("uploads", VB_USER, "Oksana")
    box.viber.add_user("uploads", VB_USER2, "Taras")

    def accounts(sandbox: str) -> list[Account]:
        whatsapp = {"access_token": WA_TOKEN}
        return [
            telegram_shop(sandbox, TOKEN),
            sandbox_account(
                sandbox, Channel.WHATSAPP, WA_NUMBER, whatsapp, phone_number_id=WA_NUMBER
            ),
            sandbox_account(sandbox, Channel.VIBER, "vb", {"token": VB_TOKEN}),
        ]

    settings: dict[str, Any] = {
        "SWITCHBOARD_OUTBOUND_MAX_BODY_BYTES": 64 * MB,
        "SWITCHBOARD_OBJECTS__LOCAL_DIR": tmp_path / "objects",
        "SWITCHBOARD_OUTBOUND_URL_PROBE_PRIVATE": "true",  # the sandbox
    }
    async with outbound_stack(box, nats_url, monkeypatch, accounts, **settings) as stack:
        yield Env(**vars(stack))


async def test_an_uploaded_photo_reaches_the_provider_identical_then_goes_by_file_id(
    env: Env,
) -> None:
    r = await env.upload(PHOTO, channel="telegram", kind="photo")
    assert r.status_code == 201, r.text
    upload = r.json()
    assert upload["size"] == len(PHOTO)
    assert upload["upload_id"].startswith("up_")

    r = await env.send("up-1", upload["upload_id"])
    assert r.status_code == 202, r.text
    await env.status("up-1", "sent")
    first = [c for c in env.provider_calls() if c.method == "sendPhoto"]
    assert len(first) == 1
    assert str(first[0].params["photo"]).startswith("<upload")  # the bytes were uploaded

    # the photo the bot sent holds exactly the uploaded bytes
    sent = env.box.telegram.messages(TOKEN, CHAT)
    largest = max(sent[-1]["photo"], key=lambda p: p["width"])
    api = f"{env.sandbox}/telegram/bot{TOKEN}"
    path = (await env.http.post(f"{api}/getFile", json={"file_id": largest["file_id"]})).json()
    got = await env.http.get(
        f"{env.sandbox}/telegram/file/bot{TOKEN}/{path['result']['file_path']}"
    )
    assert got.content == PHOTO

    # the same upload again: sent by the file id Telegram gave (shared KV cache), no upload
    r = await env.send("up-2", upload["upload_id"])
    assert r.status_code == 202, r.text
    await env.status("up-2", "sent")
    second = [c for c in env.provider_calls() if c.method == "sendPhoto"][1]
    assert second.params["photo"] == largest["file_id"]

    # another workspace cannot name this upload
    r = await env.send("up-3", upload["upload_id"], headers=OTHER)
    assert r.status_code == 404, r.text


async def test_oversize_uploads_are_413_with_no_provider_call(env: Env) -> None:
    big = b"\0" * (10 * MB + 1)
    r = await env.upload(big, channel="telegram", kind="photo")
    assert r.status_code == 413, r.text[:300]
    assert r.json()["field"] == "file"
    assert str(10 * MB) in r.text

    # without a channel the file is kept (a 10 MB document is fine on Telegram) ...
    r = await env.upload(big)
    assert r.status_code == 201, r.text[:300]
    # ... but as a Telegram photo it is over the limit: 413 before anything is queued
    r = await env.send("too-big", r.json()["upload_id"])
    assert r.status_code == 413, r.text[:300]
    assert r.json()["field"] == "content.source.upload_id"
    assert (await env.bus.js.stream_info("OUTBOUND")).state.messages == 0
    assert env.provider_calls() == []
    assert largest_limit() == 100 * MB  # a file over WhatsApp's documents fits nowhere


async def test_an_unknown_upload_is_404_and_a_bad_kind_is_422(env: Env) -> None:
    r = await env.send("nope", "up_" + "0" * 40)
    assert r.status_code == 404, r.text
    r = await env.upload(PHOTO, channel="telegram", kind="hologram")
    assert r.status_code == 422, r.text
    # Viber fetches media from a URL only: an upload for it could only fail at every send
    r = await env.upload(PHOTO, channel="viber", kind="photo")
    assert (r.status_code, r.json()["field"]) == (422, "channel"), r.text
    r = await env.send("bad-id", "not-an-upload")
    assert r.status_code == 422, r.text


async def test_an_uploaded_image_goes_to_whatsapp_as_a_media_upload_once(env: Env) -> None:
    r = await env.upload(PHOTO, channel="whatsapp", kind="photo")
    assert r.status_code == 201, r.text
    upload_id = r.json()["upload_id"]
    for n in (1, 2):
        body = {
            "message_id": f"wa-up-{n}",
            "channel": "whatsapp",
            "account": WA_NUMBER,
            "recipient": WA_USER,
            "content": {"kind": "photo", "source": {"upload_id": upload_id}},
        }
        r = await env.http.post(f"{env.url}/v1/messages", json=body, headers=A)
        assert r.status_code == 202, r.text
        await env.status(f"wa-up-{n}", "sent")
    sent = env.box.whatsapp.sent_messages(WA_NUMBER, WA_USER)
    ids = {m["message"]["image"]["id"] for m in sent}
    assert len(ids) == 1  # uploaded once to Meta, the media id reused (shared cache)
    assert [c.method for c in env.provider_calls()].count("media_upload") == 1
    # what WhatsApp holds under that id is exactly the uploaded file
    graph = f"{env.sandbox}/whatsapp/v26.0"
    bearer = {"Authorization": f"Bearer {WA_TOKEN}"}
    info = (await env.http.get(f"{graph}/{ids.pop()}", headers=bearer)).json()
    assert info["file_size"] == len(PHOTO)
    assert (await env.http.get(info["url"], headers=bearer)).content == PHOTO


async def test_a_photo_url_over_telegrams_5_mb_is_413_before_any_call(env: Env) -> None:
    # a 6 MB file on a web server (the sandbox's Viber media CDN serves it with its length)
    big = env.box.viber.state.add_media(b"\xff" * (6 * MB), "huge.jpg", "image/jpeg")
    small = env.box.viber.state.add_media(b"\xff" * 1000, "small.jpg", "image/jpeg")
    for message_id, media, kind, status in (
        ("url-big", big, "photo", 413),
        ("url-doc", big, "document", 202),  # 20 MB for other files by URL
        ("url-small", small, "photo", 202),
    ):
        body = {
            "message_id": message_id,
            "channel": "telegram",
            "account": "shop",
            "recipient": str(CHAT),
            "content": {"kind": kind, "source": {"url": f"{env.sandbox}/viber{media.path}"}},
        }
        r = await env.http.post(f"{env.url}/v1/messages", json=body, headers=A)
        assert r.status_code == status, r.text
        if status == 413:
            assert r.json()["field"] == "content.source.url"
            assert str(5 * MB) in r.text
            assert not [c for c in env.provider_calls() if c.provider == "telegram"]
    await env.status("url-small", "sent")
    await env.status("url-doc", "sent")
    sends = [c for c in env.provider_calls() if c.method in ("sendPhoto", "sendDocument")]
    assert len(sends) == 2


async def test_an_upload_that_is_not_multipart_is_422_naming_the_body(env: Env) -> None:
    r = await env.http.post(f"{env.url}/v1/uploads", json={"file": "x"}, headers=A)
    assert r.status_code == 422, r.text
    assert [e["path"] for e in r.json()["errors"]] == ["body"]


async def test_an_empty_file_or_two_files_in_one_upload_are_422_naming_the_file(env: Env) -> None:
    """An empty file (which no provider sends) was stored and its send failed at the
    provider; of two `file` parts the last was kept without a word. Each is now a 422."""
    empty = await env.upload(b"")
    assert (empty.status_code, empty.json()["field"]) == (422, "file"), empty.text
    assert "empty" in empty.json()["detail"]
    two = await env.http.post(
        f"{env.url}/v1/uploads",
        files=[("file", ("a.png", b"a" * 10, "image/png")), ("file", ("b.png", b"b" * 10,
                                                                     "image/png"))],
        headers=A,
    )  # fmt: skip
    assert (two.status_code, two.json()["field"]) == (422, "file"), two.text
    assert "one file" in two.json()["detail"]


async def test_on_the_bus_an_unknown_or_oversize_upload_fails_without_a_provider_call(
    env: Env,
) -> None:
    big = (await env.upload(b"\0" * (10 * MB + 1))).json()["upload_id"]
    for message_id, upload_id in (("bus-ghost", "up_" + "f" * 40), ("bus-big", big)):
        await env.bus.publish(
            SendMessage(
                message_id=message_id,
                channel=Channel.TELEGRAM,
                account="shop",
                recipient=str(CHAT),
                content=OutMedia(kind="photo", source=MediaSource(upload_id=upload_id)),
            ),
            workspace_id="demo",
        )
    ghost = await env.status("bus-ghost", "failed")
    assert ghost["error_code"] == "unknown_upload"
    oversize = await env.status("bus-big", "failed")
    assert oversize["error_code"] == "too_large"
    assert not [c for c in env.provider_calls() if c.provider == "telegram"]


async def test_a_text_over_telegrams_4096_characters_is_422_before_any_call(env: Env) -> None:
    """Telegram counts a text after entities parsing: 5000 characters of HTML that show
    4000 are sent; 4097 shown are refused naming the field, over HTTP and on the bus."""
    shown = "x" * 4000
    tagged = "".join(f"<b>{c}</b>" for c in shown[:143]) + shown[143:]  # 5001 raw, 4000 shown
    for message_id, content, status in (
        ("long-plain", {"kind": "text", "text": "x" * 4097}, 422),
        ("long-html", {"kind": "text", "text": tagged, "parse_mode": "HTML"}, 202),
        ("long-caption", {"kind": "photo", "source": {"file_id": "AgAD"}, "caption": "c" * 1025},
         422),
    ):  # fmt: skip
        body = {"message_id": message_id, "channel": "telegram", "account": "shop",
                "recipient": str(CHAT), "content": content}  # fmt: skip
        r = await env.http.post(f"{env.url}/v1/messages", json=body, headers=A)
        assert r.status_code == status, r.text
        if status == 422:
            assert r.json()["code"] == "too_long"
            assert r.json()["field"] in ("content.text", "content.caption")
    await env.status("long-html", "sent")
    await env.bus.publish(
        SendMessage(message_id="bus-long", channel=Channel.TELEGRAM, account="shop",
                    recipient=str(CHAT), content=OutText(text="y" * 4097)),
        workspace_id="demo",
    )  # fmt: skip
    refused = await env.status("bus-long", "failed")
    assert refused["error_code"] == "too_long"
    sends = [c.method for c in env.provider_calls() if c.provider == "telegram"]
    assert sends == ["sendMessage"]  # the HTML one only


async def test_content_the_channel_has_no_form_for_is_422_before_anything_is_queued(
    env: Env,
) -> None:
    """A template to a Telegram bot, an album with a keyboard, a reply to no message id:
    the client refuses each without a call, and the API asked it only after answering 202
    (the caller learnt it from a delivery.failed). Now a 422 naming the field; nothing is
    recorded under the id."""
    photo = {"kind": "photo", "source": {"file_id": "AgAD"}}
    for message_id, extra, field in (
        ("tpl-1", {"content": {"kind": "template", "name": "welcome", "language": "en"}},
         "content.kind"),
        ("album-kb", {"content": {"kind": "media_group", "items": [photo, photo]},
                      "keyboard": {"type": "inline", "rows": [[{"text": "ok",
                                                                "callback_data": "ok"}]]}},
         "keyboard"),
        ("reply-abc", {"content": {"kind": "text", "text": "hi"}, "reply_to": "abc"},
         "reply_to"),
        # HTML Telegram cannot parse: "can't parse entities" after the 202, before
        ("html-open", {"content": {"kind": "text", "text": "<b>Sale", "parse_mode": "HTML"}},
         "content.text"),
        ("html-br", {"content": {"kind": "text", "text": "a<br>b", "parse_mode": "HTML"}},
         "content.text"),
    ):  # fmt: skip
        body = {"message_id": message_id, "channel": "telegram", "account": "shop",
                "recipient": str(CHAT), **extra}  # fmt: skip
        r = await env.http.post(f"{env.url}/v1/messages", json=body, headers=A)
        assert r.status_code == 422, r.text
        assert (r.json()["code"], r.json()["field"]) == ("unsupported_content", field), r.text
        known = await env.http.get(f"{env.url}/v1/messages/{message_id}", headers=A)
        assert known.status_code == 404, known.text
    assert not [c for c in env.provider_calls() if c.provider == "telegram"]


async def test_a_viber_video_or_document_by_url_goes_with_the_size_asked_of_its_url(
    env: Env,
) -> None:
    """Viber's video and file messages need the size in bytes (and a file its name), which a
    URL does not carry: they were refused as unsupported. The route asks the URL for the
    size, the command carries it, and Viber gets a `video` and a `file`; a URL that tells no
    size, or a caption on a file (Viber's file message has none), is a 422 naming the field."""
    manual = env.box.viber.state.add_media(b"%PDF" * 2500, "manual.pdf", "application/pdf")
    clip = env.box.viber.state.add_media(b"\x00" * 40_000, "clip.mp4", "video/mp4")

    def body(
        message_id: str, kind: str, url: str, to: str = VB_USER, **extra: Any
    ) -> dict[str, Any]:
        content = {"kind": kind, "source": {"url": url}, **extra}
        return {"message_id": message_id, "channel": "viber", "account": "vb",
                "recipient": to, "content": content}  # fmt: skip

    sends = (
        body("vb-doc", "document", f"{env.sandbox}/viber{manual.path}"),
        body("vb-video", "video", f"{env.sandbox}/viber{clip.path}", VB_USER2,
             caption="how it works"),
    )  # fmt: skip
    for sent in sends:
        r = await env.http.post(f"{env.url}/v1/messages", json=sent, headers=A)
        assert r.status_code == 202, r.text
    await env.status("vb-doc", "sent")
    await env.status("vb-video", "sent")
    (file,) = (m["message"] for m in env.box.viber.sent_messages("uploads", VB_USER))
    (video,) = (m["message"] for m in env.box.viber.sent_messages("uploads", VB_USER2))
    assert (file["type"], file["size"], file["file_name"]) == ("file", 10_000, "manual.pdf")
    assert (video["type"], video["size"], video["text"]) == ("video", 40_000, "how it works")
    # the same request again is the same request, though its command carries the size
    r = await env.http.post(f"{env.url}/v1/messages", json=sends[0], headers=A)
    assert r.status_code == 202, r.text

    for _, sent, field in (
        ("vb-nosize", body("vb-nosize", "document", f"{env.sandbox}/viber/nowhere/x.pdf"),
         "content.source.size"),
        ("vb-caption", body("vb-caption", "document", f"{env.sandbox}/viber{manual.path}",
                            caption="read me"), "content.caption"),
    ):  # fmt: skip
        r = await env.http.post(f"{env.url}/v1/messages", json=sent, headers=A)
        assert r.status_code == 422, r.text
        assert (r.json()["code"], r.json()["field"]) == ("unsupported_content", field), r.text
    assert len(env.box.viber.sent_messages("uploads")) == 2
