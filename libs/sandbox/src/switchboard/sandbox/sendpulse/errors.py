"""SendPulse error bodies: OAuth errors for authentication, `error_code` bodies for the API.

Authentication failures use the OAuth server's shape, which SendPulse documents for bad
credentials: `{"error", "error_description", "message"}` (plus `hint` where the server
explains which check failed). API validation failures use
`{"is_error": true, "error_code": N, "message": "..."}`. The codes 8, 10, 11 and 13 come
from SendPulse's published table; 213 ("Book not found") is from memory, unverified; where
no documented code fits, `error_code` repeats the HTTP status.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse

from switchboard.sandbox.errors import SandboxError

NO_DATA = 8
NO_SENDER = 10
NO_RECIPIENTS = 11
EMPTY_CONTENT = 13
BOOK_NOT_FOUND = 213

_CLIENT_FAILED = "Client authentication failed."
_DENIED = "The resource owner or authorization server denied the request."
_MALFORMED = (
    "The request is missing a required parameter, includes an invalid parameter value, "
    "includes a parameter more than once, or is otherwise malformed."
)
_UNSUPPORTED_GRANT = "The authorization grant type is not supported by the authorization server."


class SendPulseError(SandboxError):
    """A failed call: HTTP status plus the exact JSON body to answer with."""

    def __init__(self, status: int, body: dict[str, Any], retry_after: int | None = None) -> None:
        super().__init__(str(body.get("message", "")))
        self.status = status
        self.body = body
        self.retry_after = retry_after

    @property
    def message(self) -> str:
        return str(self.body.get("message") or self.body.get("error") or "")

    @property
    def code(self) -> int:
        """The code recorded for this failure: `error_code` when there is one, else status."""
        value = self.body.get("error_code")
        return value if isinstance(value, int) else self.status


def _oauth(status: int, error: str, description: str, hint: str | None = None) -> SendPulseError:
    body: dict[str, Any] = {"error": error, "error_description": description}
    if hint is not None:
        body["hint"] = hint
    body["message"] = description
    return SendPulseError(status, body)


def invalid_client() -> SendPulseError:
    """Unknown client_id or wrong client_secret (the body PROTOCOLS.md and the brief give)."""
    return _oauth(401, "invalid_client", _CLIENT_FAILED)


def invalid_request(parameter: str) -> SendPulseError:
    return _oauth(400, "invalid_request", _MALFORMED, f"Check the `{parameter}` parameter")


def unsupported_grant_type() -> SendPulseError:
    return _oauth(
        400,
        "unsupported_grant_type",
        _UNSUPPORTED_GRANT,
        "Check that all required parameters have been provided",
    )


def access_denied(hint: str) -> SendPulseError:
    """401 for a missing, unknown or expired bearer token: refresh once and retry."""
    return _oauth(401, "access_denied", _DENIED, hint)


def api_error(message: str, code: int | None = None, status: int = 400) -> SendPulseError:
    """A validation failure of an API call."""
    return SendPulseError(
        status,
        {"is_error": True, "error_code": status if code is None else code, "message": message},
    )


def too_many_requests(retry_after: int) -> SendPulseError:
    body = {"is_error": True, "error_code": 429, "message": "Too Many Requests"}
    return SendPulseError(429, body, retry_after)


def error_response(error: SendPulseError) -> JSONResponse:
    """The HTTP answer of a failed call; a 429 also carries a Retry-After header."""
    headers = {} if error.retry_after is None else {"Retry-After": str(error.retry_after)}
    return JSONResponse(error.body, status_code=error.status, headers=headers)
