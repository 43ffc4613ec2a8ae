"""The Viber fake's world: bots (public accounts), their users, sent messages, callbacks."""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass, field
from typing import Any

from switchboard.sandbox.messaging import MessagingState
from switchboard.sandbox.provider import Core
from switchboard.sandbox.viber.config import ViberConfig
from switchboard.sandbox.webhooks import OrderedDelivery

CHAT_HOSTNAME = "SN-CHAT-01_"
EVENT_TYPES = ("delivered", "seen", "failed", "subscribed", "unsubscribed", "conversation_started")
MANDATORY_EVENTS = frozenset({"message", "subscribed", "unsubscribed", "webhook"})
URI_PATTERN = re.compile(r"^[a-z0-9_.-]{1,64}$")


@dataclass
class ViberUser:
    """A Viber user as one bot knows them; `subscribed` gates what the bot may send."""

    id: str
    name: str = "Viber User"
    avatar: str | None = None
    country: str = "UA"
    language: str = "en"
    api_version: int = 10
    subscribed: bool = True

    def to_json(self, send_name: bool = True, send_photo: bool = True) -> dict[str, Any]:
        """The `user`/`sender` object of callbacks (name and avatar as set_webhook asked)."""
        out: dict[str, Any] = {"id": self.id}
        if send_name:
            out["name"] = self.name
        if send_photo and self.avatar:
            out["avatar"] = self.avatar
        out |= {"country": self.country, "language": self.language}
        out["api_version"] = self.api_version
        return out

    def summary(self) -> dict[str, Any]:
        return {**self.to_json(), "subscribed": self.subscribed}


@dataclass
class ViberWebhook:
    """What set_webhook configured."""

    url: str = ""
    event_types: list[str] = field(default_factory=lambda: list(EVENT_TYPES))
    send_name: bool = False
    send_photo: bool = False

    def wants(self, event: str) -> bool:
        return event in MANDATORY_EVENTS or event in self.event_types


@dataclass
class ViberBot:
    """One bot: identity, token, webhook, users, sent messages and its callback queue."""

    id: str
    token: str
    name: str
    uri: str
    avatar: str
    category: str
    callbacks: OrderedDelivery
    rng: random.Random
    next_token: int
    webhook: ViberWebhook = field(default_factory=ViberWebhook)
    users: dict[str, ViberUser] = field(default_factory=dict)
    sent: list[dict[str, Any]] = field(default_factory=list, repr=False)
    events: list[dict[str, Any]] = field(default_factory=list, repr=False)
    # welcome messages (answers to conversation_started) Viber would refuse, and why
    welcome_refused: list[dict[str, str]] = field(default_factory=list, repr=False)

    def take_token(self) -> int:
        """A new message_token: 64-bit, increasing, as Viber's look."""
        value = self.next_token
        self.next_token += self.rng.randrange(1, 4096)
        return value

    def user(self, user_id: str) -> ViberUser:
        found = self.users.get(user_id)
        if found is None:
            found = ViberUser(id=user_id)
            self.users[user_id] = found
        return found

    def account_info(self) -> dict[str, Any]:
        """The get_account_info result (without status)."""
        return {
            "id": self.id,
            "chat_hostname": CHAT_HOSTNAME,
            "name": self.name,
            "uri": self.uri,
            "icon": self.avatar,
            "background": "https://example.invalid/viber/background.jpg",
            "category": self.category,
            "subcategory": self.category,
            "location": {"lon": 0.0, "lat": 0.0},
            "country": "UA",
            "webhook": self.webhook.url,
            "event_types": list(self.webhook.event_types),
            "subscribers_count": sum(1 for u in self.users.values() if u.subscribed),
            "members": [
                {"id": "01234567890A=", "name": "Admin", "avatar": self.avatar, "role": "admin"}
            ],
        }

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "uri": self.uri,
            "name": self.name,
            "token": self.token,
            "webhook": self.webhook.url,
            "event_types": list(self.webhook.event_types),
            "users": len(self.users),
            "subscribers": sum(1 for u in self.users.values() if u.subscribed),
            "sent": len(self.sent),
            "pending_callbacks": self.callbacks.pending,
            "delivered_callbacks": self.callbacks.delivered,
            "welcome_refused": list(self.welcome_refused),
        }


@dataclass(frozen=True)
class ViberMedia:
    """A file on the fake media CDN."""

    id: str
    data: bytes
    file_name: str
    mime_type: str

    @property
    def path(self) -> str:
        return f"/media/{self.id}/{self.file_name}"


class ViberState(MessagingState[ViberConfig]):
    """All bots of the fake, and the files customers sent."""

    def __init__(self, core: Core, config: ViberConfig) -> None:
        super().__init__(core, config)
        self.bots: dict[str, ViberBot] = {}
        # Files customers sent, as Viber's media CDN serves them: by id, no token needed.
        self.media: dict[str, ViberMedia] = {}

    def add_media(self, data: bytes, file_name: str, mime_type: str) -> ViberMedia:
        """Hold a file a customer sends; its URL path is `/media/<id>/<file_name>`."""
        media = ViberMedia(hashlib.sha256(data + file_name.encode()).hexdigest()[:32],
                           data, file_name, mime_type)  # fmt: skip
        self.media[media.id] = media
        return media

    def add_bot(
        self,
        token: str,
        name: str,
        *,
        uri: str | None = None,
        avatar: str | None = None,
        category: str = "Shopping",
    ) -> ViberBot:
        """Register a bot the API accepts with `X-Viber-Auth-Token: token` (or update the one
        with the same uri) and return it."""
        if not token or not token.strip():
            raise ValueError("token is required")
        key = (uri or re.sub(r"[^a-z0-9_.-]", "", name.lower())).lower()
        if not URI_PATTERN.match(key):
            raise ValueError("uri is 1-64 of a-z 0-9 _ . -")
        taken = self.by_token(token)
        if taken is not None and taken.uri != key:
            raise ValueError(f"token already belongs to bot {taken.uri!r}")
        existing = self.bots.get(key)
        if existing is not None:
            existing.token, existing.name = token, name
            existing.avatar = avatar or existing.avatar
            return existing
        rng = random.Random(f"{self.config.seed}:viber:{key}")
        bot = ViberBot(
            id=f"pa:{rng.randrange(10**18, 10**19)}",
            token=token,
            name=name,
            uri=key,
            avatar=avatar or f"https://example.invalid/viber/{key}.jpg",
            category=category,
            callbacks=self.core.webhook_queue("viber", key, self.config.webhook_retry),
            rng=rng,
            next_token=rng.randrange(4 * 10**18, 5 * 10**18),
        )
        self.bots[key] = bot
        return bot

    def by_token(self, token: str) -> ViberBot | None:
        return next((b for b in self.bots.values() if b.token == token), None)

    def find(self, ref: str) -> ViberBot | None:
        """A bot by uri (with or without @), token, id or name."""
        text = str(ref).strip()
        found = self.bots.get(text.lstrip("@").lower()) or self.by_token(text)
        if found is not None:
            return found
        return next((b for b in self.bots.values() if text in (b.id, b.name)), None)

    async def remove(self, bot: ViberBot) -> None:
        await bot.callbacks.aclose()
        self.bots.pop(bot.uri, None)
        self.limiter.reset(f"viber:{bot.uri}:")
