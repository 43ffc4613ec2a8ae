"""Bot API error values and the JSON envelopes of answers, as Telegram words them."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse

from switchboard.sandbox.errors import SandboxError


class TelegramError(SandboxError):
    """A Bot API failure: becomes `{"ok":false,"error_code":..,"description":..}`."""

    def __init__(
        self, code: int, description: str, parameters: dict[str, Any] | None = None
    ) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.parameters = parameters

    @property
    def retry_after(self) -> int | None:
        value = (self.parameters or {}).get("retry_after")
        return value if isinstance(value, int) else None


def bad_request(text: str) -> TelegramError:
    return TelegramError(400, f"Bad Request: {text}")


def unauthorized() -> TelegramError:
    return TelegramError(401, "Unauthorized")


def not_found() -> TelegramError:
    return TelegramError(404, "Not Found")


def blocked_by_user() -> TelegramError:
    return TelegramError(403, "Forbidden: bot was blocked by the user")


def too_many_requests(retry_after: int) -> TelegramError:
    return TelegramError(
        429, f"Too Many Requests: retry after {retry_after}", {"retry_after": retry_after}
    )


def conflict(text: str) -> TelegramError:
    return TelegramError(409, f"Conflict: {text}")


CHAT_NOT_FOUND = "chat not found"
TEXT_EMPTY = "message text is empty"
TEXT_TOO_LONG = "message is too long"
CAPTION_TOO_LONG = "message caption is too long"
WRONG_FILE = "wrong file identifier/HTTP URL specified"


def error_response(error: TelegramError) -> JSONResponse:
    """The HTTP answer of a failed call; a 429 also carries a Retry-After header."""
    body: dict[str, Any] = {"ok": False, "error_code": error.code, "description": error.description}
    headers: dict[str, str] = {}
    if error.parameters:
        body["parameters"] = error.parameters
    if error.retry_after is not None:
        headers["Retry-After"] = str(error.retry_after)
    return JSONResponse(body, status_code=error.code, headers=headers)


def ok_response(result: Any, description: str | None = None) -> JSONResponse:
    """The HTTP answer of a successful call."""
    body: dict[str, Any] = {"ok": True, "result": result}
    if description is not None:
        body["description"] = description
    return JSONResponse(body)
