"""TelegramClient against the sandbox's Bot API fake: every content kind arrives as the
right method with the right fields, limits and errors are classified, uploads happen once."""

from __future__ import annotations

import pytest

from switchboard.events.catalog.outbound import OutLocation, OutMediaGroup
from switchboard.outbound.providers.base import Failure, ProviderError, Scope
from switchboard.outbound.providers.files import InMemoryFileIdCache
from switchboard.outbound.providers.telegram import TelegramClient
from switchboard.sandbox import TokenBucket

from .support import PNG, TG_TOKEN, Env, account, assert_error, command, keyboard, media, text


def client(env: Env, cache: InMemoryFileIdCache | None = None) -> TelegramClient:
    return TelegramClient(env.http, base_url=f"{env.url}/telegram", file_ids=cache)


@pytest.fixture
def bot(env: Env) -> None:
    env.box.telegram.add_bot(TG_TOKEN, "shop_bot")
    env.box.config.telegram.limits.enabled = False


@pytest.mark.usefixtures("bot")
async def test_every_content_kind_arrives_as_its_method(env: Env) -> None:
    tg = client(env)
    shop = account()
    first = await tg.send(shop, command(text("hello <b>you</b>", parse_mode="HTML")))
    await tg.send(
        shop,
        command(
            text("pick one"),
            keyboard=keyboard([("Yes", "y", None), ("Docs", None, "https://docs.test")]),
            reply_to=first.provider_message_id,
        ),
    )
    await tg.send(shop, command(media("photo", data=PNG, caption="png")))
    await tg.send(shop, command(media("video", url="https://cdn.test/v.mp4")))
    await tg.send(shop, command(media("audio", data=b"ID3 mp3", file_name="song.mp3")))
    await tg.send(shop, command(media("voice", data=b"OggS voice")))
    await tg.send(shop, command(media("document", data=b"%PDF-1.4", file_name="a.pdf")))
    await tg.send(shop, command(media("animation", url="https://cdn.test/a.gif.mp4")))
    await tg.send(shop, command(media("sticker", url="https://cdn.test/s.webp")))
    group = await tg.send(
        shop,
        command(
            OutMediaGroup(
                items=(
                    media("photo", url="https://cdn.test/1.jpg", caption="one"),
                    media("photo", data=PNG),
                )
            )
        ),
    )

    methods = [r.method for r in env.box.recorder.requests(provider="telegram", ok=True)]
    assert methods == [
        "sendMessage",
        "sendMessage",
        "sendPhoto",
        "sendVideo",
        "sendAudio",
        "sendVoice",
        "sendDocument",
        "sendAnimation",
        "sendSticker",
        "sendMediaGroup",
    ]
    stored = env.box.telegram.messages(TG_TOKEN, 42)
    assert stored[0]["text"] == "hello <b>you</b>"
    assert stored[1]["reply_to_message"]["message_id"] == int(first.provider_message_id)
    assert stored[1]["reply_markup"] == {
        "inline_keyboard": [
            [{"text": "Yes", "callback_data": "y"}, {"text": "Docs", "url": "https://docs.test"}]
        ]
    }
    assert stored[2]["caption"] == "png"
    assert stored[2]["photo"][-1]["width"] == 512  # the fake read our PNG's header
    assert "video" in stored[3]
    assert stored[4]["audio"]["file_name"] == "song.mp3"
    assert "voice" in stored[5]
    assert stored[6]["document"]["file_name"] == "a.pdf"
    assert "animation" in stored[7]
    assert "sticker" in stored[8]
    album = [m for m in stored if m.get("media_group_id")]
    assert [m["message_id"] for m in album] == group.raw["message_ids"]
    assert album[0]["caption"] == "one"


@pytest.mark.usefixtures("bot")
async def test_location_reaches_the_fake_as_send_location(env: Env) -> None:
    sent = await client(env).send(
        account(), command(OutLocation(latitude=50.45, longitude=30.52), reply_to=None)
    )
    [record] = env.box.recorder.requests(provider="telegram", method="sendLocation")
    assert record.ok
    assert record.params["latitude"] == pytest.approx(50.45)
    stored = env.box.telegram.messages(TG_TOKEN, 42)
    assert stored[-1]["message_id"] == int(sent.provider_message_id)
    assert stored[-1]["location"] == {"latitude": 50.45, "longitude": 30.52}


@pytest.mark.usefixtures("bot")
async def test_the_same_bytes_are_uploaded_once_per_bot(env: Env) -> None:
    cache = InMemoryFileIdCache()
    tg = client(env, cache)
    for chat in ("42", "43", "44"):
        await tg.send(account(), command(media("photo", data=PNG), recipient=chat))
    await tg.send(account(), command(media("document", url="https://cdn.test/x.pdf")))
    await tg.send(
        account(), command(media("document", url="https://cdn.test/x.pdf"), recipient="43")
    )
    photos = env.box.recorder.requests(provider="telegram", method="sendPhoto")
    assert [str(r.params["photo"]).startswith("<upload") for r in photos] == [True, False, False]
    docs = env.box.recorder.requests(provider="telegram", method="sendDocument")
    assert docs[0].params["document"] == "https://cdn.test/x.pdf"
    assert docs[1].params["document"] != "https://cdn.test/x.pdf"
    largest = env.box.telegram.messages(TG_TOKEN, 42)[0]["photo"][-1]["file_id"]
    assert photos[1].params["photo"] == largest
    assert all(r.ok for r in photos + docs)


@pytest.mark.usefixtures("bot")
async def test_a_forced_429_is_rate_limited_with_retry_after(env: Env) -> None:
    limits = env.box.config.telegram.limits
    limits.enabled = True
    limits.private_chat = TokenBucket(rate=0.25, burst=1)
    tg = client(env)
    await tg.send(account(), command(text("one")))
    with pytest.raises(ProviderError) as caught:
        await tg.send(account(), command(text("two")))
    assert_error(
        caught.value, Failure.RATE_LIMITED, "telegram_429", retry_after=4.0, scope=Scope.ACCOUNT
    )
    assert caught.value.reason == "Too Many Requests: retry after 4"
    env.clock.advance(4.0)
    await tg.send(account(), command(text("three")))


@pytest.mark.usefixtures("bot")
async def test_permanent_errors_from_the_fake(env: Env) -> None:
    tg = client(env)
    env.box.telegram.add_chat(TG_TOKEN, 77)
    env.box.telegram.block_chat(TG_TOKEN, 77)
    with pytest.raises(ProviderError) as caught:
        await tg.send(account(), command(text(), recipient="77"))
    assert_error(caught.value, Failure.PERMANENT, "telegram_403")
    assert caught.value.reason == "Forbidden: bot was blocked by the user"

    env.box.config.telegram.strict_chats = True
    with pytest.raises(ProviderError) as caught:
        await tg.send(account(), command(text(), recipient="999"))
    assert_error(caught.value, Failure.PERMANENT, "telegram_400")
    assert caught.value.reason == "Bad Request: chat not found"

    with pytest.raises(ProviderError) as caught:
        await tg.send(account(), command(text("x" * 4097), recipient="77"))
    assert caught.value.code in ("telegram_400", "telegram_403")

    with pytest.raises(ProviderError) as caught:
        await tg.send(account(secrets={"token": "123456789:wrong"}), command(text()))
    # the token is the account's problem, not the message's: the account waits for it
    assert_error(caught.value, Failure.UNAUTHORIZED, "telegram_401")

    with pytest.raises(ProviderError) as caught:
        await tg.send(account(), command(media("photo", file_id="nonsense"), recipient="77"))
    assert caught.value.failure is Failure.PERMANENT


@pytest.mark.usefixtures("bot")
async def test_server_errors_and_resets_are_retryable(env: Env) -> None:
    tg = client(env)
    env.box.set_fault("telegram", TG_TOKEN, error_rate=1.0, error_status=502)
    with pytest.raises(ProviderError) as caught:
        await tg.send(account(), command(text()))
    assert_error(caught.value, Failure.RETRYABLE, "telegram_502")
    env.box.set_fault("telegram", TG_TOKEN, reset_rate=1.0)
    with pytest.raises(ProviderError) as caught:
        await tg.send(account(), command(text()))
    assert_error(caught.value, Failure.RETRYABLE, "telegram_network")
    env.box.clear_faults()
    await tg.send(account(), command(text()))


@pytest.mark.usefixtures("bot")
async def test_the_answer_names_the_chat_s_kind_and_title(env: Env) -> None:
    """A post to a channel was recorded as a private chat without a title (the CRM opened
    a private conversation for it): the Bot API's answer says what the chat is."""
    env.box.telegram.add_chat(TG_TOKEN, -1001234567890, "channel", title="Shop news")
    tg = client(env)
    post = await tg.send(account(), command(text("new stock"), recipient="-1001234567890"))
    assert (post.chat_id, post.chat_type, post.chat_title) == (
        "-1001234567890",
        "channel",
        "Shop news",
    )
    private = await tg.send(account(), command(text("hi"), message_id="m-2"))
    assert (private.chat_type, private.chat_title) == ("private", None)


@pytest.mark.usefixtures("bot")
async def test_a_caption_goes_with_its_parse_mode_and_is_measured_by_what_shows(env: Env) -> None:
    """A caption had no parse mode: a channel post's photo lost its bold, and HTML over
    1024 characters written out was refused though Telegram counts only what shows."""
    tg = client(env)
    caption = "".join(f"<b>{c}</b>" for c in "z" * 100) + "z" * 900  # 1000 shown, 1700 written
    photo = media("photo", data=PNG, caption=caption).model_copy(update={"parse_mode": "HTML"})
    await tg.send(account(), command(photo))
    single = env.box.recorder.requests(provider="telegram", ok=True)[-1]
    assert (single.method, single.params["parse_mode"]) == ("sendPhoto", "HTML")
    group = OutMediaGroup(items=(photo, media("photo", url="https://cdn.test/2.jpg")))
    album = await tg.send(account(), command(group, message_id="m-2"))
    assert len(album.raw["message_ids"]) == 2  # its caption measured as what shows, too
