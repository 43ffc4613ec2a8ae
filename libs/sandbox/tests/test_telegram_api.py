"""Bot API fake over real HTTP: results, error texts and request body formats."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from switchboard.sandbox.telegram.methods.editing import NOT_MODIFIED

from .conftest import TOKEN, TelegramEnv


def bad(description: str) -> dict[str, object]:
    return {"ok": False, "error_code": 400, "description": f"Bad Request: {description}"}


async def test_get_me_describes_the_bot(tg: TelegramEnv) -> None:
    response = await tg.call("getMe")
    assert response.status_code == 200
    me = response.json()["result"]
    assert me["id"] == 123456789
    assert me["is_bot"] is True
    assert me["username"] == "test_shop_bot"
    assert me["first_name"] == "Test Shop"


async def test_unknown_token_is_401_unauthorized(tg: TelegramEnv) -> None:
    for token in ("123456789:wrong", "999:nobody"):
        response = await tg.call("getMe", token=token)
        assert response.status_code == 401
        assert response.json() == {"ok": False, "error_code": 401, "description": "Unauthorized"}


async def test_malformed_token_is_404_not_found(tg: TelegramEnv) -> None:
    # The Bot API routes /bot<token>/ only for a well-formed token; anything else is a path
    # it does not know (PROTOCOLS, Telegram "Every error answer is JSON").
    response = await tg.call("getMe", token="garbage")
    assert response.status_code == 404
    assert response.json() == {"ok": False, "error_code": 404, "description": "Not Found"}


async def test_unknown_method_is_404_not_found(tg: TelegramEnv) -> None:
    response = await tg.call("sendTelepathy", chat_id=1, text="hi")
    assert response.status_code == 404
    assert response.json() == {"ok": False, "error_code": 404, "description": "Not Found"}


async def test_method_names_are_case_insensitive_and_get_works(tg: TelegramEnv) -> None:
    response = await tg.http.get(f"/bot{TOKEN}/SENDMESSAGE", params={"chat_id": 5, "text": "q"})
    assert response.json()["result"]["text"] == "q"
    records = tg.sandbox.recorder.requests(method="sendMessage")
    assert records[-1].method == "sendMessage"


async def test_message_ids_increase_per_chat(tg: TelegramEnv) -> None:
    ids = []
    for chat in (10, 20, 10, 10, 20):
        result = (await tg.call("sendMessage", chat_id=chat, text="x")).json()["result"]
        ids.append((chat, result["message_id"]))
    assert ids == [(10, 1), (20, 1), (10, 2), (10, 3), (20, 2)]


async def test_message_shape(tg: TelegramEnv) -> None:
    result = (await tg.call("sendMessage", chat_id=77, text="hello")).json()["result"]
    assert result["from"] == {
        "id": 123456789,
        "is_bot": True,
        "first_name": "Test Shop",
        "username": "test_shop_bot",
    }
    assert result["chat"]["id"] == 77
    assert result["chat"]["type"] == "private"
    assert isinstance(result["date"], int)
    assert result["text"] == "hello"


@pytest.mark.parametrize(
    ("params", "description"),
    [
        ({"chat_id": 1, "text": ""}, "message text is empty"),
        ({"chat_id": 1, "text": "   "}, "message text is empty"),
        ({"chat_id": 1}, "message text is empty"),
        ({"text": "hi"}, "chat_id is empty"),
        ({"chat_id": 1, "text": "x" * 4097}, "message is too long"),
        ({"chat_id": 1, "text": "<b>x</b>" * 4097, "parse_mode": "HTML"}, "message is too long"),
        ({"chat_id": "not-a-chat", "text": "hi"}, "chat not found"),
        ({"chat_id": "@nobody_here", "text": "hi"}, "chat not found"),
        ({"chat_id": 1, "text": "hi", "parse_mode": "BBCode"}, "unsupported parse_mode"),
        (
            {"chat_id": 1, "text": "hi", "reply_to_message_id": 999},
            "message to be replied not found",
        ),
    ],
)
async def test_send_message_validation_texts(
    tg: TelegramEnv, params: dict[str, Any], description: str
) -> None:
    response = await tg.call("sendMessage", **params)
    assert response.status_code == 400
    assert response.json() == bad(description)


async def test_exactly_4096_chars_is_accepted(tg: TelegramEnv) -> None:
    response = await tg.call("sendMessage", chat_id=1, text="я" * 4096)
    assert response.json()["ok"] is True


async def test_a_button_s_data_is_1_to_64_bytes(tg: TelegramEnv) -> None:
    def markup(data: str) -> str:
        return json.dumps({"inline_keyboard": [[{"text": "b", "callback_data": data}]]})

    ok = await tg.call("sendMessage", chat_id=1, text="hi", reply_markup=markup("x" * 64))
    assert ok.json()["ok"] is True
    for data in ("я" * 40, ""):  # 80 bytes; none
        r = await tg.call("sendMessage", chat_id=1, text="hi", reply_markup=markup(data))
        assert r.json() == bad("BUTTON_DATA_INVALID")


async def test_the_limit_counts_html_after_entities_parsing(tg: TelegramEnv) -> None:
    """As Telegram: 4096 characters shown, however much markup writes them."""
    text = "<b>x</b>" * 4096
    response = await tg.call("sendMessage", chat_id=1, text=text, parse_mode="HTML")
    assert response.json()["ok"] is True


async def test_strict_chats_refuse_unknown_ids(tg: TelegramEnv) -> None:
    tg.sandbox.telegram.config.strict_chats = True
    tg.sandbox.telegram.add_chat(tg.bot, 555, "private", first_name="Known")
    assert (await tg.call("sendMessage", chat_id=555, text="hi")).json()["ok"] is True
    response = await tg.call("sendMessage", chat_id=556, text="hi")
    assert response.json() == bad("chat not found")


async def test_blocked_chat_is_403(tg: TelegramEnv) -> None:
    tg.sandbox.telegram.block_chat(tg.bot, 31337)
    response = await tg.call("sendMessage", chat_id=31337, text="hi")
    assert response.status_code == 403
    assert response.json() == {
        "ok": False,
        "error_code": 403,
        "description": "Forbidden: bot was blocked by the user",
    }
    photo = await tg.call("sendPhoto", chat_id=31337, photo="https://example.com/a.jpg")
    assert photo.status_code == 403


async def test_auto_created_chat_types_follow_the_id(tg: TelegramEnv) -> None:
    chats = {}
    for chat_id in (42, -4242, -1001234567890):
        result = (await tg.call("sendMessage", chat_id=chat_id, text="x")).json()["result"]
        chats[chat_id] = result["chat"]["type"]
    assert chats == {42: "private", -4242: "group", -1001234567890: "supergroup"}


async def test_channel_by_username_posts_as_sender_chat(tg: TelegramEnv) -> None:
    tg.sandbox.telegram.add_chat(
        tg.bot, -1009876543210, "channel", title="News", username="shop_news"
    )
    result = (await tg.call("sendMessage", chat_id="@shop_news", text="post")).json()["result"]
    assert result["chat"] == {
        "id": -1009876543210,
        "title": "News",
        "username": "shop_news",
        "type": "channel",
    }
    assert result["sender_chat"]["id"] == -1009876543210
    assert "from" not in result


async def test_form_body_with_json_reply_markup(tg: TelegramEnv) -> None:
    markup = {"inline_keyboard": [[{"text": "Buy", "callback_data": "buy:1"}]]}
    response = await tg.http.post(
        f"/bot{TOKEN}/sendMessage",
        data={
            "chat_id": "-1001111111111",
            "text": "pick",
            "reply_markup": json.dumps(markup),
            "disable_notification": "true",
        },
    )
    result = response.json()["result"]
    assert result["chat"]["id"] == -1001111111111
    assert result["reply_markup"] == markup


async def test_form_body_with_broken_reply_markup(tg: TelegramEnv) -> None:
    response = await tg.http.post(
        f"/bot{TOKEN}/sendMessage", data={"chat_id": "1", "text": "x", "reply_markup": "{oops"}
    )
    assert response.json() == bad("can't parse reply keyboard markup JSON object")


async def test_multipart_upload_of_every_media_kind(tg: TelegramEnv) -> None:
    kinds = ("photo", "video", "audio", "voice", "document", "animation", "sticker")
    for chat, kind in enumerate(kinds, start=100):
        response = await tg.http.post(
            f"/bot{TOKEN}/send{kind.capitalize()}",
            data={"chat_id": str(chat)},
            files={kind: (f"file.{kind}", b"\x00\x01" * 500, "application/octet-stream")},
        )
        result = response.json()["result"]
        assert kind in result, kind
        media = result[kind][-1] if kind == "photo" else result[kind]
        assert media["file_id"]
        assert media["file_unique_id"]
        assert media["file_size"] == 1000


async def test_photo_sizes_follow_the_uploaded_image(tg: TelegramEnv) -> None:
    png = (
        bytes.fromhex("89504e470d0a1a0a0000000d49484452")
        + (1000).to_bytes(4, "big")
        + (500).to_bytes(4, "big")
        + b"\0" * 64
    )
    response = await tg.http.post(
        f"/bot{TOKEN}/sendPhoto",
        data={"chat_id": "3", "caption": "look"},
        files={"photo": ("a.png", png)},
    )
    result = response.json()["result"]
    sizes = [(p["width"], p["height"]) for p in result["photo"]]
    assert sizes == [(90, 45), (320, 160), (800, 400), (1000, 500)]
    assert result["caption"] == "look"


async def test_caption_limit(tg: TelegramEnv) -> None:
    ok = await tg.call("sendPhoto", chat_id=1, photo="https://x.test/p.jpg", caption="c" * 1024)
    assert ok.json()["ok"] is True
    response = await tg.call(
        "sendPhoto", chat_id=1, photo="https://x.test/p.jpg", caption="c" * 1025
    )
    assert response.json() == bad("message caption is too long")


async def test_missing_media_is_named(tg: TelegramEnv) -> None:
    response = await tg.call("sendVoice", chat_id=1)
    assert response.json() == bad("there is no voice in the request")


async def test_media_group_sizes(tg: TelegramEnv) -> None:
    one = [{"type": "photo", "media": "https://x.test/1.jpg"}]
    eleven = one * 11
    assert (await tg.call("sendMediaGroup", chat_id=1, media=one)).json() == bad(
        "media group must contain 2 to 10 items"
    )
    assert (await tg.call("sendMediaGroup", chat_id=1, media=eleven)).json() == bad(
        "Too much messages to send as an album"
    )
    mixed = [
        {"type": "document", "media": "https://x.test/a.pdf"},
        {"type": "photo", "media": "https://x.test/1.jpg"},
    ]
    assert (await tg.call("sendMediaGroup", chat_id=1, media=mixed)).json() == bad(
        "document can't be mixed with other media types"
    )


async def test_media_group_with_attached_uploads(tg: TelegramEnv) -> None:
    media = [
        {"type": "photo", "media": "attach://first", "caption": "album"},
        {"type": "video", "media": "attach://second"},
    ]
    response = await tg.http.post(
        f"/bot{TOKEN}/sendMediaGroup",
        data={"chat_id": "12", "media": json.dumps(media)},
        files={"first": ("1.jpg", b"\xff\xd8" + b"\0" * 100), "second": ("2.mp4", b"v" * 50)},
    )
    messages = response.json()["result"]
    assert [m["message_id"] for m in messages] == [1, 2]
    assert len({m["media_group_id"] for m in messages}) == 1
    assert "photo" in messages[0]
    assert messages[0]["caption"] == "album"
    assert "video" in messages[1]


async def test_edit_message_text(tg: TelegramEnv) -> None:
    sent = (await tg.call("sendMessage", chat_id=8, text="v1")).json()["result"]
    edited = await tg.call("editMessageText", chat_id=8, message_id=sent["message_id"], text="v2")
    result = edited.json()["result"]
    assert result["text"] == "v2"
    assert "edit_date" in result
    same = await tg.call("editMessageText", chat_id=8, message_id=sent["message_id"], text="v2")
    assert same.json() == bad(NOT_MODIFIED)
    missing = await tg.call("editMessageText", chat_id=8, message_id=999, text="v3")
    assert missing.json() == bad("message to edit not found")
    photo = (await tg.call("sendPhoto", chat_id=8, photo="https://x.test/p.jpg")).json()
    no_text = await tg.call(
        "editMessageText", chat_id=8, message_id=photo["result"]["message_id"], text="v3"
    )
    assert no_text.json() == bad("there is no text in the message to edit")


async def test_delete_message(tg: TelegramEnv) -> None:
    sent = (await tg.call("sendMessage", chat_id=8, text="bye")).json()["result"]
    first = await tg.call("deleteMessage", chat_id=8, message_id=sent["message_id"])
    assert first.json() == {"ok": True, "result": True}
    again = await tg.call("deleteMessage", chat_id=8, message_id=sent["message_id"])
    assert again.json() == bad("message to delete not found")


async def test_answer_callback_query(tg: TelegramEnv) -> None:
    generated = await tg.sandbox.telegram.generate(
        tg.bot, count=1, mix={"callback_query": 1}, seed=3
    )
    query_id = generated[0].update["callback_query"]["id"]
    first = await tg.call("answerCallbackQuery", callback_query_id=query_id, text="Done")
    assert first.json() == {"ok": True, "result": True}
    second = await tg.call("answerCallbackQuery", callback_query_id=query_id)
    assert second.json() == bad(
        "query is too old and response timeout expired or query ID is invalid"
    )


async def test_get_file_and_download(tg: TelegramEnv) -> None:
    content = b"%PDF-1.4 fake invoice"
    response = await tg.http.post(
        f"/bot{TOKEN}/sendDocument",
        data={"chat_id": "4"},
        files={"document": ("invoice.pdf", content, "application/pdf")},
    )
    document = response.json()["result"]["document"]
    assert document["file_name"] == "invoice.pdf"
    assert document["mime_type"] == "application/pdf"
    file = (await tg.call("getFile", file_id=document["file_id"])).json()["result"]
    assert file["file_path"].endswith(".pdf")
    assert file["file_size"] == len(content)
    download = await tg.http.get(f"/file/bot{TOKEN}/{file['file_path']}")
    assert download.content == content
    assert (await tg.call("getFile", file_id="nope")).json() == bad("invalid file_id")
    missing = await tg.http.get(f"/file/bot{TOKEN}/documents/none.pdf")
    assert missing.status_code == 404


async def test_file_ids_are_reusable_per_bot_and_type(tg: TelegramEnv) -> None:
    upload = await tg.http.post(
        f"/bot{TOKEN}/sendPhoto",
        data={"chat_id": "4"},
        files={"photo": ("p.jpg", b"\xff\xd8" + b"\0" * 300)},
    )
    sizes = upload.json()["result"]["photo"]
    reused = await tg.call("sendPhoto", chat_id=5, photo=sizes[-1]["file_id"])
    assert [p["file_id"] for p in reused.json()["result"]["photo"]] == [p["file_id"] for p in sizes]
    wrong_type = await tg.call("sendDocument", chat_id=5, document=sizes[-1]["file_id"])
    assert wrong_type.json() == bad("can't use file of type Photo as Document")
    unknown = await tg.call("sendPhoto", chat_id=5, photo="AgACAgIAAxkBAAIBY2VnZXNzZWQ")
    assert unknown.json() == bad("wrong file identifier/HTTP URL specified")
    other = "987654321:OtherBotSecretToken"
    tg.sandbox.telegram.add_bot(other, "other_bot")
    foreign = await tg.call("sendPhoto", token=other, chat_id=5, photo=sizes[-1]["file_id"])
    assert foreign.json() == bad("wrong file identifier/HTTP URL specified")


async def test_recorder_notes_outcomes(tg: TelegramEnv) -> None:
    mark = tg.sandbox.recorder.mark()
    await tg.call("sendMessage", chat_id=6, text="ok")
    await tg.call("sendMessage", chat_id=6, text="")
    records = tg.sandbox.recorder.requests(after=mark, chat=6)
    assert [(r.status, r.ok, r.description) for r in records] == [
        (200, True, None),
        (400, False, "Bad Request: message text is empty"),
    ]
    assert records[0].params == {"chat_id": 6, "text": "ok"}
    assert records[0].account == "123456789"
    listed = (
        await tg.http.get(
            "/_sandbox/requests", params={"method": "sendmessage", "status": 400, "after": mark}
        )
    ).json()
    assert listed["count"] == 1
    assert listed["requests"][0]["description"] == "Bad Request: message text is empty"


async def test_invalid_json_body(tg: TelegramEnv) -> None:
    response = await tg.http.post(
        f"/bot{TOKEN}/sendMessage",
        content=b"{not json",
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400
    assert isinstance(response, httpx.Response)


async def test_edit_message_caption_and_reply_markup(tg: TelegramEnv) -> None:
    keyboard = {"inline_keyboard": [[{"text": "A", "callback_data": "a"}]]}
    photo = (
        await tg.call("sendPhoto", chat_id=8, photo="https://x.test/p.jpg", caption="c1")
    ).json()["result"]
    edit = {
        "chat_id": 8,
        "message_id": photo["message_id"],
        "caption": "c2",
        "reply_markup": keyboard,
    }
    edited = await tg.call("editMessageCaption", **edit)
    result = edited.json()["result"]
    assert (result["caption"], result["reply_markup"]) == ("c2", keyboard)
    # the very same edit again changes nothing
    same = await tg.call("editMessageCaption", **edit)
    assert same.json() == bad(NOT_MODIFIED)
    text = (await tg.call("sendMessage", chat_id=8, text="t")).json()["result"]
    no_caption = await tg.call(
        "editMessageCaption", chat_id=8, message_id=text["message_id"], caption="x"
    )
    assert no_caption.json() == bad("there is no caption in the message to edit")
    markup = await tg.call(
        "editMessageReplyMarkup", chat_id=8, message_id=text["message_id"], reply_markup=keyboard
    )
    assert markup.json()["result"]["reply_markup"] == keyboard
    assert markup.json()["result"]["text"] == "t"
    removed = await tg.call("editMessageReplyMarkup", chat_id=8, message_id=text["message_id"])
    assert "reply_markup" not in removed.json()["result"]
    again = await tg.call("editMessageReplyMarkup", chat_id=8, message_id=text["message_id"])
    assert again.json() == bad(NOT_MODIFIED)


async def test_a_pressed_button_is_a_callback_query_answerable_once(tg: TelegramEnv) -> None:
    keyboard = {"inline_keyboard": [[{"text": "Yes", "callback_data": "yes"}]]}
    sent = (await tg.call("sendMessage", chat_id=8, text="ok?", reply_markup=keyboard)).json()
    message_id = sent["result"]["message_id"]
    unknown = await tg.http.post(
        "/_sandbox/telegram/bots/test_shop_bot/chats/8/press",
        json={"message_id": message_id, "callback_data": "no"},
    )
    assert unknown.status_code == 404
    pressed = await tg.http.post(
        "/_sandbox/telegram/bots/test_shop_bot/chats/8/press",
        json={"message_id": message_id, "callback_data": "yes"},
    )
    assert pressed.status_code == 202, pressed.text
    query = pressed.json()["callback_query"]
    assert (query["data"], query["message"]["message_id"]) == ("yes", message_id)
    updates = (await tg.call("getUpdates")).json()["result"]
    assert [u["callback_query"]["id"] for u in updates if "callback_query" in u] == [query["id"]]
    first = await tg.call("answerCallbackQuery", callback_query_id=query["id"], show_alert=True)
    assert first.json() == {"ok": True, "result": True}
    second = await tg.call("answerCallbackQuery", callback_query_id=query["id"])
    assert second.json()["ok"] is False
