"""A sandbox with Telegram bots, served: the start of most end-to-end fixtures."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from switchboard.sandbox import Sandbox, SandboxConfig
from switchboard.sandbox.testing import serve


@asynccontextmanager
async def serve_telegram_sandbox(
    *bots: tuple[str, str],
) -> AsyncIterator[tuple[Sandbox, str, AsyncExitStack]]:
    """A sandbox with these Telegram bots (token, username), served until the block ends;
    yields it, its URL and a stack for what runs against it (closed before the sandbox
    stops). More providers' accounts may be added to it while it runs."""
    box = Sandbox(SandboxConfig())
    for token, username in bots:
        box.telegram.add_bot(token, username)
    async with serve(box.app()) as url, AsyncExitStack() as stack:
        yield box, url, stack
