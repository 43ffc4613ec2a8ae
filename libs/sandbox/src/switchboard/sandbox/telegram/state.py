"""The Telegram fake's world: bots, their chats and messages, files and update queues."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from typing import Any

import httpx

from switchboard.sandbox.messaging import MessagingState
from switchboard.sandbox.provider import Core
from switchboard.sandbox.telegram.config import TelegramConfig
from switchboard.sandbox.telegram.errors import CHAT_NOT_FOUND, bad_request
from switchboard.sandbox.telegram.files import FileStore
from switchboard.sandbox.webhooks import DeliveryFailure, OrderedDelivery

CHAT_TYPES = ("private", "group", "supergroup", "channel")
TOKEN_PATTERN = re.compile(r"^(\d{1,20}):([A-Za-z0-9_-]{1,100})$")
SUPERGROUP_BASE = -1_000_000_000_000


@dataclass
class TgChat:
    """A chat as one bot sees it; for private chats the user's profile lives here too."""

    id: int
    type: str
    title: str | None = None
    username: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    language_code: str | None = None
    blocked: bool = False
    next_message_id: int = 1
    messages: dict[int, dict[str, Any]] = field(default_factory=dict, repr=False)

    def to_json(self) -> dict[str, Any]:
        """The Chat object of messages."""
        out: dict[str, Any] = {"id": self.id}
        if self.type == "private":
            out["first_name"] = self.first_name or "User"
            if self.last_name:
                out["last_name"] = self.last_name
        else:
            out["title"] = self.title or f"Chat {self.id}"
        if self.username:
            out["username"] = self.username
        out["type"] = self.type
        if self.type == "group":
            out["all_members_are_administrators"] = True
        return out

    def user_json(self) -> dict[str, Any]:
        """The User on the other side of a private chat."""
        out: dict[str, Any] = {
            "id": self.id,
            "is_bot": False,
            "first_name": self.first_name or "User",
        }
        if self.last_name:
            out["last_name"] = self.last_name
        if self.username:
            out["username"] = self.username
        if self.language_code:
            out["language_code"] = self.language_code
        return out

    def take_message_id(self) -> int:
        value = self.next_message_id
        self.next_message_id += 1
        return value

    def summary(self) -> dict[str, Any]:
        return {
            **self.to_json(),
            "blocked": self.blocked,
            "messages": len(self.messages),
            "language_code": self.language_code,
        }


@dataclass
class WebhookSettings:
    """What setWebhook configured."""

    url: str = ""
    secret_token: str | None = None
    max_connections: int = 40
    allowed_updates: list[str] | None = None


@dataclass
class TgBot:
    """One bot account: identity, chats, files, webhook and its update queue."""

    id: int
    token: str
    username: str
    first_name: str
    files: FileStore
    updates: OrderedDelivery
    chats: dict[int, TgChat] = field(default_factory=dict)
    webhook: WebhookSettings = field(default_factory=WebhookSettings)
    next_update_id: int = 1
    callbacks: dict[str, bool] = field(default_factory=dict)
    # setMyCommands: the menu per (scope as canonical JSON, language_code), and every call
    commands: dict[tuple[str, str], list[dict[str, str]]] = field(default_factory=dict)
    command_calls: list[dict[str, Any]] = field(default_factory=list)

    def user(self) -> dict[str, Any]:
        """The bot as the `from` User of its messages."""
        return {
            "id": self.id,
            "is_bot": True,
            "first_name": self.first_name,
            "username": self.username,
        }

    def me(self) -> dict[str, Any]:
        """The getMe result."""
        return {
            **self.user(),
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "token": self.token,
            "username": self.username,
            "first_name": self.first_name,
            "chats": len(self.chats),
            "files": len(self.files),
            "webhook_url": self.webhook.url,
            "pending_update_count": self.updates.pending,
            "delivered_updates": self.updates.delivered,
        }


def describe_webhook_failure(failure: DeliveryFailure) -> str:
    """getWebhookInfo's `last_error_message` wording."""
    if failure.status is not None:
        return f"Wrong response from the webhook: {failure.status} {failure.reason or ''}".strip()
    error = failure.error
    if isinstance(error, httpx.ConnectTimeout):
        return "Connection timed out"
    if isinstance(error, httpx.TimeoutException):
        return "Read timeout expired"
    if isinstance(error, httpx.ConnectError):
        return "Connection refused"
    return "Connection reset by peer"


class TelegramState(MessagingState[TelegramConfig]):
    """All bots of the fake."""

    def __init__(self, core: Core, config: TelegramConfig) -> None:
        super().__init__(core, config)
        self.bots: dict[int, TgBot] = {}

    def add_bot(
        self, token: str, username: str | None = None, first_name: str | None = None
    ) -> TgBot:
        """Register a bot that the API will accept by `token` (or update the one with the
        same id) and return it."""
        match = TOKEN_PATTERN.match(token)
        if not match:
            raise ValueError("a bot token looks like <digits>:<letters, digits, _ or ->")
        bot_id = int(match.group(1))
        existing = self.bots.get(bot_id)
        if existing is not None:
            existing.token = token
            existing.username = username or existing.username
            existing.first_name = first_name or existing.first_name
            return existing
        start = random.Random(f"{self.config.seed}:{bot_id}").randrange(100_000_000, 900_000_000)
        bot = TgBot(
            id=bot_id,
            token=token,
            username=username or f"bot{bot_id}_bot",
            first_name=first_name or (username or f"Bot {bot_id}").removesuffix("_bot"),
            files=FileStore(bot_id, self.config.seed, self.config.max_download),
            updates=self.core.webhook_queue(
                "telegram", str(bot_id), self.config.webhook_retry, describe_webhook_failure
            ),
            next_update_id=start,
        )
        self.bots[bot_id] = bot
        return bot

    def by_token(self, token: str) -> TgBot | None:
        match = TOKEN_PATTERN.match(token)
        if not match:
            return None
        bot = self.bots.get(int(match.group(1)))
        return bot if bot is not None and bot.token == token else None

    def find_bot(self, ref: str | int) -> TgBot | None:
        """A bot by token, numeric id or username (with or without @)."""
        text = str(ref).strip()
        if text.isdigit():
            return self.bots.get(int(text))
        if ":" in text:
            return self.by_token(text)
        name = text.lstrip("@").lower()
        return next((b for b in self.bots.values() if b.username.lower() == name), None)

    async def remove(self, bot: TgBot) -> None:
        await bot.updates.aclose()
        self.bots.pop(bot.id, None)
        self.limiter.reset(f"bot:{bot.id}")

    def add_chat(
        self, bot: TgBot, chat_id: int, chat_type: str | None = None, **profile: Any
    ) -> TgChat:
        """Create or update a chat of `bot`; the type defaults from the id's sign."""
        kind = chat_type or default_chat_type(chat_id)
        if kind not in CHAT_TYPES:
            raise ValueError(f"chat type must be one of {', '.join(CHAT_TYPES)}")
        if (kind == "private") != (chat_id > 0):
            raise ValueError("private chats have positive ids, groups and channels negative")
        chat = bot.chats.get(chat_id)
        if chat is None:
            chat = TgChat(id=chat_id, type=kind)
            bot.chats[chat_id] = chat
        chat.type = kind
        for name, value in profile.items():
            if value is not None and hasattr(chat, name):
                setattr(chat, name, value)
        return chat

    def resolve_chat(self, bot: TgBot, ref: int | str | None) -> TgChat:
        """The target chat of a call; unknown ids are auto-created unless chats are strict."""
        if ref is None or ref == "":
            raise bad_request("chat_id is empty")
        if isinstance(ref, str):
            text = ref.strip()
            if text.startswith("@"):
                name = text[1:].lower()
                found = next(
                    (c for c in bot.chats.values() if c.username and c.username.lower() == name),
                    None,
                )
                if found is None:
                    raise bad_request(CHAT_NOT_FOUND)
                return found
            try:
                ref = int(text)
            except ValueError:
                raise bad_request(CHAT_NOT_FOUND) from None
        if isinstance(ref, bool) or not isinstance(ref, int) or ref == 0:
            raise bad_request(CHAT_NOT_FOUND)
        chat = bot.chats.get(ref)
        if chat is not None:
            return chat
        if self.config.strict_chats:
            raise bad_request(CHAT_NOT_FOUND)
        return self.add_chat(bot, ref)


def default_chat_type(chat_id: int) -> str:
    """Positive ids are users, -100... supergroups, other negative ids basic groups."""
    if chat_id > 0:
        return "private"
    return "supergroup" if chat_id < SUPERGROUP_BASE else "group"
