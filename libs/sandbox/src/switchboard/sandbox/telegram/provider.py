"""The Telegram fake as a sandbox provider, with the Python API tests use directly."""

from __future__ import annotations

import copy
import json
import secrets
from collections.abc import Mapping
from typing import Any

from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import Scope

from switchboard.sandbox.provider import Core
from switchboard.sandbox.telegram.api import TelegramApi, classify
from switchboard.sandbox.telegram.config import TelegramConfig
from switchboard.sandbox.telegram.errors import TelegramError, error_response
from switchboard.sandbox.telegram.messages import sent_by
from switchboard.sandbox.telegram.methods.webhook import apply_webhook
from switchboard.sandbox.telegram.state import (
    TOKEN_PATTERN,
    TelegramState,
    TgBot,
    TgChat,
    WebhookSettings,
)
from switchboard.sandbox.telegram.traffic import GeneratedUpdate, generate
from switchboard.sandbox.telegram.updates import push_update
from switchboard.sandbox.traffic import JobRegistry

DEMO_TOKEN = "100000001:demo"  # noqa: S105  (public dev-stack contract, not a secret)
DEMO_USERNAME = "switchboard_demo_bot"


class TelegramProvider:
    """Fake Telegram Bot API: bots, chats, limits, webhook delivery and generated traffic."""

    name = "telegram"
    prefix = "/telegram"

    def __init__(self, core: Core, config: TelegramConfig | None = None) -> None:
        self.core = core
        self.config = config or TelegramConfig()
        self.state = TelegramState(core, self.config)
        self.api = TelegramApi(self.state)
        self.jobs = JobRegistry()
        self.generated: list[GeneratedUpdate] = []

    # -- Python API -------------------------------------------------------------------

    def add_bot(
        self, token: str, username: str | None = None, first_name: str | None = None
    ) -> TgBot:
        """Register a bot that the API will accept by `token`."""
        return self.state.add_bot(token, username, first_name)

    def add_demo_bot(self) -> TgBot:
        """The dev-stack contract: token `100000001:demo`, @switchboard_demo_bot."""
        return self.add_bot(DEMO_TOKEN, DEMO_USERNAME, "Switchboard Demo")

    def bot(self, ref: str | int | TgBot) -> TgBot:
        """A registered bot by token, id, username or the bot itself (KeyError if none)."""
        if isinstance(ref, TgBot):
            return ref
        found = self.state.find_bot(ref)
        if found is None:
            raise KeyError(f"no bot {ref!r} in the sandbox")
        return found

    def add_chat(
        self, bot: str | int | TgBot, chat_id: int, chat_type: str | None = None, **profile: Any
    ) -> TgChat:
        """Create or update a chat (private, group, supergroup, channel) of a bot."""
        return self.state.add_chat(self.bot(bot), chat_id, chat_type, **profile)

    def block_chat(self, bot: str | int | TgBot, chat_id: int, blocked: bool = True) -> TgChat:
        """Mark a chat as blocked by the user (or the bot as removed from a group)."""
        chat = self.state.resolve_chat(self.bot(bot), chat_id)
        chat.blocked = blocked
        return chat

    def messages(
        self, bot: str | int | TgBot, chat_id: int | None = None, sent_by_bot: bool = True
    ) -> list[dict[str, Any]]:
        """Messages stored in the bot's chats, oldest first (only the bot's by default)."""
        found = self.bot(bot)
        if chat_id is None:
            chats = list(found.chats.values())
        else:
            chats = [found.chats[chat_id]] if chat_id in found.chats else []
        out = [
            message
            for chat in chats
            for message in chat.messages.values()
            if not sent_by_bot or sent_by(found, message)
        ]
        return sorted(out, key=lambda m: (m["date"], m["chat"]["id"], m["message_id"]))

    def commands(
        self, bot: str | int | TgBot, scope: str = "default", language_code: str = ""
    ) -> list[dict[str, str]]:
        """The bot's command menu (setMyCommands) for a scope type and language."""
        key = (json.dumps({"type": scope}, sort_keys=True), language_code)
        return list(self.bot(bot).commands.get(key, []))

    def set_webhook(
        self,
        bot: str | int | TgBot,
        url: str,
        secret_token: str | None = None,
        allowed_updates: list[str] | None = None,
    ) -> None:
        """What setWebhook does, without HTTP (no URL checks); an empty url removes it."""
        found = self.bot(bot)
        apply_webhook(
            found,
            WebhookSettings(url=url, secret_token=secret_token, allowed_updates=allowed_updates),
        )

    async def enqueue_update(
        self, bot: str | int | TgBot, update: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        """Queue one Update (any update_id is replaced by the bot's next one).

        Returns the numbered update, or None when the bot's allowed_updates excludes it.
        """
        return push_update(self.bot(bot), dict(update))

    async def press_button(
        self, bot: str | int | TgBot, chat_id: int, message_id: int, callback_data: str
    ) -> dict[str, Any]:
        """The chat's user presses the inline button carrying ``callback_data`` under the
        bot's message ``message_id``: the callback query is queued as an Update and may be
        answered once with answerCallbackQuery. Returns the query (its ``id``)."""
        found = self.bot(bot)
        chat = found.chats.get(chat_id)
        message = None if chat is None else chat.messages.get(message_id)
        if chat is None or message is None or not sent_by(found, message):
            raise KeyError(f"no message {message_id} of the bot in chat {chat_id}")
        rows = message.get("reply_markup", {}).get("inline_keyboard", [])
        if not any(b.get("callback_data") == callback_data for row in rows for b in row):
            raise KeyError(f"message {message_id} has no button with {callback_data!r}")
        query_id = str(secrets.randbelow(9 * 10**18) + 10**18)
        found.callbacks[query_id] = False
        query = {
            "id": query_id,
            "from": chat.user_json(),
            "message": copy.deepcopy(message),
            "chat_instance": str(chat_id),
            "data": callback_data,
        }
        push_update(found, {"callback_query": query})
        return query

    async def generate(
        self,
        bot: str | int | TgBot,
        *,
        count: int | None = None,
        rate: float | None = None,
        duration: float | None = None,
        mix: Mapping[str, float] | None = None,
        seed: int = 0,
        users: int = 50,
    ) -> list[GeneratedUpdate]:
        """Simulate users writing to the bot; every update is also kept in `generated`."""
        return await generate(
            self.state,
            self.bot(bot),
            count=count,
            rate=rate,
            duration=duration,
            mix=mix,
            seed=seed,
            users=users,
            on_update=self.generated.append,
        )

    def generated_updates(
        self, bot: str | int | TgBot | None = None, kind: str | None = None
    ) -> list[GeneratedUpdate]:
        """Updates the generator produced, optionally for one bot and/or kind."""
        bot_id = None if bot is None else self.bot(bot).id
        return [
            g
            for g in self.generated
            if (bot_id is None or g.bot_id == bot_id) and (kind is None or g.kind == kind)
        ]

    async def wait_delivered(self, bot: str | int | TgBot, timeout: float = 10.0) -> None:
        """Wait until the bot's update queue is empty (TimeoutError otherwise)."""
        await self.bot(bot).updates.wait_drained(timeout, "updates")

    # -- Provider contract ------------------------------------------------------------

    def routes(self) -> list[BaseRoute]:
        return self.api.routes()

    def control_routes(self) -> list[BaseRoute]:
        from switchboard.sandbox.telegram.control import control_routes

        return control_routes(self)

    def classify(self, scope: Scope) -> tuple[str | None, str | None]:
        return classify(scope)

    def error_response(self, status: int, description: str) -> Response:
        return error_response(TelegramError(status, description))

    def normalize_account(self, account: str) -> str:
        match = TOKEN_PATTERN.match(account)
        if match:
            return match.group(1)
        found = self.state.find_bot(account)
        return str(found.id) if found else account

    def snapshot(self) -> dict[str, Any]:
        return {
            "bots": [bot.summary() for bot in self.state.bots.values()],
            "generated": len(self.generated),
            "config": {
                "strict_chats": self.config.strict_chats,
                "limits": self.config.limits.to_json(),
            },
        }

    async def start(self) -> None:
        for bot in self.state.bots.values():
            bot.updates.resume()

    async def reset(self) -> None:
        await self.jobs.aclose()
        await self.state.aclose()
        self.state.bots.clear()
        self.state.limiter.reset()
        self.generated.clear()
        self.jobs.clear()

    async def aclose(self) -> None:
        await self.jobs.aclose()
        await self.state.aclose()
