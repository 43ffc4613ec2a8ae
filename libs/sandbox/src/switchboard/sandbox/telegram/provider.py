"""The Telegram fake as a sandbox provider, with the Python API tests use directly."""

from __future__ import annotations

import copy
import functools
import json
import secrets
from collections.abc import Mapping
from typing import Any

from starlette.responses import Response
from starlette.types import Scope

from switchboard.sandbox.messaging import MessagingProvider
from switchboard.sandbox.provider import Core, registered
from switchboard.sandbox.routes import RouteTable
from switchboard.sandbox.simulation import producer
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
from switchboard.sandbox.telegram.traffic import GeneratedUpdate, TelegramTraffic
from switchboard.sandbox.telegram.updates import push_update
from switchboard.sandbox.webhooks import OrderedDelivery

DEMO_TOKEN = "100000001:demo"  # noqa: S105  (public dev-stack contract, not a secret)
DEMO_USERNAME = "switchboard_demo_bot"


class TelegramProvider(MessagingProvider[TgBot, GeneratedUpdate]):
    """Fake Telegram Bot API: bots, chats, limits, webhook delivery and generated traffic."""

    name = "telegram"
    prefix = "/telegram"
    account_param = "bot"
    accounts_key = "bots"
    generated_key = "updates"
    queue_name = "updates"

    def __init__(self, core: Core, config: TelegramConfig | None = None) -> None:
        super().__init__(core)
        self.config: TelegramConfig = config or TelegramConfig()
        self.state: TelegramState = TelegramState(core, self.config)
        self.check_mix = TelegramTraffic.mix.check
        self.produce = producer(functools.partial(TelegramTraffic, self.state))
        self.api: TelegramApi = TelegramApi(self.state)
        # Registering a bot is the state's own: the Python API hands it straight through.
        self.add_bot = self.state.add_bot

    # -- Python API -------------------------------------------------------------------

    def add_demo_bot(self) -> TgBot:
        """The dev-stack contract: token `100000001:demo`, @switchboard_demo_bot."""
        return self.add_bot(DEMO_TOKEN, DEMO_USERNAME, "Switchboard Demo")

    def bot(self, ref: str | int | TgBot) -> TgBot:
        """A registered bot by token, id, username or the bot itself (KeyError if none)."""
        return registered(ref, TgBot, self.state.find_bot, "bot")

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

    def generated_updates(
        self, bot: str | int | TgBot | None = None, kind: str | None = None
    ) -> list[GeneratedUpdate]:
        """Updates the generator produced, optionally for one bot and/or kind."""
        return self.generated_items(bot, kind)

    # -- Messaging provider hooks -----------------------------------------------------

    def find(self, ref: Any) -> TgBot:
        return self.bot(ref)

    def account_key(self, account: TgBot) -> str:
        return str(account.id)

    def accounts(self) -> dict[int, TgBot]:
        return self.state.bots

    def queue_of(self, account: TgBot) -> OrderedDelivery:
        return account.updates

    # -- Provider contract ------------------------------------------------------------

    def own_control_routes(self) -> RouteTable:
        from switchboard.sandbox.telegram.control import control_routes

        return control_routes(self)

    def classify(self, scope: Scope) -> tuple[str | None, str | None]:
        return classify(scope)

    def error_response(self, status: int, description: str) -> Response:
        return error_response(TelegramError(status, description))

    def normalize_account(self, account: str) -> str:
        match = TOKEN_PATTERN.match(account)  # a token names its bot's id, registered or not
        return match.group(1) if match else super().normalize_account(account)
