"""Control endpoints of the Telegram fake, under `/_sandbox/telegram/`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from switchboard.sandbox.httpjson import (
    ControlError,
    base64_field,
    named,
    query_bool,
    read_json,
    required,
)
from switchboard.sandbox.routes import RouteTable
from switchboard.sandbox.telegram.files import KIND_CODES, image_size
from switchboard.sandbox.telegram.state import TgBot

if TYPE_CHECKING:
    from switchboard.sandbox.telegram.provider import TelegramProvider


def control_routes(provider: TelegramProvider) -> RouteTable:
    """Routes to configure bots and chats, inject updates, read messages and generated ones
    (listing and removing bots, limits, settings and traffic are the shared messaging
    routes)."""
    state = provider.state

    def bot_of(request: Request) -> TgBot:
        return named(request, "bot", state.find_bot)

    async def add_bot(request: Request) -> Response:
        data = await read_json(request)
        token = required(data, "token")
        bot = provider.add_bot(token, data.get("username"), data.get("first_name"))
        return JSONResponse(bot.summary(), status_code=201)

    async def get_bot(request: Request) -> Response:
        bot = bot_of(request)
        return JSONResponse(
            {**bot.summary(), "me": bot.me(), "chats": [c.summary() for c in bot.chats.values()]}
        )

    async def list_chats(request: Request) -> Response:
        return JSONResponse({"chats": [c.summary() for c in bot_of(request).chats.values()]})

    async def add_chat(request: Request) -> Response:
        bot = bot_of(request)
        data = await read_json(request)
        if "id" not in data:
            raise ControlError("id is required")
        profile = {
            k: data.get(k)
            for k in ("title", "username", "first_name", "last_name", "language_code")
        }
        chat = state.add_chat(bot, int(data["id"]), data.get("type"), **profile)
        if "blocked" in data:
            chat.blocked = bool(data["blocked"])
        return JSONResponse(chat.summary(), status_code=201)

    async def block_chat(request: Request) -> Response:
        bot = bot_of(request)
        data = await read_json(request)
        chat = provider.block_chat(
            bot, int(request.path_params["chat_id"]), bool(data.get("blocked", True))
        )
        return JSONResponse(chat.summary())

    async def enqueue(request: Request) -> Response:
        bot = bot_of(request)
        data = await read_json(request)
        update = data.get("update", data)
        if not isinstance(update, dict):
            raise ControlError("update must be a JSON object")
        numbered = await provider.enqueue_update(bot, update)
        return JSONResponse({"queued": numbered is not None, "update": numbered}, status_code=202)

    async def press(request: Request) -> Response:
        bot = bot_of(request)
        data = await read_json(request)
        try:
            query = await provider.press_button(
                bot,
                int(request.path_params["chat_id"]),
                int(data.get("message_id", 0)),
                str(data.get("callback_data", "")),
            )
        except KeyError as exc:
            raise ControlError(str(exc.args[0]), 404) from None
        return JSONResponse({"callback_query": query}, status_code=202)

    async def add_file(request: Request) -> Response:
        """Hold a file a customer sends to the bot (bytes as base64): the answer is the
        message field to put in an enqueued update (`photo` sizes, or the `<kind>` object);
        getFile and the file download then serve the same bytes."""
        bot = bot_of(request)
        data = await read_json(request)
        kind = str(data.get("kind") or "photo")
        if kind not in KIND_CODES:
            raise ControlError(f"kind must be one of {', '.join(KIND_CODES)}")
        content = base64_field(data)
        if kind == "photo":
            width, height = image_size(content) or (1280, 960)
            sizes = bot.files.add_photo(width, height, len(content), content)
            return JSONResponse({"photo": [f.describe() for f in sizes]}, status_code=201)
        stored = bot.files.add(
            kind,
            size=len(content),
            content=content,
            mime_type=data.get("mime_type"),
            file_name=data.get("file_name"),
        )
        return JSONResponse({kind: stored.describe()}, status_code=201)

    async def messages(request: Request) -> Response:
        bot = bot_of(request)
        chat = request.query_params.get("chat")
        everyone = query_bool(request, "all") or False
        found = provider.messages(bot, int(chat) if chat else None, sent_by_bot=not everyone)
        return JSONResponse({"messages": found})

    return [
        ("/bots", add_bot, ["POST"]),
        ("/bots/{bot}", get_bot, ["GET"]),
        ("/bots/{bot}/chats", list_chats, ["GET"]),
        ("/bots/{bot}/chats", add_chat, ["POST"]),
        ("/bots/{bot}/chats/{chat_id}/block", block_chat, ["POST"]),
        ("/bots/{bot}/chats/{chat_id}/press", press, ["POST"]),
        ("/bots/{bot}/updates", enqueue, ["POST"]),
        ("/bots/{bot}/messages", messages, ["GET"]),
        ("/bots/{bot}/files", add_file, ["POST"]),
    ]
