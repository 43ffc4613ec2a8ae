"""Simulated Viber users: messages of every kind, subscribing, opening and leaving chats.

Events go through the bot's callback queue, signed like Viber's, so ingest code is
exercised as in production; the fake's subscriptions follow along.
"""

from __future__ import annotations

import base64
import random
from dataclasses import dataclass
from typing import Any

from switchboard.sandbox.simulation import Mix, Simulation
from switchboard.sandbox.traffic import TrafficRequest
from switchboard.sandbox.viber.events import MESSAGE_KINDS, content, user_event
from switchboard.sandbox.viber.state import ViberBot, ViberState, ViberUser

DEFAULT_MIX: dict[str, float] = {
    "text": 45,
    "picture": 8,
    "video": 3,
    "file": 4,
    "sticker": 6,
    "contact": 2,
    "location": 2,
    "url": 3,
    "subscribed": 10,
    "conversation_started": 12,
    "unsubscribed": 5,
}
KINDS = (*MESSAGE_KINDS, "subscribed", "conversation_started", "unsubscribed")
_NAMES = ("Olena", "Taras", "Iryna", "Dmytro", "Anna", "Maksym", "Sofiia", "Andrii", "Kateryna")
_LANGS = ("uk", "en", "ru", "pl", "de")
_COUNTRIES = ("UA", "PL", "DE", "GB", "BY", "IL")


@dataclass(frozen=True)
class GeneratedCallback:
    """One callback the generator produced (`body` as queued; `queued` False when the bot's
    event_types filtered it out)."""

    bot: str
    kind: str
    body: dict[str, Any]
    queued: bool

    @property
    def account(self) -> str:
        return self.bot

    @property
    def payload(self) -> dict[str, Any]:
        return self.body


def new_user(bot: ViberBot, rng: random.Random, subscribed: bool) -> ViberUser:
    """A simulated user with a Viber-like id (base64 of 16 bytes)."""
    user_id = base64.b64encode(rng.randbytes(16)).decode()
    user = bot.user(user_id)
    user.name = rng.choice(_NAMES)
    user.language = rng.choice(_LANGS)
    user.country = rng.choice(_COUNTRIES)
    user.avatar = f"https://media-direct.cdn.viber.com/download_photo?dlid={user_id[:12]}"
    user.subscribed = subscribed
    return user


class ViberTraffic(Simulation[GeneratedCallback]):
    """Builds events for one bot from a pool of simulated users."""

    mix = Mix(DEFAULT_MIX, KINDS, "viber kinds")

    def __init__(self, state: ViberState, bot: ViberBot, request: TrafficRequest) -> None:
        super().__init__(request, f"viber:{bot.uri}")
        self.state = state
        self.bot = bot
        self.users: list[ViberUser] = []

    def make(self, kind: str) -> GeneratedCallback:
        """Produce one callback; an unsubscribe with nobody subscribed becomes a text."""
        if kind == "unsubscribed":
            subscribed = [u for u in self.users if u.subscribed]
            if subscribed:
                return self._done(kind, self.rng.choice(subscribed), "unsubscribed")
            kind = "text"
        if kind == "conversation_started":
            user = self._add(subscribed=False)
            return self._done(kind, user, kind, context=f"ref-{self.rng.randrange(1, 100)}")
        if kind == "subscribed":
            pending = [u for u in self.users if not u.subscribed]
            user = self.rng.choice(pending) if pending else self._add(subscribed=False)
            return self._done(kind, user, "subscribed")
        grow = len(self.users) < self.pool_size and self.rng.random() < 0.5
        user = self._add(subscribed=True) if grow or not self.users else self.rng.choice(self.users)
        return self._done(kind, user, "message", message=content(kind, self.rng))

    def _add(self, subscribed: bool) -> ViberUser:
        user = new_user(self.bot, self.rng, subscribed)
        self.users.append(user)
        if len(self.users) > self.pool_size:
            self.users.pop(0)
        return user

    def _done(
        self,
        kind: str,
        user: ViberUser,
        name: str,
        *,
        message: dict[str, Any] | None = None,
        context: str | None = None,
    ) -> GeneratedCallback:
        body = user_event(self.state, self.bot, user, name, message=message, context=context)
        return GeneratedCallback(self.bot.uri, kind, body, self.bot.webhook.wants(name))
