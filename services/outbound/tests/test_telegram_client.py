"""TelegramClient against a MockTransport: the exact Bot API requests and every error
classification."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from switchboard.events.catalog.outbound import OutLocation, OutMediaGroup, OutTemplate
from switchboard.outbound.providers.base import Failure, ProviderError, Scope
from switchboard.outbound.providers.files import FileKey, InMemoryFileIdCache
from switchboard.outbound.providers.telegram import TelegramClient

from .support import (
    PNG,
    TG_TOKEN,
    Mock,
    account,
    assert_error,
    command,
    keyboard,
    media,
    reply,
    text,
)

BASE = f"https://api.telegram.org/bot{TG_TOKEN}"


def ok(result: Any) -> httpx.Response:
    return reply(200, {"ok": True, "result": result})


def message(message_id: int = 7, **extra: Any) -> dict[str, Any]:
    return {"message_id": message_id, "chat": {"id": 42, "type": "private"}, "date": 1, **extra}


def photo_sizes(prefix: str) -> list[dict[str, Any]]:
    return [
        {"file_id": f"{prefix}-small", "file_unique_id": "a", "width": 90, "height": 68},
        {"file_id": f"{prefix}-large", "file_unique_id": "c", "width": 1280, "height": 960},
        {"file_id": f"{prefix}-mid", "file_unique_id": "b", "width": 320, "height": 240},
    ]


async def send(mock: Mock, cmd: Any, **kwargs: Any) -> Any:
    async with mock.client() as http:
        return await TelegramClient(http, **kwargs).send(account(), cmd)


async def fail(mock: Mock, cmd: Any, **kwargs: Any) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        await send(mock, cmd, **kwargs)
    return caught.value


async def test_text_with_inline_keyboard_reply_and_parse_mode() -> None:
    mock = Mock([ok(message(7))])
    cmd = command(
        text("*hi*", parse_mode="MarkdownV2"),
        keyboard=keyboard(
            [("Yes", "y", None), ("Site", None, "https://x.test")], [("Maybe", None, None)]
        ),
        reply_to="5",
    )
    sent = await send(mock, cmd)
    request = mock.requests[0]
    assert request.method == "POST"
    assert str(request.url) == f"{BASE}/sendMessage"
    assert mock.json() == {
        "chat_id": 42,
        "text": "*hi*",
        "parse_mode": "MarkdownV2",
        "link_preview_options": {"is_disabled": True},
        "reply_parameters": {"message_id": 5, "allow_sending_without_reply": True},
        "reply_markup": {
            "inline_keyboard": [
                [{"text": "Yes", "callback_data": "y"}, {"text": "Site", "url": "https://x.test"}],
                [{"text": "Maybe", "callback_data": "Maybe"}],
            ]
        },
    }
    assert sent.provider_message_id == "7"
    assert request.extensions["timeout"] == {
        "connect": 5.0,
        "read": 10.0,
        "write": 10.0,
        "pool": 10.0,
    }


async def test_reply_and_remove_keyboards_channel_names_and_previews() -> None:
    mock = Mock([ok(message(1)), ok(message(2))])
    async with mock.client() as http:
        client = TelegramClient(http)
        reply_kb = keyboard([("A", None, None), ("B", None, None)], type="reply")
        await client.send(
            account(), command(text("x", preview_url=True), keyboard=reply_kb, recipient="@news")
        )
        await client.send(account(), command(text("y"), keyboard=keyboard(type="remove")))
    first, second = mock.json(0), mock.json(1)
    assert first["chat_id"] == "@news"
    assert first["link_preview_options"] == {"is_disabled": False}
    assert first["reply_markup"] == {
        "keyboard": [[{"text": "A"}, {"text": "B"}]],
        "resize_keyboard": True,
        "one_time_keyboard": False,
    }
    assert second["reply_markup"] == {"remove_keyboard": True}


@pytest.mark.parametrize(
    ("kind", "method"),
    [
        ("photo", "sendPhoto"),
        ("video", "sendVideo"),
        ("audio", "sendAudio"),
        ("voice", "sendVoice"),
        ("document", "sendDocument"),
        ("animation", "sendAnimation"),
        ("sticker", "sendSticker"),
    ],
)
async def test_each_media_kind_by_file_id(kind: str, method: str) -> None:
    mock = Mock([ok(message(3))])
    await send(mock, command(media(kind, file_id="AgAD-file", caption="look")))
    assert str(mock.requests[0].url) == f"{BASE}/{method}"
    body = mock.json()
    assert body[kind] == "AgAD-file"
    assert body.get("caption") == (None if kind == "sticker" else "look")


async def test_url_is_sent_then_cached_by_largest_photo() -> None:
    cache = InMemoryFileIdCache()
    mock = Mock([ok(message(1, photo=photo_sizes("p"))), ok(message(2, photo=photo_sizes("q")))])
    cmd = command(media("photo", url="https://cdn.test/cat.jpg", caption="cat"))
    async with mock.client() as http:
        client = TelegramClient(http, file_ids=cache)
        await client.send(account(), cmd)
        await client.send(account(), cmd)
    assert mock.json(0)["photo"] == "https://cdn.test/cat.jpg"
    assert mock.json(1)["photo"] == "p-large"
    key = FileKey.for_url("telegram:123456789", "photo", "https://cdn.test/cat.jpg")
    assert await cache.get(key) == "p-large"


async def test_bytes_are_uploaded_as_multipart_once() -> None:
    doc = {"file_id": "BQAD-doc", "file_unique_id": "u", "file_name": "r.pdf"}
    mock = Mock([ok(message(1, document=doc)), ok(message(2, document=doc))])
    cmd = command(
        media("document", data=b"%PDF-1.4 report", file_name="r.pdf", caption="report"),
        keyboard=keyboard([("Ok", "ok", None)]),
        reply_to="9",
    )
    async with mock.client() as http:
        client = TelegramClient(http)
        await client.send(account(), cmd)
        await client.send(account(), cmd)
    first = mock.requests[0]
    assert str(first.url) == f"{BASE}/sendDocument"
    fields, files = mock.form(0)
    assert fields["chat_id"] == "42"
    assert fields["caption"] == "report"
    assert json.loads(fields["reply_markup"]) == {
        "inline_keyboard": [[{"text": "Ok", "callback_data": "ok"}]]
    }
    assert json.loads(fields["reply_parameters"])["message_id"] == 9
    assert files == {"document": ("r.pdf", "application/pdf", b"%PDF-1.4 report")}
    assert first.extensions["timeout"]["read"] == 60.0
    assert mock.requests[1].headers["content-type"] == "application/json"
    assert mock.json(1)["document"] == "BQAD-doc"


async def test_same_bytes_under_another_bot_upload_again() -> None:
    sizes = photo_sizes("p")
    mock = Mock([ok(message(1, photo=sizes)), ok(message(2, photo=sizes))])
    cache = InMemoryFileIdCache()
    cmd = command(media("photo", data=PNG))
    async with mock.client() as http:
        client = TelegramClient(http, file_ids=cache)
        await client.send(account(), cmd)
        await client.send(account(secrets={"token": "987:other"}), cmd)
    assert all(r.headers["content-type"].startswith("multipart/") for r in mock.requests)
    assert len(cache) == 2


async def test_media_group_mixes_file_ids_urls_and_uploads() -> None:
    result = [
        message(10, photo=photo_sizes("a")),
        message(11, photo=photo_sizes("b")),
        message(12, video={"file_id": "vid-c"}),
    ]
    cache = InMemoryFileIdCache()
    mock = Mock([ok(result)])
    group = OutMediaGroup(
        items=(
            media("photo", file_id="known", caption="first"),
            media("photo", url="https://cdn.test/b.jpg"),
            media("video", data=b"\x00\x00mp4", mime_type="video/mp4"),
        )
    )
    sent = await send(mock, command(group, reply_to="3"), file_ids=cache)
    assert str(mock.requests[0].url) == f"{BASE}/sendMediaGroup"
    fields, files = mock.form()
    assert json.loads(fields["media"]) == [
        {"type": "photo", "media": "known", "caption": "first"},
        {"type": "photo", "media": "https://cdn.test/b.jpg"},
        {"type": "video", "media": "attach://file2"},
    ]
    assert files == {"file2": ("video.mp4", "video/mp4", b"\x00\x00mp4")}
    assert json.loads(fields["reply_parameters"])["message_id"] == 3
    assert sent.provider_message_id == "10"
    assert sent.raw["message_ids"] == [10, 11, 12]
    assert (
        await cache.get(FileKey.for_url("telegram:123456789", "photo", "https://cdn.test/b.jpg"))
        == "b-large"
    )
    assert (
        await cache.get(FileKey.for_bytes("telegram:123456789", "video", b"\x00\x00mp4")) == "vid-c"
    )


async def test_media_group_of_json_only_items_is_json() -> None:
    mock = Mock([ok([message(1), message(2)])])
    group = OutMediaGroup(items=(media("document", file_id="d1"), media("document", file_id="d2")))
    await send(mock, command(group))
    assert mock.json()["media"] == [
        {"type": "document", "media": "d1"},
        {"type": "document", "media": "d2"},
    ]


async def test_location() -> None:
    mock = Mock([ok(message(4))])
    await send(mock, command(OutLocation(latitude=50.45, longitude=30.52)))
    assert str(mock.requests[0].url) == f"{BASE}/sendLocation"
    assert mock.json() == {"chat_id": 42, "latitude": 50.45, "longitude": 30.52}


@pytest.mark.parametrize(
    "cmd",
    [
        command(OutTemplate(name="welcome", language="en")),
        command(
            OutMediaGroup(items=(media("photo", file_id="a"), media("photo", file_id="b"))),
            keyboard=keyboard([("x", "x", None)]),
        ),
        command(OutMediaGroup(items=(media("photo", file_id="a"), media("voice", file_id="b")))),
    ],
    ids=["template", "group-with-keyboard", "group-with-voice"],
)
async def test_unsupported_content_fails_without_a_call(cmd: Any) -> None:
    mock = Mock()
    error = await fail(mock, cmd)
    assert_error(error, Failure.PERMANENT, "telegram_unsupported")
    assert mock.requests == []


async def test_bad_inputs_are_permanent_without_a_call() -> None:
    mock = Mock()
    assert_error(
        await fail(mock, command(text(), reply_to="abc")),
        Failure.PERMANENT,
        "telegram_bad_reply_to",
    )
    bad = media("photo", data=b"x")
    bad = bad.model_copy(update={"source": bad.source.model_copy(update={"data_base64": "%%%"})})
    assert_error(await fail(mock, command(bad)), Failure.PERMANENT, "telegram_bad_media")
    async with mock.client() as http:
        with pytest.raises(ProviderError) as caught:
            await TelegramClient(http).send(account(secrets={"token": ""}), command(text()))
    assert_error(caught.value, Failure.PERMANENT, "telegram_config")
    assert mock.requests == []


def tg_error(status: int, description: str, **parameters: Any) -> httpx.Response:
    body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    if parameters:
        body["parameters"] = parameters
    return reply(status, body)


@pytest.mark.parametrize(
    ("answer", "failure", "code", "retry_after"),
    [
        (
            tg_error(429, "Too Many Requests: retry after 5", retry_after=5),
            Failure.RATE_LIMITED,
            "telegram_429",
            5.0,
        ),
        (
            reply(
                429,
                {"ok": False, "error_code": 429, "description": "Too Many Requests"},
                {"Retry-After": "3"},
            ),
            Failure.RATE_LIMITED,
            "telegram_429",
            3.0,
        ),
        (tg_error(400, "Bad Request: chat not found"), Failure.PERMANENT, "telegram_400", None),
        (
            tg_error(400, "Bad Request: message is too long"),
            Failure.PERMANENT,
            "telegram_400",
            None,
        ),
        (
            tg_error(400, "Bad Request: message text is empty"),
            Failure.PERMANENT,
            "telegram_400",
            None,
        ),
        (
            tg_error(400, "Bad Request: wrong file identifier/HTTP URL specified"),
            Failure.PERMANENT,
            "telegram_400",
            None,
        ),
        (
            tg_error(403, "Forbidden: bot was blocked by the user"),
            Failure.PERMANENT,
            "telegram_403",
            None,
        ),
        (tg_error(401, "Unauthorized"), Failure.UNAUTHORIZED, "telegram_401", None),
        (tg_error(500, "Internal Server Error"), Failure.RETRYABLE, "telegram_500", None),
        (
            httpx.Response(502, text="<html>Bad Gateway</html>"),
            Failure.RETRYABLE,
            "telegram_502",
            None,
        ),
        (httpx.Response(200, text="not json"), Failure.PERMANENT, "telegram_200", None),
    ],
)
async def test_error_classification(
    answer: httpx.Response, failure: Failure, code: str, retry_after: float | None
) -> None:
    error = await fail(Mock([answer]), command(text()))
    assert_error(error, failure, code, retry_after=retry_after)
    if failure is Failure.RATE_LIMITED:
        assert error.scope is Scope.ACCOUNT
        assert error.raw["chat_id"] == 42
    body = (
        json.loads(answer.content)
        if answer.headers.get("content-type") == "application/json"
        else {}
    )
    if body.get("description"):
        assert error.reason == body["description"]


async def test_migrated_group_is_permanent_with_the_new_chat_id() -> None:
    answer = tg_error(
        400,
        "Bad Request: group chat was upgraded to a supergroup chat",
        migrate_to_chat_id=-1001234567890,
    )
    error = await fail(Mock([answer]), command(text(), recipient="-4242"))
    assert_error(error, Failure.PERMANENT, "telegram_migrated")
    assert error.raw["migrate_to_chat_id"] == -1001234567890


@pytest.mark.parametrize(
    ("exc", "code", "maybe_sent"),
    [
        (httpx.ReadTimeout("timed out"), "telegram_timeout", True),
        (httpx.ConnectTimeout("timed out"), "telegram_timeout", False),
        (
            httpx.ConnectError(f"refused https://api.telegram.org/bot{TG_TOKEN}/sendMessage"),
            "telegram_network",
            False,
        ),
        (httpx.RemoteProtocolError("peer closed"), "telegram_network", True),
    ],
)
async def test_transport_errors_are_retryable_and_hide_the_token(
    exc: Exception, code: str, maybe_sent: bool
) -> None:
    error = await fail(Mock([exc]), command(text()))
    assert_error(error, Failure.RETRYABLE, code)
    assert error.raw["maybe_sent"] is maybe_sent
    assert TG_TOKEN not in error.reason
    assert TG_TOKEN not in str(error)


async def test_a_stale_cached_file_id_is_dropped_and_retryable() -> None:
    cache = InMemoryFileIdCache()
    key = FileKey.for_bytes("telegram:123456789", "photo", PNG)
    await cache.put(key, "stale-id")
    mock = Mock(
        [
            tg_error(400, "Bad Request: wrong file identifier/HTTP URL specified"),
            ok(message(2, photo=photo_sizes("new"))),
        ]
    )
    cmd = command(media("photo", data=PNG))
    async with mock.client() as http:
        client = TelegramClient(http, file_ids=cache)
        with pytest.raises(ProviderError) as caught:
            await client.send(account(), cmd)
        assert_error(caught.value, Failure.RETRYABLE, "telegram_stale_file_id")
        assert await cache.get(key) is None
        await client.send(account(), cmd)
    assert mock.json(0)["photo"] == "stale-id"
    assert mock.form(1)[1]["photo"][2] == PNG
    assert await cache.get(key) == "new-large"


async def test_per_account_base_url() -> None:
    mock = Mock([ok(message(1))])
    async with mock.client() as http:
        client = TelegramClient(http)
        shop = account(settings={"api_base_url": "http://sandbox.test/telegram/"})
        await client.send(shop, command(text()))
    assert str(mock.requests[0].url) == f"http://sandbox.test/telegram/bot{TG_TOKEN}/sendMessage"
