"""One of the 3 python-telegram-bot processes of `just bench peers`.

Runs in the peers' own virtual environment (never the project's). Sends this process's
share of the broadcast (message i goes to chat FIRST + i, from process i % PROCS) through
an ExtBot with PTB's AIORateLimiter (30/s overall, PTB's defaults) and MAX_RETRIES retries
on RetryAfter, all sends concurrently as a broadcast with PTB would, with the connection
pool ApplicationBuilder gives a bot (256). Prints one JSON line: sent, failed.
Usage: ptb_broadcast.py API_BASE TOKEN FIRST_CHAT COUNT INDEX PROCS MAX_RETRIES
"""

import asyncio
import json
import sys

from telegram.error import TelegramError
from telegram.ext import AIORateLimiter, ExtBot
from telegram.request import HTTPXRequest


async def main() -> None:
    base, token, first, count, index, procs, retries = sys.argv[1:8]
    bot = ExtBot(
        token,
        base_url=f"{base}/bot",
        request=HTTPXRequest(connection_pool_size=256, pool_timeout=60),
        rate_limiter=AIORateLimiter(max_retries=int(retries)),
    )
    sent = failed = 0

    async def one(i: int) -> None:
        nonlocal sent, failed
        try:
            await bot.send_message(chat_id=int(first) + i, text=f"peer {i}")
            sent += 1
        except TelegramError:
            failed += 1

    async with bot:
        mine = [i for i in range(int(count)) if i % int(procs) == int(index)]
        await asyncio.gather(*(one(i) for i in mine))
    print(json.dumps({"sent": sent, "failed": failed}), flush=True)


asyncio.run(main())
