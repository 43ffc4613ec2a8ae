"""ViberClient: send_message bodies and status classification (MockTransport), then the
same against the sandbox's Viber fake."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from switchboard.events.catalog.outbound import OutLocation, OutMediaGroup, OutTemplate
from switchboard.outbound.providers.base import Failure, ProviderError, Scope
from switchboard.outbound.providers.viber import MAX_REQUEST_BYTES, ViberClient, unsendable
from switchboard.sandbox import SlidingWindow

from .support import (
    VIBER_TOKEN,
    Env,
    Mock,
    account,
    assert_error,
    buttons,
    command,
    keyboard,
    media,
    reply,
    text,
)

USER = "01234567890A="


def vb(content: Any, **kwargs: Any) -> Any:
    return command(content, channel="viber", recipient=USER, **kwargs)


def ok(token: int = 5491650221123456789) -> httpx.Response:
    return reply(
        200, {"status": 0, "status_message": "ok", "message_token": token, "chat_hostname": "SN-1"}
    )


async def send(mock: Mock, cmd: Any, shop: Any = None) -> Any:
    async with mock.client() as http:
        return await ViberClient(http).send(shop or account("viber"), cmd)


async def fail(mock: Mock, cmd: Any) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        await send(mock, cmd)
    return caught.value


async def test_text_with_keyboard() -> None:
    mock = Mock([ok()])
    kb = keyboard([("Yes", "y", None), ("No", None, None)], [("Site", None, "https://s.test")])
    sent = await send(mock, vb(text("Confirm?"), keyboard=kb, reply_to="ignored"))
    request = mock.requests[0]
    assert (request.method, str(request.url)) == (
        "POST",
        "https://chatapi.viber.com/pa/send_message",
    )
    assert request.headers["x-viber-auth-token"] == VIBER_TOKEN
    assert mock.json() == {
        "receiver": USER,
        "sender": {"name": "shop"},
        "tracking_data": "m-1",
        "type": "text",
        "text": "Confirm?",
        "keyboard": {
            "Type": "keyboard",
            "DefaultHeight": False,
            "Buttons": [
                {"Columns": 3, "Rows": 1, "Text": "Yes", "ActionType": "reply", "ActionBody": "y"},
                {"Columns": 3, "Rows": 1, "Text": "No", "ActionType": "reply", "ActionBody": "No"},
                {
                    "Columns": 6,
                    "Rows": 1,
                    "Text": "Site",
                    "ActionType": "open-url",
                    "ActionBody": "https://s.test",
                },
            ],
        },
    }
    assert sent.provider_message_id == "5491650221123456789"


async def test_sender_name_avatar_and_other_kinds() -> None:
    mock = Mock(default=ok())
    shop = account(
        "viber",
        settings={
            "sender_name": "A shop with a very long name indeed",
            "sender_avatar": "https://a.test/a.jpg",
        },
    )
    async with mock.client() as http:
        client = ViberClient(http)
        await client.send(shop, vb(media("photo", url="https://cdn.test/p.jpg", caption="p")))
        await client.send(shop, vb(OutLocation(latitude=50.45, longitude=30.52)))
        await client.send(shop, vb(media("sticker", file_id="40133")))
        await client.send(shop, vb(text("bye"), keyboard=keyboard(type="remove")))
    picture, location, sticker, bye = (mock.json(i) for i in range(4))
    assert picture["sender"] == {
        "name": "A shop with a very long name",
        "avatar": "https://a.test/a.jpg",
    }
    assert len(picture["sender"]["name"]) == 28
    assert (picture["type"], picture["media"], picture["text"]) == (
        "picture",
        "https://cdn.test/p.jpg",
        "p",
    )
    assert location["location"] == {"lat": 50.45, "lon": 30.52}
    assert (sticker["type"], sticker["sticker_id"]) == ("sticker", 40133)
    assert "keyboard" not in bye


@pytest.mark.parametrize(
    "content",
    [
        media("photo", data=b"jpeg"),
        media("photo", file_id="abc"),
        media("video", url="https://cdn.test/v.mp4"),
        media("document", url="https://cdn.test/d.pdf"),
        media("document", url="https://cdn.test/d.pdf", size=10, caption="read me"),
        media("document", url="https://cdn.test/", size=10),
        media("audio", url="https://cdn.test/a.mp3", size=10),
        OutTemplate(name="t", language="en"),
        OutMediaGroup(
            items=(media("photo", url="https://a.test/1"), media("photo", url="https://a.test/2"))
        ),
    ],
    ids=[
        "bytes", "file-id", "video-without-size", "document-without-size",
        "document-with-caption", "document-without-name", "audio", "template", "album",
    ],
)  # fmt: skip
async def test_unsupported_content_fails_without_a_call(content: Any) -> None:
    mock = Mock()
    assert_error(await fail(mock, vb(content)), Failure.PERMANENT, "viber_unsupported")
    assert mock.requests == []


def status(code: int, message: str) -> httpx.Response:
    return reply(200, {"status": code, "status_message": message})


@pytest.mark.parametrize(
    ("answer", "failure", "code"),
    [
        (status(2, "invalidAuthToken"), Failure.UNAUTHORIZED, "viber_2"),
        (status(3, "badData"), Failure.PERMANENT, "viber_3"),
        (status(4, "missingData"), Failure.PERMANENT, "viber_4"),
        (status(5, "receiverNotRegistered"), Failure.PERMANENT, "viber_5"),
        (status(6, "receiverNotSubscribed"), Failure.PERMANENT, "viber_6"),
        (status(99, "generalError"), Failure.RETRYABLE, "viber_99"),
        (httpx.Response(500, text="oops"), Failure.RETRYABLE, "viber_500"),
        (
            httpx.Response(503, json={"status_message": "Service Unavailable"}),
            Failure.RETRYABLE,
            "viber_503",
        ),
        (httpx.Response(200, text="<html>"), Failure.RETRYABLE, "viber_bad_answer"),
        (httpx.ReadTimeout("slow"), Failure.RETRYABLE, "viber_timeout"),
    ],
)
async def test_status_classification(answer: Any, failure: Failure, code: str) -> None:
    error = await fail(Mock([answer]), vb(text()))
    assert_error(error, failure, code)
    assert VIBER_TOKEN not in str(error)


async def test_too_many_requests_pauses_the_recipient_for_the_hour() -> None:
    error = await fail(Mock([status(12, "tooManyRequests")]), vb(text()))
    assert_error(error, Failure.RATE_LIMITED, "viber_12", retry_after=3600.0, scope=Scope.RECIPIENT)


# -- against the sandbox ---------------------------------------------------------------


@pytest.fixture
def bot(env: Env) -> None:
    env.box.viber.add_bot(VIBER_TOKEN, "Shop", uri="shop")
    env.box.viber.add_user("shop", USER, "Olena", subscribed=True)


def sandbox_client(env: Env) -> ViberClient:
    return ViberClient(env.http, base_url=f"{env.url}/viber")


@pytest.mark.usefixtures("bot")
async def test_sandbox_receives_text_picture_location_and_keyboards(env: Env) -> None:
    client = sandbox_client(env)
    shop = account("viber", settings={"sender_name": "Shop"})
    first = await client.send(
        shop, vb(text("hi"), keyboard=keyboard([("Yes", "y", None), ("No", "n", None)]))
    )
    await client.send(shop, vb(media("photo", url="https://cdn.test/p.jpg", caption="p")))
    await client.send(shop, vb(OutLocation(latitude=50.45, longitude=30.52)))
    sent = env.box.viber.sent_messages("shop", USER)
    assert [s["type"] for s in sent] == ["text", "picture", "location"]
    assert str(sent[0]["message_token"]) == first.provider_message_id
    assert sent[0]["message"]["keyboard"]["Buttons"][0]["ActionBody"] == "y"
    assert sent[0]["message"]["sender"] == {"name": "Shop"}
    assert sent[1]["message"]["media"] == "https://cdn.test/p.jpg"


@pytest.mark.usefixtures("bot")
async def test_sandbox_unreplied_limit_and_permanent_statuses(env: Env) -> None:
    env.box.config.viber.limits.unreplied = SlidingWindow(limit=2, window=3600.0)
    client = sandbox_client(env)
    shop = account("viber")
    await client.send(shop, vb(text("1")))
    await client.send(shop, vb(text("2")))
    with pytest.raises(ProviderError) as caught:
        await client.send(shop, vb(text("3")))
    assert_error(
        caught.value, Failure.RATE_LIMITED, "viber_12", retry_after=3600.0, scope=Scope.RECIPIENT
    )

    env.box.viber.add_user("shop", "gone=", subscribed=False)
    with pytest.raises(ProviderError) as caught:
        await client.send(shop, command(text(), channel="viber", recipient="gone="))
    assert_error(caught.value, Failure.PERMANENT, "viber_6")

    with pytest.raises(ProviderError) as caught:
        await client.send(account("viber", secrets={"token": "bad"}), vb(text()))
    assert_error(caught.value, Failure.UNAUTHORIZED, "viber_2")

    env.box.set_fault("viber", "shop", error_rate=1.0, error_status=503)
    with pytest.raises(ProviderError) as caught:
        await client.send(shop, command(text(), channel="viber", recipient="other="))
    assert_error(caught.value, Failure.RETRYABLE, "viber_503")


def _sized(size: int) -> Any:
    """A Viber text with one button whose request is exactly ``size`` bytes (from a
    28-character sender name, the widest an account has by name)."""
    shop = account("viber", settings={"sender_name": "n" * 28})
    one = vb(text("pick"), keyboard=keyboard([("t", "d", None)]))
    base = len(ViberClient(httpx.AsyncClient()).build(shop, one))
    return vb(text("pick"), keyboard=keyboard([("t" * (size - base + 1), "d", None)]))


@pytest.mark.usefixtures("bot")
async def test_a_request_over_30_kb_is_refused_before_the_call(env: Env) -> None:
    """PROTOCOLS.md: Viber takes request JSON of at most 30 KB. A request over it went out
    and came back ``viber_3`` bad data after the call (a 202 that could only fail); now it
    is refused naming the field, without a call, and one of exactly the limit goes through
    the fake (the size measured is the size sent)."""
    client = sandbox_client(env)
    shop = account("viber", settings={"sender_name": "n" * 28})
    at_limit = _sized(MAX_REQUEST_BYTES)
    assert unsendable(at_limit) is None
    await client.send(shop, at_limit)
    over = _sized(MAX_REQUEST_BYTES + 1)
    problem = unsendable(over)
    assert problem is not None
    assert problem[0] == "keyboard"  # the text alone fits
    assert str(MAX_REQUEST_BYTES + 1) in problem[1]
    with pytest.raises(ProviderError) as caught:
        await client.send(shop, over)
    assert_error(caught.value, Failure.PERMANENT, "viber_unsupported")
    assert len(env.box.viber.sent_messages("shop", USER)) == 1

    # 16,000 Ukrainian letters are 32 KB by themselves: the text is named
    long = unsendable(vb(text("ї" * 16_000)))
    assert long is not None
    assert long[0] == "content.text"
    # an avatar's long URL beside content that fits by name is caught at build
    avatar = account(
        "viber",
        settings={"sender_name": "n" * 28, "sender_avatar": "https://a.test/" + "a" * 600},
    )
    with pytest.raises(ProviderError) as caught:
        await client.send(avatar, _sized(MAX_REQUEST_BYTES - 100))
    assert_error(caught.value, Failure.PERMANENT, "viber_unsupported")
    assert len(env.box.viber.sent_messages("shop", USER)) == 1


@pytest.mark.usefixtures("bot")
async def test_a_keyboard_of_more_than_24_buttons_is_refused_before_the_call(env: Env) -> None:
    client = sandbox_client(env)
    shop = account("viber")
    await client.send(shop, vb(text("pick"), keyboard=buttons(24)))
    too_many = vb(text("pick"), keyboard=buttons(25))
    assert unsendable(too_many) == ("keyboard", "a Viber keyboard shows at most 24 buttons, not 25")
    with pytest.raises(ProviderError) as caught:
        await client.send(shop, too_many)
    assert_error(caught.value, Failure.PERMANENT, "viber_unsupported")
    assert len(env.box.viber.sent_messages("shop", USER)) == 1


def test_the_bytes_sent_are_what_viberbot_reads() -> None:
    """The client now sends the bytes it measured (orjson) instead of httpx's ``json=``:
    judged by Viber's own library, the body is a message it reads back as ours (the same
    text in another script, keyboard and tracking data; the picture's media and text)."""
    import json

    from viberbot.api.messages import PictureMessage, TextMessage, get_message

    shop = account("viber", settings={"sender_name": "Магазин"})
    client = ViberClient(httpx.AsyncClient())
    kb = keyboard([("Так", "yes", None)], [("Сайт", None, "https://s.test")])
    body = json.loads(client.build(shop, vb(text("Підтвердити? ✅"), keyboard=kb)))
    read = get_message(body)
    assert isinstance(read, TextMessage)
    assert read.validate()
    assert (read.text, read.tracking_data) == ("Підтвердити? ✅", "m-1")
    assert read.keyboard == body["keyboard"]
    assert read.to_dict() == {k: body[k] for k in ("type", "text", "tracking_data", "keyboard")}
    assert body["sender"] == {"name": "Магазин"}
    photo = json.loads(
        client.build(shop, vb(media("photo", url="https://cdn.test/p.jpg", caption="фото")))
    )
    picture = get_message(photo)
    assert isinstance(picture, PictureMessage)
    assert picture.validate()
    assert (picture.media, picture.text) == ("https://cdn.test/p.jpg", "фото")


def test_a_video_and_a_file_by_url_are_what_viberbot_reads() -> None:
    """A video or a document by URL with its size: Viber's `video` (the caption its text)
    and `file` (named as given, else by the URL's last path segment), judged valid by
    Viber's own library."""
    import json

    from viberbot.api.messages import FileMessage, VideoMessage, get_message

    client = ViberClient(httpx.AsyncClient())
    shop = account("viber")
    url = "https://cdn.test/clip.mp4"
    clip = media("video", url=url, size=40_000, caption="як це працює")
    video = get_message(json.loads(client.build(shop, vb(clip))))
    assert isinstance(video, VideoMessage)
    assert video.validate()
    assert (video.media, video.size, video.text) == (url, 40_000, "як це працює")
    for source, name in (
        ({"url": "https://cdn.test/docs/price%20list.pdf"}, "price list.pdf"),
        ({"url": "https://cdn.test/d?id=7", "file_name": "offer.pdf"}, "offer.pdf"),
    ):
        doc = media("document", size=10_000, **source)
        file = get_message(json.loads(client.build(shop, vb(doc))))
        assert isinstance(file, FileMessage)
        assert file.validate()
        assert (file.media, file.size, file.file_name) == (source["url"], 10_000, name)
