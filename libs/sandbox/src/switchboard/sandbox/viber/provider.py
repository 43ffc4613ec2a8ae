"""The Viber REST bot API fake as a sandbox provider, with the Python API tests use directly."""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import Scope

from switchboard.sandbox.provider import Core
from switchboard.sandbox.traffic import JobRegistry
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
from switchboard.sandbox.viber.traffic import GeneratedCallback, generate

# The dev-stack demo bot (public sandbox values, not secrets).
DEMO_VIBER_TOKEN = "4453b6ac12345678-e02c5f12174805f9-daec9cbb5448c51f"  # noqa: S105
DEMO_VIBER_URI = "switchboard_demo"


class ViberProvider:
    """Fake Viber REST bot API: bots, subscribers, the unreplied limit, signed callbacks."""

    name = "viber"
    prefix = "/viber"

    def __init__(self, core: Core, config: ViberConfig | None = None) -> None:
        self.core = core
        self.config = config or ViberConfig()
        self.state = ViberState(core, self.config)
        self.emitter = CallbackEmitter(self.state)
        self.api = ViberApi(self.state, self.emitter)
        self.jobs = JobRegistry()
        self.generated: list[GeneratedCallback] = []

    # -- Python API -------------------------------------------------------------------

    def add_bot(
        self,
        token: str,
        name: str,
        *,
        uri: str | None = None,
        avatar: str | None = None,
        category: str = "Shopping",
    ) -> ViberBot:
        """Register a bot the API accepts with `X-Viber-Auth-Token: token`."""
        return self.state.add_bot(token, name, uri=uri, avatar=avatar, category=category)

    def add_demo_bot(self) -> ViberBot:
        """The dev-stack demo bot (DEMO_VIBER_TOKEN, uri `switchboard_demo`)."""
        return self.add_bot(DEMO_VIBER_TOKEN, "Switchboard Demo", uri=DEMO_VIBER_URI)

    def bot(self, ref: str | ViberBot) -> ViberBot:
        """A bot by uri, token, id, name or itself (KeyError if none)."""
        if isinstance(ref, ViberBot):
            return ref
        found = self.state.find(ref)
        if found is None:
            raise KeyError(f"no viber bot {ref!r} in the sandbox")
        return found

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
        found.callbacks.set_target(target(found))
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

    async def generate(
        self,
        bot: str | ViberBot,
        *,
        count: int | None = None,
        rate: float | None = None,
        duration: float | None = None,
        mix: Mapping[str, float] | None = None,
        seed: int = 0,
        users: int = 50,
    ) -> list[GeneratedCallback]:
        """Simulate users; every callback is also kept in `generated`."""
        return await generate(
            self.state,
            self.bot(bot),
            count=count,
            rate=rate,
            duration=duration,
            mix=mix,
            seed=seed,
            users=users,
            on_event=self.generated.append,
        )

    def generated_callbacks(
        self, bot: str | ViberBot | None = None, kind: str | None = None
    ) -> list[GeneratedCallback]:
        """Callbacks the generator produced, optionally for one bot and/or kind."""
        wanted = None if bot is None else self.bot(bot).uri
        return [
            g
            for g in self.generated
            if (wanted is None or g.bot == wanted) and (kind is None or g.kind == kind)
        ]

    async def wait_delivered(self, bot: str | ViberBot, timeout: float = 10.0) -> None:
        """Wait until the bot's callback queue is empty (TimeoutError otherwise)."""
        await self.bot(bot).callbacks.wait_drained(timeout, "callbacks")

    # -- Provider contract ------------------------------------------------------------

    def routes(self) -> list[BaseRoute]:
        return self.api.routes()

    def control_routes(self) -> list[BaseRoute]:
        from switchboard.sandbox.viber.control import control_routes

        return control_routes(self)

    def classify(self, scope: Scope) -> tuple[str | None, str | None]:
        return self.api.classify(scope)

    def error_response(self, status: int, description: str) -> Response:
        return http_error_response(status, description)

    def normalize_account(self, account: str) -> str:
        found = self.state.find(account)
        return found.uri if found else account

    def snapshot(self) -> dict[str, Any]:
        return {
            "bots": [b.summary() for b in self.state.bots.values()],
            "generated": len(self.generated),
            "config": {**self.config.settings_json(), "limits": self.config.limits.to_json()},
        }

    async def start(self) -> None:
        for bot in self.state.bots.values():
            bot.callbacks.resume()

    async def reset(self) -> None:
        await self.jobs.aclose()
        await self.emitter.aclose()
        await self.state.aclose()
        self.state.bots.clear()
        self.state.limiter.reset()
        self.generated.clear()
        self.jobs.clear()

    async def aclose(self) -> None:
        await self.jobs.aclose()
        await self.emitter.aclose()
        await self.state.aclose()
