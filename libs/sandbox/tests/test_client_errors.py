"""The fake answers errors the way the Bot API does (always JSON, right status), as judged
by two real clients: aiogram and python-telegram-bot pointed at the running sandbox."""

from __future__ import annotations

import pytest
import telegram
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramNotFound, TelegramUnauthorizedError
from telegram.error import EndPointNotFound, InvalidToken

from .conftest import TOKEN, TelegramEnv

WRONG = "987654321:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"  # well-formed, never registered


def aiogram_bot(env: TelegramEnv, token: str) -> Bot:
    server = TelegramAPIServer.from_base(env.url)
    return Bot(token, session=AiohttpSession(api=server))


async def test_aiogram_gets_unauthorized_for_a_wrong_token(tg: TelegramEnv) -> None:
    bot = aiogram_bot(tg, WRONG)
    try:
        with pytest.raises(TelegramUnauthorizedError, match="Unauthorized"):
            await bot.get_me()
    finally:
        await bot.session.close()


async def test_aiogram_works_with_the_right_token(tg: TelegramEnv) -> None:
    bot = aiogram_bot(tg, TOKEN)
    try:
        me = await bot.get_me()
        assert (me.id, me.username) == (123456789, "test_shop_bot")
        sent = await bot.send_message(chat_id=4242, text="hello")
        assert sent.text == "hello"
    finally:
        await bot.session.close()


async def test_ptb_gets_invalid_token_for_a_wrong_token(tg: TelegramEnv) -> None:
    bot = telegram.Bot(WRONG, base_url=f"{tg.url}/bot", base_file_url=f"{tg.url}/file/bot")
    with pytest.raises(InvalidToken):
        async with bot:
            await bot.get_me()


@pytest.mark.parametrize(
    ("path", "status", "description"),
    [
        (f"/bot{WRONG}/getMe", 401, "Unauthorized"),
        (f"/bot{WRONG}/noSuchMethod", 401, "Unauthorized"),
        (f"/bot{TOKEN}/noSuchMethod", 404, "Not Found"),
        ("/botnot-a-token/getMe", 404, "Not Found"),
        ("/bot/getMe", 404, "Not Found"),
        (f"/bot{TOKEN}", 404, "Not Found"),
        (f"/bot{TOKEN}/getMe/extra", 404, "Not Found"),
        ("/nothing/here", 404, "Not Found"),
    ],
)
async def test_every_error_is_the_bot_api_json(
    tg: TelegramEnv, path: str, status: int, description: str
) -> None:
    response = await tg.http.post(path, json={})
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {"ok": False, "error_code": status, "description": description}


async def test_aiogram_names_an_unknown_method_not_found(tg: TelegramEnv) -> None:
    """aiogram decodes the body before the status: the 404 must be the API's JSON."""
    from aiogram.methods import TelegramMethod
    from aiogram.types import User

    class NoSuchMethod(TelegramMethod[User]):
        __returning__ = User
        __api_method__ = "noSuchMethod"

    bot = aiogram_bot(tg, TOKEN)
    try:
        with pytest.raises(TelegramNotFound, match="Not Found"):
            await bot(NoSuchMethod())
    finally:
        await bot.session.close()


async def test_ptb_reads_the_json_not_found_of_an_unknown_method(tg: TelegramEnv) -> None:
    bot = telegram.Bot(TOKEN, base_url=f"{tg.url}/bot", base_file_url=f"{tg.url}/file/bot")
    async with bot:
        with pytest.raises(EndPointNotFound, match="noSuchMethod"):
            await bot.do_api_request("noSuchMethod")
