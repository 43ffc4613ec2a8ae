"""One of the 3 aiogram processes of `just bench peers`.

Runs in the peers' own virtual environment (never the project's). aiogram 3 has no
outbound limiter, so this is the broadcast loop aiogram's broadcast example recommends:
one message after another, a pause of SPACING seconds between them (the example's "20
messages per second" under Telegram's 30), and on TelegramRetryAfter a sleep of exactly
retry_after before sending the same message again (up to MAX_RETRIES times). Message i goes
to chat FIRST + i, from process i % PROCS. Prints one JSON line: sent, failed.
Usage: aiogram_broadcast.py API_BASE TOKEN FIRST_CHAT COUNT INDEX PROCS MAX_RETRIES SPACING
"""

import asyncio
import json
import sys

from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramAPIError, TelegramRetryAfter


async def main() -> None:
    base, token, first, count, index, procs, retries, spacing = sys.argv[1:9]
    session = AiohttpSession(api=TelegramAPIServer.from_base(base))
    bot = Bot(token, session=session)
    sent = failed = 0
    try:
        for i in range(int(count)):
            if i % int(procs) != int(index):
                continue
            for _ in range(int(retries) + 1):
                try:
                    await bot.send_message(chat_id=int(first) + i, text=f"peer {i}")
                    sent += 1
                    break
                except TelegramRetryAfter as e:
                    await asyncio.sleep(e.retry_after)
                except TelegramAPIError:
                    break
            await asyncio.sleep(float(spacing))
        failed = len(range(int(index), int(count), int(procs))) - sent
    finally:
        await session.close()
    print(json.dumps({"sent": sent, "failed": failed}), flush=True)


asyncio.run(main())
