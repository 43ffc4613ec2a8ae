"""Files customers sent, downloaded through the CRM API byte-identical to what the provider
(the sandbox) holds, on every channel: Telegram (getFile + file download), WhatsApp (media
object + authorized URL), Viber (media URL) and Telegram user accounts (the gateway holding
the session downloads with upload.getFile into the object store). The message content is
what ingest's own normalizers make of the provider payload. Another workspace's message is a 404; an
oversize file is a 413 and a provider failure a 502; a second download is served from the
object store without a provider call. The bytes stream through as they arrive: a body over
the limit that never declared its size is cut (the answer aborts, nothing is kept), and an
account whose provider keeps failing is not called while its breaker is open (503)."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route
from tests.support.conv import publish_all
from tests.support.crm import AUTH
from tests.support.moto import moto_server, s3_env
from tests.support.stack import OTHER_KEY, keyring, service_env

from switchboard.crm.app import create_app
from switchboard.crm.attachments import object_key
from switchboard.crm.settings import CrmSettings
from switchboard.events.catalog.common import Channel, Chat, MediaFile, Sender
from switchboard.events.catalog.conv import Content, MessageReceived, PhotoContent, ProviderIds
from switchboard.ingest.normalize import telegram as tg_norm
from switchboard.ingest.normalize import viber as viber_norm
from switchboard.ingest.normalize import whatsapp as wa_norm
from switchboard.mtproto.app import create_app as create_gateway
from switchboard.mtproto.settings import MtprotoSettings
from switchboard.runtime.accounts import Account, AccountStore
from switchboard.runtime.bus import Bus
from switchboard.runtime.crypto import Keyring
from switchboard.runtime.objectstore import ObjectStoreSettings, S3ObjectStore, open_store
from switchboard.runtime.settings import load_settings
from switchboard.runtime.testing import eventually, serve_app
from switchboard.sandbox import Sandbox, SandboxConfig
from switchboard.sandbox.testing import serve

pytestmark = pytest.mark.e2e
TG_TOKEN = "300000077:media-in"
WA_NUMBER = "100200377"
WA_TOKEN = "wa-media-token"
VIBER_TOKEN = "viber-media-token-0001"
OPERATOR_TOKEN = "crm-media-operator"
MT_KEY = "mt1:" + Keyring.generate_key()
MT_API_KEY = "mtproto-media-demo-key"
# A real PNG header (the sandbox reads its size), then bytes of every value.
PHOTO = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x02\x80\x00\x00\x01\xe0\x08\x02\x00\x00\x00"
    + bytes(range(256)) * 300
)


@dataclass
class Env:
    box: Sandbox
    sandbox: str
    crm: str
    http: httpx.AsyncClient
    nats_url: str
    objects: Path

    async def control(self, path: str, body: dict[str, Any]) -> Any:
        r = await self.http.post(f"{self.sandbox}/_sandbox{path}", json=body)
        assert r.status_code == 201, r.text
        return r.json()

    async def telegram_photo(self) -> Any:
        """PHOTO held by the sandbox bot as a Telegram photo: its sizes, as an update has them."""
        held = await self.control(
            "/telegram/bots/media_in_bot/files",
            {"kind": "photo", "content_base64": base64.b64encode(PHOTO).decode()},
        )
        return held["photo"]

    def provider_calls(self, provider: str) -> list[Any]:
        return [r for r in self.box.recorder.requests() if r.provider == provider]


@asynccontextmanager
async def media_env(
    nats_url: str,
    postgres_url: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    objects: dict[str, str],
) -> AsyncIterator[Env]:
    box = Sandbox(SandboxConfig())
    box.telegram.add_bot(TG_TOKEN, "media_in_bot")
    box.whatsapp.add_number(WA_NUMBER, WA_TOKEN)
    box.viber.add_bot(VIBER_TOKEN, "Media Shop")
    async with serve(box.app()) as sandbox, AsyncExitStack() as stack:
        for key, value in service_env(nats_url, postgres_url).items():
            monkeypatch.setenv(key, value)
        for key, value in objects.items():
            monkeypatch.setenv(key, value)
        # Viber's media URLs name the local sandbox: not public (a deployment refuses them)
        monkeypatch.setenv("SWITCHBOARD_CRM_MEDIA_PRIVATE_URLS", "true")
        bus = await Bus.connect(nats_url, name="test")
        stack.push_async_callback(bus.close)
        await bus.provision()
        store = AccountStore(await bus.kv("accounts"), keyring())
        for channel, account_id, settings, secrets in (
            (Channel.TELEGRAM, "shop", {}, {"token": TG_TOKEN}),
            (
                Channel.WHATSAPP,
                WA_NUMBER,
                {"phone_number_id": WA_NUMBER},
                {"access_token": WA_TOKEN},
            ),
            (Channel.VIBER, "mediashop", {}, {"auth_token": VIBER_TOKEN}),
        ):
            base = f"{sandbox}/{channel.value}"
            await store.put(
                Account(
                    channel=channel,
                    id=account_id,
                    workspace_id="demo",
                    settings={"api_base_url": base, **settings},
                    secrets=secrets,
                )
            )
        crm = await stack.enter_async_context(serve_app(create_app(load_settings(CrmSettings))))
        http = await stack.enter_async_context(httpx.AsyncClient(timeout=30))
        yield Env(box, sandbox, crm, http, nats_url, tmp_path / "objects")


@pytest.fixture
async def env(
    nats_url: str, postgres_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> AsyncIterator[Env]:
    local = {"SWITCHBOARD_OBJECTS__LOCAL_DIR": str(tmp_path / "objects")}
    async with media_env(nats_url, postgres_url, monkeypatch, tmp_path, local) as env:
        yield env


def message(channel: Channel, account: str, n: int, content: Content) -> MessageReceived:
    at = datetime(2026, 3, 1, 12, 0, n, tzinfo=UTC)
    return MessageReceived(
        channel=channel,
        account=account,
        chat=Chat(id=f"u{n}"),
        content=content,
        sender=Sender(id=f"u{n}", display_name="Ada"),
        provider=ProviderIds(message_id=str(n)),
        sent_at=at,
        received_at=at,
    )


async def message_id(env: Env, channel: str) -> str:
    """The CRM's id of the one message received on ``channel`` (once projected)."""

    async def probe() -> str | None:
        r = await env.http.get(
            f"{env.crm}/v1/conversations", headers=AUTH, params={"channel": channel}
        )
        items = r.json()["items"] if r.status_code == 200 else []
        if not items:
            return None
        r = await env.http.get(
            f"{env.crm}/v1/conversations/{items[0]['id']}/messages", headers=AUTH
        )
        found = r.json()["items"] if r.status_code == 200 else []
        return str(found[0]["id"]) if found else None

    return await eventually(probe, timeout=30, message=f"{channel} message projected")


async def download(env: Env, mid: str, **params: Any) -> httpx.Response:
    return await env.http.get(f"{env.crm}/v1/messages/{mid}/media", headers=AUTH, params=params)


async def test_a_telegram_photo_downloads_byte_identical_then_from_the_object_store(
    env: Env,
) -> None:
    photo = await env.telegram_photo()
    content = tg_norm.content_of({"photo": photo, "caption": "my bike"}, "raw-1")
    await publish_all(env.nats_url, [message(Channel.TELEGRAM, "shop", 1, content)])
    mid = await message_id(env, "telegram")

    listed = await env.http.get(f"{env.crm}/v1/messages/{mid}/attachments", headers=AUTH)
    assert listed.status_code == 200, listed.text
    items = listed.json()["items"]
    assert items[0]["index"] == 0
    assert items[0]["kind"] == "photo"
    assert items[0]["file_size"] == len(PHOTO)
    assert len(items) == len(photo)  # the largest first, then the smaller sizes
    assert "file_id" not in items[0]

    # what the sandbox serves for that file id, through the Bot API itself
    largest = max(photo, key=lambda p: p["width"])
    api = f"{env.sandbox}/telegram/bot{TG_TOKEN}"
    path = (await env.http.post(f"{api}/getFile", json={"file_id": largest["file_id"]})).json()
    direct = await env.http.get(
        f"{env.sandbox}/telegram/file/bot{TG_TOKEN}/{path['result']['file_path']}"
    )
    assert direct.content == PHOTO

    r = await download(env, mid)
    assert r.status_code == 200, r.text
    assert r.content == PHOTO
    calls = len(env.provider_calls("telegram"))
    again = await download(env, mid)
    assert again.status_code == 200
    assert again.content == PHOTO
    assert len(env.provider_calls("telegram")) == calls  # kept: no second provider call
    assert any(env.objects.rglob("0"))

    # another workspace's key: the message does not exist
    other = {"Authorization": f"Bearer {OTHER_KEY}"}
    r = await env.http.get(f"{env.crm}/v1/messages/{mid}/media", headers=other)
    assert r.status_code == 404
    r = await env.http.get(f"{env.crm}/v1/messages/{mid}/attachments", headers=other)
    assert r.status_code == 404
    r = await download(env, mid, index=9)
    assert r.status_code == 404


async def test_an_erasure_deletes_the_person_s_kept_files(env: Env) -> None:
    """Downloads are kept in the object store (``persist_downloads``, on by default). The
    CRM erases a person: every kept file of their messages leaves the store (and their
    messages name no file any more); another person's stays. Before, an erased person's
    photos, voice notes and documents stayed in the store for ever."""
    photo = await env.telegram_photo()
    content = tg_norm.content_of({"photo": photo}, "raw-1")
    await publish_all(
        env.nats_url,
        [message(Channel.TELEGRAM, "shop", n, content) for n in (1, 2)],
    )
    mids: dict[str, str] = {}
    contacts: dict[str, str] = {}

    async def both() -> dict[str, str] | None:
        r = await env.http.get(f"{env.crm}/v1/conversations", headers=AUTH)
        for conv in r.json()["items"]:
            contacts[conv["chat_id"]] = conv["contact_id"]
            got = await env.http.get(
                f"{env.crm}/v1/conversations/{conv['id']}/messages", headers=AUTH
            )
            for m in got.json()["items"]:
                mids[conv["chat_id"]] = str(m["id"])
        return mids if len(mids) == 2 else None

    await eventually(both, timeout=30, message="both messages projected")
    store = await open_store(ObjectStoreSettings(local_dir=str(env.objects)))
    indices = range(len(photo))
    for mid in mids.values():
        for index in indices:
            r = await download(env, mid, index=index)
            assert r.status_code == 200, r.text

    async def kept() -> bool:  # written as the download streamed, committed at its end
        keys = [object_key("demo", mid, i) for mid in mids.values() for i in indices]
        return None not in [await store.size(key) for key in keys]

    await eventually(kept, timeout=30, message="the downloads kept")
    r = await env.http.post(f"{env.crm}/v1/contacts/{contacts['u1']}/erase", headers=AUTH)
    assert r.status_code == 200, r.text

    async def gone() -> bool:
        sizes = [await store.size(object_key("demo", mids["u1"], i)) for i in indices]
        return sizes == [None] * len(indices)

    await eventually(gone, timeout=30, message="the erased person's files left the store")
    for index in indices:  # the other person's stay
        assert await store.size(object_key("demo", mids["u2"], index)) is not None
    await store.close()


async def test_a_whatsapp_image_downloads_byte_identical(env: Env) -> None:
    held = await env.control(
        f"/whatsapp/numbers/{WA_NUMBER}/media",
        {"content_base64": base64.b64encode(PHOTO).decode(), "mime_type": "image/png"},
    )
    payload = {"type": "image", "image": {"id": held["id"], "mime_type": "image/png",
                                          "sha256": held["sha256"]}}  # fmt: skip
    content = wa_norm.content_of(payload, "image", "messages[0]", "raw-2")
    await publish_all(env.nats_url, [message(Channel.WHATSAPP, WA_NUMBER, 2, content)])
    mid = await message_id(env, "whatsapp")

    # the sandbox's own bytes: media object, then its URL with the token
    graph = f"{env.sandbox}/whatsapp/v26.0"
    bearer = {"Authorization": f"Bearer {WA_TOKEN}"}
    info = (await env.http.get(f"{graph}/{held['id']}", headers=bearer)).json()
    direct = await env.http.get(info["url"], headers=bearer)
    assert direct.content == PHOTO
    assert (await env.http.get(info["url"])).status_code != 200  # the URL needs the token

    r = await download(env, mid)
    assert r.status_code == 200, r.text
    assert r.content == PHOTO
    assert r.headers["content-type"] == "image/png"


async def test_a_viber_picture_downloads_byte_identical(env: Env) -> None:
    held = await env.control(
        "/viber/media",
        {"content_base64": base64.b64encode(PHOTO).decode(), "file_name": "bike.png",
         "mime_type": "image/png"},
    )  # fmt: skip
    payload = {"type": "picture", "media": held["url"], "file_name": "bike.png",
               "size": held["size"], "text": "look"}  # fmt: skip
    content = viber_norm.content_of(payload, "raw-3")
    await publish_all(env.nats_url, [message(Channel.VIBER, "mediashop", 3, content)])
    mid = await message_id(env, "viber")
    assert (await env.http.get(held["url"])).content == PHOTO
    r = await download(env, mid)
    assert r.status_code == 200, r.text
    assert r.content == PHOTO
    listed = (await env.http.get(f"{env.crm}/v1/messages/{mid}/attachments", headers=AUTH)).json()
    assert listed["items"][0]["file_name"] == "bike.png"


async def test_oversize_is_413_and_a_provider_failure_is_502(env: Env) -> None:
    # WhatsApp images are at most 5 MB: a declared larger one is refused before any call
    big = 6 * 1024 * 1024
    held = await env.control(
        f"/whatsapp/numbers/{WA_NUMBER}/media",
        {"content_base64": base64.b64encode(b"\0" * big).decode(), "mime_type": "image/jpeg"},
    )
    content = wa_norm.content_of(
        {"type": "image", "image": {"id": held["id"], "mime_type": "image/jpeg"}},
        "image",
        "messages[0]",
        "raw-4",
    )
    await publish_all(env.nats_url, [message(Channel.WHATSAPP, WA_NUMBER, 4, content)])
    mid = await message_id(env, "whatsapp")
    before = len(env.provider_calls("whatsapp"))
    r = await download(env, mid)
    assert r.status_code == 413, r.text
    assert str(5 * 1024 * 1024) in r.text
    # the media object was asked (its size is only known there), the bytes never fetched
    assert [c.method for c in env.provider_calls("whatsapp")[before:]] == ["media"]

    # a Viber URL the CDN does not have: the provider's refusal is a 502
    gone = viber_norm.content_of(
        {"type": "picture", "media": f"{env.sandbox}/viber/media/nope/x.jpg"}, "raw-5"
    )
    await publish_all(env.nats_url, [message(Channel.VIBER, "mediashop", 5, gone)])
    mid = await message_id(env, "viber")
    r = await download(env, mid)
    assert r.status_code == 502, r.text
    assert "404" in r.text


async def test_a_telegram_file_over_20_mb_is_413(env: Env) -> None:
    bot = env.box.telegram.state.find_bot("media_in_bot")
    assert bot is not None
    big = bot.files.add("document", size=25 * 1024 * 1024, file_name="catalogue.pdf")
    declared = big.describe()
    undeclared = {k: v for k, v in declared.items() if k != "file_size"}
    await publish_all(
        env.nats_url,
        [
            message(Channel.TELEGRAM, "shop", 6, tg_norm.content_of({"document": declared}, "r6")),
            message(
                Channel.TELEGRAM, "shop", 7, tg_norm.content_of({"document": undeclared}, "r7")
            ),
        ],
    )

    async def both() -> list[str] | None:
        found = await env.http.get(
            f"{env.crm}/v1/conversations", headers=AUTH, params={"channel": "telegram"}
        )
        ids: list[str] = []
        for conv in found.json()["items"]:
            page = await env.http.get(
                f"{env.crm}/v1/conversations/{conv['id']}/messages", headers=AUTH
            )
            ids += [m["id"] for m in page.json()["items"]]
        return sorted(ids) if len(ids) == 2 else None

    declared_id, undeclared_id = await eventually(both, timeout=30, message="both projected")
    before = len(env.provider_calls("telegram"))
    r = await download(env, declared_id)
    assert r.status_code == 413, r.text
    assert len(env.provider_calls("telegram")) == before  # its declared size decided
    r = await download(env, undeclared_id)
    assert r.status_code == 413, r.text  # Telegram's getFile refuses files over 20 MB
    assert "too big" in r.text


async def test_downloads_are_kept_in_an_s3_bucket_when_configured(
    nats_url: str, postgres_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with moto_server() as s3_url:
        objects = s3_env(s3_url, "crm-media")
        async with media_env(nats_url, postgres_url, monkeypatch, tmp_path, objects) as env:
            photo = await env.telegram_photo()
            content = tg_norm.content_of({"photo": photo}, "raw-s3")
            await publish_all(env.nats_url, [message(Channel.TELEGRAM, "shop", 8, content)])
            mid = await message_id(env, "telegram")
            r = await download(env, mid)
            assert r.status_code == 200, r.text
            assert r.content == PHOTO
            calls = len(env.provider_calls("telegram"))
            again = await download(env, mid)
            assert again.content == PHOTO
            assert len(env.provider_calls("telegram")) == calls
        # the file is in the bucket, read with a plain S3 client
        store = await open_store(ObjectStoreSettings.model_validate(
            {"backend": "s3", "s3_bucket": "crm-media", "s3_endpoint_url": s3_url,
             "s3_access_key_id": "testing", "s3_secret_access_key": "testing"}
        ))  # fmt: skip
        assert isinstance(store, S3ObjectStore)
        try:
            s3 = await store._s3()
            listed = await s3.list_objects_v2(Bucket="crm-media")
            keys = [o["Key"] for o in listed.get("Contents", [])]
            assert len(keys) == 1
            assert keys[0].startswith("inbound/")
            kept = await store.get(keys[0])
            assert kept is not None
            assert kept.data == PHOTO
        finally:
            await store.close()


async def test_an_oversize_body_of_undeclared_size_is_cut_and_nothing_is_kept(env: Env) -> None:
    # A media CDN that streams without Content-Length (chunked): only reading tells the
    # size. Viber allows 50 MB; this one would send 80 MB.
    served: list[int] = []

    def chunks() -> Iterator[bytes]:
        block = b"\xff" * (1 << 20)
        for n in range(80):
            served.append(n)
            yield block

    async def big(request: Request) -> StreamingResponse:
        return StreamingResponse(chunks(), media_type="image/jpeg")

    cdn = Starlette(routes=[Route("/media/huge.jpg", big)])
    async with serve(cdn) as cdn_url:
        content = viber_norm.content_of(
            {"type": "picture", "media": f"{cdn_url}/media/huge.jpg"}, "raw-huge"
        )
        assert content.file is not None
        assert content.file.file_size is None  # the size is nowhere declared
        await publish_all(env.nats_url, [message(Channel.VIBER, "mediashop", 9, content)])
        mid = await message_id(env, "viber")
        received = 0
        async with env.http.stream("GET", f"{env.crm}/v1/messages/{mid}/media", headers=AUTH) as r:
            assert r.status_code == 200  # the answer began before the size was known
            assert "content-length" not in r.headers
            cut = False
            try:
                async for chunk in r.aiter_bytes():
                    received += len(chunk)
            except httpx.RemoteProtocolError:
                cut = True
        assert cut  # ... and is cut, not ended as if complete
        assert received <= 50 * 1024 * 1024
        assert len(served) < 80  # the CRM stopped reading the provider
    # nothing kept: no object, no temporary file
    assert [p for p in env.objects.rglob("*") if p.is_file()] == []


@pytest.fixture
async def failing_env(
    nats_url: str, postgres_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> AsyncIterator[Env]:
    settings = {
        "SWITCHBOARD_OBJECTS__LOCAL_DIR": str(tmp_path / "objects"),
        "SWITCHBOARD_MEDIA_BREAKER_THRESHOLD": "3",
        "SWITCHBOARD_ADMIN_TOKEN": OPERATOR_TOKEN,  # /health/* answers only the operator
        # long enough that no probe is due during the test: the breaker's recovery is the
        # unit tests' (tests/unit/test_breaker.py), on an injected clock
        "SWITCHBOARD_MEDIA_BREAKER_COOLDOWN_S": "600",
    }
    async with media_env(nats_url, postgres_url, monkeypatch, tmp_path, settings) as env:
        yield env


async def test_a_failing_provider_opens_the_breaker_and_is_not_called(
    failing_env: Env,
) -> None:
    env = failing_env
    photo = await env.telegram_photo()
    content = tg_norm.content_of({"photo": photo}, "raw-breaker")
    await publish_all(env.nats_url, [message(Channel.TELEGRAM, "shop", 10, content)])
    mid = await message_id(env, "telegram")
    env.box.set_fault("telegram", TG_TOKEN, error_rate=1.0, error_status=500)

    before = len(env.provider_calls("telegram"))
    r = await download(env, mid)
    assert r.status_code == 502, r.text  # three tries, three 500s
    assert r.json()["code"] == "provider_unavailable"
    assert len(env.provider_calls("telegram")) == before + 3

    held_back = len(env.provider_calls("telegram"))
    r = await download(env, mid)
    assert r.status_code == 503, r.text
    assert r.json()["code"] == "provider_unavailable"
    assert int(r.headers["retry-after"]) >= 1
    assert r.json()["retry_after_s"] == int(r.headers["retry-after"])
    env.box.clear_faults()
    r = await download(env, mid)
    assert r.status_code == 503  # still held: no call until the probe is due
    assert len(env.provider_calls("telegram")) == held_back
    operator = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
    r = await env.http.get(f"{env.crm}/health/integrations", headers=operator)
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["healthy"] is False
    assert report["integrations"]["telegram/shop"]["state"] == "open"
    assert report["integrations"]["telegram/shop"]["last_error"] == "HTTP 500"

    # one failing account degrades only itself: Viber files still come
    viber = await env.control(
        "/viber/media",
        {"content_base64": base64.b64encode(PHOTO).decode(), "mime_type": "image/png"},
    )
    await publish_all(
        env.nats_url,
        [
            message(
                Channel.VIBER,
                "mediashop",
                11,
                viber_norm.content_of({"type": "picture", "media": viber["url"]}, "raw-v11"),
            )
        ],
    )
    r = await download(env, await message_id(env, "viber"))
    assert r.status_code == 200, r.text
    assert r.content == PHOTO


async def test_a_photo_a_customer_sends_to_a_user_account_downloads_byte_identical(
    env: Env, nats_url: str, postgres_url: str
) -> None:
    """The gateway holding the demo user account downloads the photo (upload.getFile on the
    wire-level fake) into the object store the CRM streams it from; another workspace gets
    a 404 and a file over Telegram's limit a 413 without asking the gateway."""
    fake = env.box.mtproto
    agent, _ = fake.add_user("15550404040", first_name="Agent")
    customer, _ = fake.add_user("15550404041", first_name="Cus", username="cus_e2e_media")
    gateway = MtprotoSettings(
        nats_url=nats_url,
        database_url=postgres_url,
        encryption_keys=MT_KEY,
        admin_token="mtproto-media-admin",
        api_keys=f"{MT_API_KEY}=demo",
        adapter="telethon",
        sandbox_url=env.sandbox,
        api_id=12345,
        api_hash="0123456789abcdef0123456789abcdef",
        http_port=0,
        objects=ObjectStoreSettings(local_dir=str(env.objects)),
    )
    async with serve_app(create_gateway(gateway)) as base:
        issued = env.box.mtproto_wire.issue_session(agent)
        mt = {"Authorization": f"Bearer {MT_API_KEY}"}
        body = {"session": issued["session"], "api_id": 12345, "workspace_id": "demo",
                "api_hash": "0123456789abcdef0123456789abcdef"}  # fmt: skip
        r = await env.http.put(f"{base}/v1/sessions/agent", json=body, headers=mt)
        assert r.status_code == 201, r.text

        async def connected() -> bool:
            return bool(fake.connection_log(key_id=issued["key_id"])["active"])

        await eventually(connected, message="the user session connected")
        r = await env.http.post(
            f"{base}/v1/sessions/agent/subscriptions", json={"peer": "@cus_e2e_media"}, headers=mt
        )
        assert r.status_code == 201, r.text
        sent = fake.post(
            agent,
            "my receipt",
            sender=customer,
            media={"kind": "photo", "data": base64.b64encode(PHOTO).decode()},
        )
        held = await env.http.get(
            f"{env.sandbox}/_sandbox/mtproto/files/{sent['media']['file_id']}"
        )
        assert held.status_code == 200
        mid = await message_id(env, "mtproto")
        r = await download(env, mid)
        assert r.status_code == 200, r.text
        assert r.content == held.content == PHOTO
        r = await env.http.get(
            f"{env.crm}/v1/messages/{mid}/media", headers={"Authorization": f"Bearer {OTHER_KEY}"}
        )
        assert r.status_code == 404, r.text
    # Over Telegram's user limit as the message declares it: 413, the gateway not asked.
    huge = PhotoContent(file=MediaFile(file_id="mt:photo:2", file_size=2001 * 1024 * 1024))
    await publish_all(env.nats_url, [message(Channel.MTPROTO, "gone", 13, huge)])

    async def huge_id() -> str | None:
        r = await env.http.get(f"{env.crm}/v1/conversations", headers=AUTH,
                               params={"channel": "mtproto"})  # fmt: skip
        for item in r.json()["items"] if r.status_code == 200 else []:
            if item["account"] == "gone":
                r = await env.http.get(
                    f"{env.crm}/v1/conversations/{item['id']}/messages", headers=AUTH
                )
                found = r.json()["items"] if r.status_code == 200 else []
                return str(found[0]["id"]) if found else None
        return None

    r = await download(env, await eventually(huge_id, timeout=30, message="projected"))
    assert r.status_code == 413, r.text
    assert r.json()["code"] == "file_too_large"
