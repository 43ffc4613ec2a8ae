"""What a Bot API method handler receives and the registry that maps names to handlers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from switchboard.sandbox.recorder import RequestNote
from switchboard.sandbox.telegram.errors import TelegramError, blocked_by_user
from switchboard.sandbox.telegram.params import Params
from switchboard.sandbox.telegram.state import TelegramState, TgBot, TgChat


@dataclass
class Call:
    """One Bot API call: the bot, its parameters, the request note and the time."""

    state: TelegramState
    bot: TgBot
    params: Params
    note: RequestNote
    now: float
    date: int

    def chat(self, name: str = "chat_id") -> TgChat:
        """The chat named by `name`, also noted on the request record."""
        raw = self.params.values.get(name)
        if raw is not None:
            self.note.chat = str(raw)
        chat = self.state.resolve_chat(self.bot, raw)
        self.note.chat = str(chat.id)
        return chat


@dataclass(frozen=True)
class Answer:
    """A result with the optional `description` some methods add (setWebhook)."""

    result: Any
    description: str | None = None


Handler = Callable[[Call], Awaitable[Any]]
REGISTRY: dict[str, tuple[str, Handler]] = {}


def method(name: str) -> Callable[[Handler], Handler]:
    """Register a handler under its Bot API name (looked up case-insensitively)."""

    def register(handler: Handler) -> Handler:
        REGISTRY[name.lower()] = (name, handler)
        return handler

    return register


def ensure_reachable(chat: TgChat) -> None:
    """403 when the bot may not write to `chat` any more (blocked, kicked, removed)."""
    if not chat.blocked:
        return
    if chat.type == "private":
        raise blocked_by_user()
    if chat.type == "channel":
        raise TelegramError(403, "Forbidden: bot is not a member of the channel chat")
    raise TelegramError(403, f"Forbidden: bot was kicked from the {chat.type} chat")
