"""A real client library agrees with the fake: python-telegram-bot pointed at the sandbox."""

from __future__ import annotations

import datetime as dt

import pytest

from .conftest import ClockedEnv, TelegramEnv

pytest.importorskip("telegram", reason="python-telegram-bot comes with switchboard-sandbox[test]")
import telegram
from telegram.error import BadRequest, Forbidden, RetryAfter

PNG_640x480 = (
    bytes.fromhex("89504e470d0a1a0a0000000d49484452")
    + (640).to_bytes(4, "big")
    + (480).to_bytes(4, "big")
    + b"\x08\x06\x00\x00\x00"
    + b"\0" * 200
)


def client(env: TelegramEnv) -> telegram.Bot:
    return telegram.Bot(
        env.bot.token, base_url=f"{env.url}/bot", base_file_url=f"{env.url}/file/bot"
    )


async def test_get_me_send_message_and_send_photo(tg: TelegramEnv) -> None:
    async with client(tg) as bot:
        me = await bot.get_me()
        assert (me.id, me.username, me.is_bot) == (123456789, "test_shop_bot", True)
        keyboard = telegram.InlineKeyboardMarkup(
            [[telegram.InlineKeyboardButton("Buy", callback_data="buy:1")]]
        )
        message = await bot.send_message(chat_id=4242, text="Hello", reply_markup=keyboard)
        assert message.text == "Hello"
        assert message.chat.id == 4242
        assert message.from_user is not None
        assert message.from_user.id == me.id
        assert message.reply_markup == keyboard
        photo = await bot.send_photo(chat_id=4242, photo=PNG_640x480, caption="catalogue")
        assert photo.caption == "catalogue"
        assert (photo.photo[-1].width, photo.photo[-1].height) == (640, 480)
        assert photo.message_id == message.message_id + 1
        again = await bot.send_photo(chat_id=4243, photo=photo.photo[-1].file_id)
        assert again.photo[-1].file_id == photo.photo[-1].file_id
        file = await bot.get_file(photo.photo[-1].file_id)
        assert bytes(await file.download_as_bytearray()) == PNG_640x480


async def test_errors_surface_as_the_library_exceptions(tg: TelegramEnv) -> None:
    tg.sandbox.telegram.block_chat(tg.bot, 9999)
    async with client(tg) as bot:
        with pytest.raises(BadRequest, match="Message text is empty"):
            await bot.send_message(chat_id=1, text="")
        with pytest.raises(Forbidden, match="bot was blocked by the user"):
            await bot.send_message(chat_id=9999, text="hi")


async def test_429_surfaces_as_retry_after(
    clocked: ClockedEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PTB_TIMEDELTA", "true")  # the library's future, warning-free form
    async with client(clocked) as bot:
        for i in range(3):
            await bot.send_message(chat_id=77, text=str(i))
        with pytest.raises(RetryAfter) as caught:
            await bot.send_message(chat_id=77, text="one too many")
    retry_after = caught.value.retry_after
    seconds = retry_after.total_seconds() if isinstance(retry_after, dt.timedelta) else retry_after
    assert seconds == 1


async def test_set_my_commands_is_recorded_per_scope_and_language(tg: TelegramEnv) -> None:
    """A real client sets, reads and deletes a menu; the sandbox keeps it per scope and
    language and records every call (flows keep bot menus in step through it)."""
    async with client(tg) as bot:
        menu = [telegram.BotCommand("quote", "Get a quote"), telegram.BotCommand("help", "Help")]
        assert await bot.set_my_commands(menu)
        assert await bot.set_my_commands(
            [telegram.BotCommand("hilfe", "Hilfe")], language_code="de"
        )
        assert [c.command for c in await bot.get_my_commands()] == ["quote", "help"]
        assert [c.command for c in await bot.get_my_commands(language_code="de")] == ["hilfe"]
        assert tg.sandbox.telegram.commands(tg.bot) == [
            {"command": "quote", "description": "Get a quote"},
            {"command": "help", "description": "Help"},
        ]
        with pytest.raises(BadRequest, match=r"(?i)bot_command_invalid"):
            await bot.set_my_commands([telegram.BotCommand("Bad Command", "x")])
        assert await bot.delete_my_commands()
        assert await bot.get_my_commands() == ()
    calls = tg.sandbox.telegram.bot(tg.bot).command_calls
    assert [(c["method"], c["language_code"]) for c in calls] == [
        ("setMyCommands", ""),
        ("setMyCommands", "de"),
        ("deleteMyCommands", ""),
    ]
