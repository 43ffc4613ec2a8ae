"""A sandbox with Telegram bots, served: the start of most end-to-end fixtures."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from switchboard.sandbox import Sandbox, SandboxConfig
from switchboard.sandbox.testing import serve


@asynccontextmanager
async def serve_telegram_sandbox(*bots: tuple[str, str]) -> AsyncIterator[tuple[Sandbox, str]]:
    """A sandbox with these Telegram bots (token, username), served until the block ends;
    yields it and its URL (more providers' accounts may be added to it while it runs)."""
    box = Sandbox(SandboxConfig())
    for token, username in bots:
        box.telegram.add_bot(token, username)
    async with serve(box.app()) as url:
        yield box, url
