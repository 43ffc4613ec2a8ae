"""getMe."""

from __future__ import annotations

from typing import Any

from switchboard.sandbox.telegram.methods.base import Call, method


@method("getMe")
async def get_me(call: Call) -> Any:
    return call.bot.me()
