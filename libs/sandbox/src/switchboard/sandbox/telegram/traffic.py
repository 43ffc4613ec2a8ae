"""Simulated users writing to a bot: real-shaped Updates in a configurable mix.

Generated updates go through the bot's update queue, so a webhook receiver sees them
exactly as it would see Telegram's; the fake's own state follows along (user messages are
stored, files become reusable, a user who blocks the bot blocks the chat).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from switchboard.sandbox.simulation import Mix, Simulation
from switchboard.sandbox.telegram.state import TelegramState, TgBot, TgChat
from switchboard.sandbox.telegram.updates import push_update
from switchboard.sandbox.traffic import TrafficRequest

DEFAULT_MIX: dict[str, float] = {
    "text": 45,
    "photo": 10,
    "voice": 6,
    "document": 5,
    "sticker": 6,
    "video": 4,
    "location": 2,
    "contact": 2,
    "edited_message": 7,
    "callback_query": 10,
    "my_chat_member": 3,
}
KINDS = tuple(DEFAULT_MIX)

_FIRST = (
    "Anna",
    "Ivan",
    "Maria",
    "Oleg",
    "Sofia",
    "Liam",
    "Emma",
    "Noah",
    "Mia",
    "Lucas",
    "Olga",
    "Pavel",
    "Chen",
    "Aisha",
    "Mateo",
    "Yuki",
    "Omar",
    "Lea",
    "Sara",
    "Tomas",
)
_LAST = ("Petrova", "Smith", "Garcia", "Kowalski", "Novak", "Rossi", "Muller", None, None)
_LANGS = ("en", "ru", "uk", "de", "es", "pt-br", "it", "fr", "pl", "tr")
_PHRASES = (
    "Hi! Is this still available?",
    "How much does delivery cost?",
    "Thanks a lot",
    "When will my order arrive?",
    "I'd like to change my address",
    "Can I pay by card?",
    "Привет! Подскажите, пожалуйста, цену",
    "ok",
    "👍",
    "Do you ship to Lisbon?",
    "Please call me back",
    "What are your opening hours?",
)
_DOCS = (
    ("invoice_2291.pdf", "application/pdf"),
    ("contract.docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
    ("photo_scan.png", "image/png"),
    ("prices.xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
    ("notes.txt", "text/plain"),
)
_STICKERS = (("😀", "HotCherry"), ("👍", "Animals"), ("❤️", "LoveHearts"), ("😂", "MemeFaces"))


@dataclass(frozen=True)
class GeneratedUpdate:
    """One update the generator produced; `queued` is False when allowed_updates dropped it."""

    bot_id: int
    kind: str
    update: dict[str, Any]
    queued: bool

    @property
    def account(self) -> str:
        return str(self.bot_id)

    @property
    def payload(self) -> dict[str, Any]:
        return self.update


@dataclass
class SimUser:
    """A simulated Telegram user."""

    id: int
    first_name: str
    last_name: str | None
    username: str | None
    language_code: str


class TelegramTraffic(Simulation[GeneratedUpdate]):
    """Builds Updates from a pool of simulated users of one bot and queues them."""

    mix = Mix(DEFAULT_MIX, KINDS, "update kinds")

    def __init__(self, state: TelegramState, bot: TgBot, request: TrafficRequest) -> None:
        super().__init__(request, str(bot.id))
        self.state = state
        self.bot = bot
        self.users: list[SimUser] = []

    def make(self, kind: str) -> GeneratedUpdate:
        """One Update of `kind` (or its fallback) in the bot's queue; not queued when the
        bot's allowed_updates excludes it."""
        actual, update = self.update(kind)
        numbered = push_update(self.bot, update)
        return GeneratedUpdate(self.bot.id, actual, numbered or update, numbered is not None)

    def update(self, kind: str) -> tuple[str, dict[str, Any]]:
        """(actual kind, Update without update_id); an edit or callback with nothing to
        act on yet falls back to a text message."""
        user, chat = self._pick_user()
        date = int(self.state.core.clock.time())
        if kind == "edited_message":
            edited = self._edit(chat, date)
            if edited is not None:
                return kind, {"edited_message": edited}
            kind = "text"
        if kind == "callback_query":
            return kind, {"callback_query": self._callback(user, chat)}
        if kind == "my_chat_member":
            chat.blocked = True
            member = {
                "chat": chat.to_json(),
                "from": chat.user_json(),
                "date": date,
                "old_chat_member": {"user": self.bot.user(), "status": "member"},
                "new_chat_member": {"user": self.bot.user(), "status": "kicked", "until_date": 0},
            }
            return kind, {"my_chat_member": member}
        message = {
            "message_id": chat.take_message_id(),
            "from": chat.user_json(),
            "chat": chat.to_json(),
            "date": date,
            **self._content(kind),
        }
        chat.messages[message["message_id"]] = message
        return kind, {"message": copy.deepcopy(message)}

    def _pick_user(self) -> tuple[SimUser, TgChat]:
        active = [u for u in self.users if not self._chat(u).blocked]
        grow = len(self.users) < self.pool_size and self.rng.random() < 0.5
        if grow or not active:
            active = [self._new_user()]
        user = self.rng.choice(active)
        return user, self._chat(user)

    def _new_user(self) -> SimUser:
        first = self.rng.choice(_FIRST)
        user = SimUser(
            id=self.rng.randrange(100_000_000, 7_999_999_999),
            first_name=first,
            last_name=self.rng.choice(_LAST),
            username=f"{first.lower()}_{self.rng.randrange(10, 9999)}"
            if self.rng.random() < 0.8
            else None,
            language_code=self.rng.choice(_LANGS),
        )
        self.users.append(user)
        self._chat(user)
        return user

    def _chat(self, user: SimUser) -> TgChat:
        chat = self.bot.chats.get(user.id)
        if chat is None:
            chat = self.state.add_chat(
                self.bot,
                user.id,
                "private",
                first_name=user.first_name,
                last_name=user.last_name,
                username=user.username,
                language_code=user.language_code,
            )
        return chat

    def _content(self, kind: str) -> dict[str, Any]:
        rng, files = self.rng, self.bot.files
        if kind == "text":
            if rng.random() < 0.1:
                return {
                    "text": "/start",
                    "entities": [{"offset": 0, "length": 6, "type": "bot_command"}],
                }
            return {"text": rng.choice(_PHRASES)}
        if kind == "photo":
            width, height = rng.choice(((1280, 960), (960, 1280), (1280, 720), (800, 800)))
            sizes = files.add_photo(width, height, rng.randrange(40_000, 400_000))
            out: dict[str, Any] = {"photo": [s.describe() for s in sizes]}
            if rng.random() < 0.5:
                out["caption"] = rng.choice(_PHRASES)
            return out
        if kind == "voice":
            seconds = rng.randrange(1, 60)
            voice = files.add("voice", size=seconds * 2_000, duration=seconds)
            return {"voice": voice.describe()}
        if kind == "document":
            name, mime = rng.choice(_DOCS)
            doc = files.add(
                "document", size=rng.randrange(2_000, 2_000_000), file_name=name, mime_type=mime
            )
            return {"document": doc.describe()}
        if kind == "sticker":
            emoji, set_name = rng.choice(_STICKERS)
            sticker = files.add(
                "sticker",
                size=rng.randrange(10_000, 60_000),
                width=512,
                height=512,
                extra={"emoji": emoji, "set_name": set_name},
            )
            return {"sticker": sticker.describe()}
        if kind == "video":
            seconds = rng.randrange(2, 120)
            video = files.add(
                "video",
                size=seconds * 150_000,
                width=1280,
                height=720,
                duration=seconds,
                file_name=f"VID_{rng.randrange(1000, 9999)}.mp4",
            )
            return {"video": video.describe()}
        if kind == "location":
            return {
                "location": {
                    "latitude": round(rng.uniform(-60, 70), 6),
                    "longitude": round(rng.uniform(-170, 170), 6),
                }
            }
        if kind == "contact":
            return {
                "contact": {
                    "phone_number": f"+{rng.randrange(10**10, 10**12)}",
                    "first_name": rng.choice(_FIRST),
                    "user_id": rng.randrange(100_000_000, 7_999_999_999),
                }
            }
        raise ValueError(f"unknown message kind {kind!r}")

    def _edit(self, chat: TgChat, date: int) -> dict[str, Any] | None:
        own = [
            m
            for m in chat.messages.values()
            if "text" in m and m.get("from", {}).get("id") == chat.id
        ]
        if not own:
            return None
        message = self.rng.choice(own)
        message["text"] = f"{message['text']} (edited)"
        message.pop("entities", None)
        message["edit_date"] = date
        return copy.deepcopy(message)

    def _callback(self, user: SimUser, chat: TgChat) -> dict[str, Any]:
        keyboards = [
            m
            for m in chat.messages.values()
            if m.get("reply_markup", {}).get("inline_keyboard")
            and m.get("from", {}).get("id") == self.bot.id
        ]
        if keyboards:
            message = self.rng.choice(keyboards)
        else:
            message = {
                "message_id": chat.take_message_id(),
                "from": self.bot.user(),
                "chat": chat.to_json(),
                "date": int(self.state.core.clock.time()),
                "text": "Choose an option",
                "reply_markup": {
                    "inline_keyboard": [
                        [
                            {"text": "Yes", "callback_data": "answer:yes"},
                            {"text": "No", "callback_data": "answer:no"},
                        ]
                    ]
                },
            }
            chat.messages[message["message_id"]] = message
        buttons = [
            b
            for row in message["reply_markup"]["inline_keyboard"]
            for b in row
            if isinstance(b, dict) and "callback_data" in b
        ]
        query_id = str(self.rng.randrange(10**18, 10**19))
        self.bot.callbacks[query_id] = False
        query: dict[str, Any] = {
            "id": query_id,
            "from": chat.user_json(),
            "message": copy.deepcopy(message),
            "chat_instance": str(self.rng.randrange(-(10**18), 10**18)),
        }
        if buttons:
            query["data"] = self.rng.choice(buttons)["callback_data"]
        return query
