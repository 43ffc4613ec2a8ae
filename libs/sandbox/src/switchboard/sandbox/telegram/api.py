"""HTTP endpoints of the Bot API fake: `/bot<token>/<method>` and `/file/bot<token>/<path>`."""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import Scope

from switchboard.sandbox.provider import route_path
from switchboard.sandbox.recorder import note_of
from switchboard.sandbox.telegram.errors import (
    TelegramError,
    error_response,
    not_found,
    ok_response,
    unauthorized,
)
from switchboard.sandbox.telegram.methods import REGISTRY, Answer, Call
from switchboard.sandbox.telegram.params import read_params
from switchboard.sandbox.telegram.state import TOKEN_PATTERN, TelegramState

_CALL_PATH = re.compile(r"^/bot(\d+):[^/]*/([^/]*)")
_FILE_PATH = re.compile(r"^/file/bot(\d+):[^/]*/")


def classify(scope: Scope) -> tuple[str | None, str | None]:
    """(bot id, canonical method name) read from the raw path."""
    path = route_path(scope)
    match = _CALL_PATH.match(path)
    if match:
        entry = REGISTRY.get(match.group(2).lower())
        return match.group(1), entry[0] if entry else match.group(2)
    match = _FILE_PATH.match(path)
    if match:
        return match.group(1), "downloadFile"
    return None, None


class TelegramApi:
    """Dispatches Bot API calls to the method handlers and shapes their answers."""

    def __init__(self, state: TelegramState) -> None:
        self.state = state

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/bot{token}/{method}", self.call, methods=["GET", "POST"]),
            Route("/file/bot{token}/{file_path:path}", self.download, methods=["GET"]),
        ]

    async def call(self, request: Request) -> Response:
        note = note_of(request.scope, "telegram")
        clock = self.state.core.clock
        try:
            token = request.path_params["token"]
            if not TOKEN_PATTERN.match(token):
                # The real API has no route for a path that holds no token: 404, as JSON.
                raise not_found()
            bot = self.state.by_token(token)
            if bot is None:
                raise unauthorized()
            entry = REGISTRY.get(str(request.path_params["method"]).lower())
            if entry is None:
                raise not_found()
            note.method, handler = entry
            params = await read_params(request)
            note.params = params.summary()
            note.chat = params.text("chat_id")
            now = clock.monotonic()
            note.accepted_at = now
            call = Call(
                state=self.state, bot=bot, params=params, note=note, now=now, date=int(clock.time())
            )
            result = await handler(call)
        except TelegramError as error:
            note.fail(error.code, error.description, error.retry_after)
            return error_response(error)
        note.succeed()
        if isinstance(result, Answer):
            return ok_response(result.result, result.description)
        return ok_response(result)

    async def download(self, request: Request) -> Response:
        note = note_of(request.scope, "telegram")
        bot = self.state.by_token(request.path_params["token"])
        stored = bot.files.by_path(request.path_params["file_path"]) if bot else None
        if stored is None:
            error = unauthorized() if bot is None else not_found()
            note.fail(error.code, error.description)
            return error_response(error)
        note.succeed()
        note.params = {"file_path": stored.path}
        media = stored.mime_type or "application/octet-stream"
        return Response(stored.download(), media_type=media)
