"""The Viber REST bot API fake as a sandbox provider, with the Python API tests use directly."""

from __future__ import annotations

import functools
import random
from collections.abc import Mapping
from typing import Any

from starlette.responses import Response
from starlette.types import Scope

from switchboard.sandbox.messaging import MessagingProvider
from switchboard.sandbox.provider import Core, registered
from switchboard.sandbox.routes import RouteTable
from switchboard.sandbox.simulation import producer
from switchboard.sandbox.viber.api import ViberApi
from switchboard.sandbox.viber.callbacks import CallbackEmitter, check_webhook, target
from switchboard.sandbox.viber.config import ViberConfig
from switchboard.sandbox.viber.errors import http_error_response
from switchboard.sandbox.viber.events import content, user_event
from switchboard.sandbox.viber.state import (
    EVENT_TYPES,
    ViberBot,
    ViberState,
    ViberUser,
    ViberWebhook,
)
from switchboard.sandbox.viber.traffic import GeneratedCallback, ViberTraffic
from switchboard.sandbox.webhooks import OrderedDelivery

# The dev-stack demo bot (public sandbox values, not secrets).
DEMO_VIBER_TOKEN = "4453b6ac12345678-e02c5f12174805f9-daec9cbb5448c51f"  # noqa: S105
DEMO_VIBER_URI = "switchboard_demo"


class ViberProvider(MessagingProvider[ViberBot, GeneratedCallback]):
    """Fake Viber REST bot API: bots, subscribers, the unreplied limit, signed callbacks."""

    name = "viber"
    prefix = "/viber"
    account_param = "bot"
    accounts_key = "bots"
    generated_key = "callbacks"
    queue_name = "callbacks"

    def __init__(self, core: Core, config: ViberConfig | None = None) -> None:
        super().__init__(core)
        self.config: ViberConfig = config or ViberConfig()
        self.state: ViberState = ViberState(core, self.config)
        self.emitter = CallbackEmitter(self.state)
        self.workers.append(self.emitter)
        self.check_mix = ViberTraffic.mix.check
        self.produce = producer(functools.partial(ViberTraffic, self.state))
        self.api: ViberApi = ViberApi(self.state, self.emitter)
        # Registering a bot is the state's own: the Python API hands it straight through.
        self.add_bot = self.state.add_bot

    # -- Python API -------------------------------------------------------------------

    def add_demo_bot(self) -> ViberBot:
        """The dev-stack demo bot (DEMO_VIBER_TOKEN, uri `switchboard_demo`)."""
        return self.add_bot(DEMO_VIBER_TOKEN, "Switchboard Demo", uri=DEMO_VIBER_URI)

    def bot(self, ref: str | ViberBot) -> ViberBot:
        """A bot by uri, token, id, name or itself (KeyError if none)."""
        return registered(ref, ViberBot, self.state.find, "viber bot")

    async def set_webhook(
        self,
        bot: str | ViberBot,
        url: str,
        *,
        event_types: list[str] | None = None,
        send_name: bool = False,
        send_photo: bool = False,
    ) -> bool:
        """What set_webhook does, without HTTP: the `webhook` check POST, then callbacks
        flow. False (nothing changed) when the URL did not answer 200; "" removes it."""
        found = self.bot(bot)
        if not url:
            found.webhook = ViberWebhook()
            found.callbacks.set_target(None)
            return True
        if not await check_webhook(self.state, found, url):
            return False
        events = list(EVENT_TYPES) if event_types is None else list(event_types)
        found.webhook = ViberWebhook(url, events, send_name, send_photo)
        found.callbacks.set_target(target(self.state, found))
        return True

    def add_user(
        self,
        bot: str | ViberBot,
        user_id: str,
        name: str | None = None,
        *,
        subscribed: bool = True,
        **profile: Any,
    ) -> ViberUser:
        """Create or update a user (avatar, country, language, api_version)."""
        user = self.bot(bot).user(user_id)
        user.subscribed = subscribed
        if name:
            user.name = name
        for key, value in profile.items():
            if value is not None and hasattr(user, key):
                setattr(user, key, value)
        return user

    async def inject_event(
        self,
        bot: str | ViberBot,
        user_id: str,
        event: str = "message",
        *,
        message: Mapping[str, Any] | None = None,
        kind: str = "text",
        name: str | None = None,
        context: str | None = None,
        seed: int = 0,
    ) -> dict[str, Any]:
        """A user action delivered as a callback: `message` (default text, or the given
        `message` object), `subscribed`, `unsubscribed` or `conversation_started`."""
        found = self.bot(bot)
        is_new = user_id not in found.users
        user = found.user(user_id)
        if is_new and event == "conversation_started":
            user.subscribed = False
        if name:
            user.name = name
        if event == "message" and message is None:
            message = content(kind, random.Random(f"{seed}:{len(found.events)}"))
        return user_event(self.state, found, user, event, message=message, context=context)

    def sent_messages(
        self, bot: str | ViberBot, receiver: str | None = None
    ) -> list[dict[str, Any]]:
        """Messages the bot sent that the fake accepted, oldest first."""
        return [m for m in self.bot(bot).sent if receiver is None or m["receiver"] == receiver]

    def callbacks(self, bot: str | ViberBot, event: str | None = None) -> list[dict[str, Any]]:
        """Callback bodies raised for the bot (delivered or filtered), oldest first."""
        return [e for e in self.bot(bot).events if event is None or e["event"] == event]

    def generated_callbacks(
        self, bot: str | ViberBot | None = None, kind: str | None = None
    ) -> list[GeneratedCallback]:
        """Callbacks the generator produced, optionally for one bot and/or kind."""
        return self.generated_items(bot, kind)

    # -- Messaging provider hooks -----------------------------------------------------

    def find(self, ref: Any) -> ViberBot:
        return self.bot(ref)

    def account_key(self, account: ViberBot) -> str:
        return account.uri

    def accounts(self) -> dict[str, ViberBot]:
        return self.state.bots

    def queue_of(self, account: ViberBot) -> OrderedDelivery:
        return account.callbacks

    # -- Provider contract ------------------------------------------------------------

    def own_control_routes(self) -> RouteTable:
        from switchboard.sandbox.viber.control import control_routes

        return control_routes(self)

    def classify(self, scope: Scope) -> tuple[str | None, str | None]:
        return self.api.classify(scope)

    def error_response(self, status: int, description: str) -> Response:
        return http_error_response(status, description)
