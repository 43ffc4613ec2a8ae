"""Viber status codes and answers: failures are HTTP 200 with a non-zero `status`."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse

from switchboard.sandbox.errors import SandboxError

OK = 0
INVALID_URL = 1
INVALID_AUTH_TOKEN = 2
BAD_DATA = 3
MISSING_DATA = 4
RECEIVER_NOT_REGISTERED = 5
RECEIVER_NOT_SUBSCRIBED = 6
WEBHOOK_NOT_SET = 10
TOO_MANY_REQUESTS = 12

STATUS_MESSAGES = {
    OK: "ok",
    INVALID_URL: "invalidUrl",
    INVALID_AUTH_TOKEN: "invalidAuthToken",
    BAD_DATA: "badData",
    MISSING_DATA: "missingData",
    RECEIVER_NOT_REGISTERED: "receiverNotRegistered",
    RECEIVER_NOT_SUBSCRIBED: "receiverNotSubscribed",
    WEBHOOK_NOT_SET: "webhookNotSet",
    TOO_MANY_REQUESTS: "tooManyRequests",
}


class ViberError(SandboxError):
    """A failed call: `{"status": N, "status_message": "..."}` (HTTP 200, as Viber does).

    `detail` says which field was wrong; it is recorded but not sent, since Viber's answers
    only carry the status name.
    """

    def __init__(self, status: int, detail: str | None = None) -> None:
        self.status = status
        self.status_message = STATUS_MESSAGES[status]
        self.detail = detail
        super().__init__(detail or self.status_message)

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "status_message": self.status_message}


def bad_data(detail: str) -> ViberError:
    return ViberError(BAD_DATA, detail)


def missing_data(detail: str) -> ViberError:
    return ViberError(MISSING_DATA, detail)


def status_response(error: ViberError) -> JSONResponse:
    return JSONResponse(error.to_json())


def ok_response(**fields: Any) -> JSONResponse:
    return JSONResponse({"status": OK, "status_message": "ok", **fields})


def http_error_response(status: int, description: str) -> JSONResponse:
    """Transport-level failures (faults, unknown paths) keep their HTTP status; the body is
    a bare `status_message`, since Viber defines no status code for them."""
    return JSONResponse({"status_message": description}, status_code=status)
