"""Control endpoints of the Telegram fake, under `/_sandbox/telegram/`."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from switchboard.sandbox.httpjson import ControlError, error_json, query_bool, read_json
from switchboard.sandbox.telegram.files import KIND_CODES, image_size
from switchboard.sandbox.telegram.state import TgBot
from switchboard.sandbox.telegram.traffic import GeneratedUpdate, generate, validate_mix
from switchboard.sandbox.traffic import TrafficJob, job_routes, parse_duration

if TYPE_CHECKING:
    from switchboard.sandbox.telegram.provider import TelegramProvider

Endpoint = Callable[[Request], Awaitable[Response]]
_RETRY_FIELDS = ("initial", "factor", "maximum", "max_attempts", "max_age", "timeout")


def _guard(endpoint: Endpoint) -> Endpoint:
    async def guarded(request: Request) -> Response:
        try:
            return await endpoint(request)
        except ControlError as exc:
            return error_json(exc)
        except (ValueError, TypeError) as exc:
            return error_json(ControlError(str(exc)))

    return guarded


def control_routes(provider: TelegramProvider) -> list[BaseRoute]:
    """Routes to configure bots and chats, inject updates, run traffic and tune limits."""
    state = provider.state

    def bot_of(request: Request) -> TgBot:
        ref = request.path_params.get("bot") or request.query_params.get("bot")
        found = state.find_bot(ref) if ref else None
        if found is None:
            raise ControlError(f"no bot {ref!r}", 404)
        return found

    async def list_bots(request: Request) -> Response:
        return JSONResponse({"bots": [b.summary() for b in state.bots.values()]})

    async def add_bot(request: Request) -> Response:
        data = await read_json(request)
        if not data.get("token"):
            raise ControlError("token is required")
        bot = provider.add_bot(str(data["token"]), data.get("username"), data.get("first_name"))
        return JSONResponse(bot.summary(), status_code=201)

    async def get_bot(request: Request) -> Response:
        bot = bot_of(request)
        return JSONResponse(
            {**bot.summary(), "me": bot.me(), "chats": [c.summary() for c in bot.chats.values()]}
        )

    async def delete_bot(request: Request) -> Response:
        await state.remove_bot(bot_of(request))
        return JSONResponse({"deleted": True})

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
        try:
            content = base64.b64decode(str(data.get("content_base64", "")), validate=True)
        except (binascii.Error, ValueError):
            raise ControlError("content_base64 must be base64") from None
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

    async def generated(request: Request) -> Response:
        bot = request.query_params.get("bot")
        items = provider.generated_updates(bot or None, request.query_params.get("kind"))
        by_kind: dict[str, int] = {}
        for item in items:
            by_kind[item.kind] = by_kind.get(item.kind, 0) + 1
        body: dict[str, Any] = {"count": len(items), "by_kind": by_kind}
        if query_bool(request, "include"):
            body["updates"] = [item.update for item in items]
        return JSONResponse(body)

    async def get_limits(request: Request) -> Response:
        return JSONResponse(provider.config.limits.to_json())

    async def set_limits(request: Request) -> Response:
        provider.config.limits.update(await read_json(request))
        state.limiter.reset()
        return JSONResponse(provider.config.limits.to_json())

    async def get_settings(request: Request) -> Response:
        return JSONResponse(_settings(provider))

    async def set_settings(request: Request) -> Response:
        data = await read_json(request)
        config = provider.config
        if "strict_chats" in data:
            config.strict_chats = bool(data["strict_chats"])
        if "require_https_webhook" in data:
            config.require_https_webhook = bool(data["require_https_webhook"])
        if isinstance(data.get("webhook_retry"), dict):
            fields = {k: v for k, v in data["webhook_retry"].items() if k in _RETRY_FIELDS}
            config.webhook_retry = replace(config.webhook_retry, **fields)
            for bot in state.bots.values():
                bot.updates.policy = config.webhook_retry
        return JSONResponse(_settings(provider))

    async def start_traffic(request: Request) -> Response:
        data = await read_json(request)
        bot = bot_of_ref(data.get("bot"))
        count = None if data.get("count") is None else int(data["count"])
        duration = None if data.get("duration") is None else parse_duration(data["duration"])
        rate = None if data.get("rate") is None else float(data["rate"])
        if count is None and duration is None:
            raise ControlError("give count or duration")
        mix = data.get("mix")
        validate_mix(mix)

        async def body(job: TrafficJob) -> None:
            def count_one(item: GeneratedUpdate) -> None:
                provider.generated.append(item)
                job.produced += 1
                job.by_kind[item.kind] = job.by_kind.get(item.kind, 0) + 1

            await generate(
                state,
                bot,
                count=count,
                rate=rate,
                duration=duration,
                mix=mix,
                seed=int(data.get("seed", 0)),
                users=int(data.get("users", 50)),
                on_update=count_one,
            )

        job = provider.jobs.start(
            {
                "provider": "telegram",
                "account": str(bot.id),
                "count": count,
                "duration": duration,
                "rate": rate,
            },
            body,
        )
        return JSONResponse(job.to_json(), status_code=202)

    def bot_of_ref(ref: Any) -> TgBot:
        found = state.find_bot(ref) if ref else None
        if found is None:
            raise ControlError(f"no bot {ref!r}", 404)
        return found

    table: list[tuple[str, Endpoint, list[str]]] = [
        ("/bots", list_bots, ["GET"]),
        ("/bots", add_bot, ["POST"]),
        ("/bots/{bot}", get_bot, ["GET"]),
        ("/bots/{bot}", delete_bot, ["DELETE"]),
        ("/bots/{bot}/chats", list_chats, ["GET"]),
        ("/bots/{bot}/chats", add_chat, ["POST"]),
        ("/bots/{bot}/chats/{chat_id}/block", block_chat, ["POST"]),
        ("/bots/{bot}/chats/{chat_id}/press", press, ["POST"]),
        ("/bots/{bot}/updates", enqueue, ["POST"]),
        ("/bots/{bot}/messages", messages, ["GET"]),
        ("/bots/{bot}/files", add_file, ["POST"]),
        ("/generated", generated, ["GET"]),
        ("/limits", get_limits, ["GET"]),
        ("/limits", set_limits, ["PUT", "POST"]),
        ("/settings", get_settings, ["GET"]),
        ("/settings", set_settings, ["PUT", "POST"]),
        ("/traffic", start_traffic, ["POST"]),
        *job_routes(provider.jobs),
    ]
    return [Route(path, _guard(endpoint), methods=methods) for path, endpoint, methods in table]


def _settings(provider: TelegramProvider) -> dict[str, Any]:
    config = provider.config
    retry = config.webhook_retry
    return {
        "strict_chats": config.strict_chats,
        "require_https_webhook": config.require_https_webhook,
        "webhook_retry": {name: getattr(retry, name) for name in _RETRY_FIELDS},
        "limits": config.limits.to_json(),
    }
