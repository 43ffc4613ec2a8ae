"""Graph API errors as the WhatsApp Cloud API words them, and their HTTP answers.

Every failure is `{"error": {"message", "type", "code", ["error_subcode"], ["error_data"],
"fbtrace_id"}}`. Messages of numbered errors start with `(#code)`, as Graph does.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse

from switchboard.sandbox.graph import GraphError

# Graph error codes the fake produces
INVALID_PARAMETER = 100
ACCESS_TOKEN_MISSING = 104
INVALID_TOKEN = 190
UNKNOWN_PATH = 2500
THROUGHPUT = 130429
PAIR_RATE = 131056
REENGAGEMENT = 131047
UNDELIVERABLE = 131026
UNKNOWN_ERROR = 1
SERVICE_UNAVAILABLE = 2

THROTTLING_CODES = frozenset({4, 80007, THROUGHPUT})

# Titles and details Meta uses in `message` and `error_data.details` (also in webhooks).
TITLES: dict[int, tuple[str, str]] = {
    THROUGHPUT: ("Rate limit hit", "Cloud API message throughput has been reached."),
    PAIR_RATE: (
        "(Business Account, Consumer Account) pair rate limit hit",
        "Message failed to send because there were too many messages sent from this phone "
        "number to the same phone number in a short period of time.",
    ),
    REENGAGEMENT: (
        "Re-engagement message",
        "Message failed to send because more than 24 hours have passed since the customer "
        "last replied to this number.",
    ),
    UNDELIVERABLE: ("Message undeliverable", "Message Undeliverable."),
    131051: ("Message type unknown", "Message type is currently not supported."),
}
ERROR_DOCS = "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/"


def error_response(error: GraphError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status)


def whatsapp_error(code: int, status: int = 400) -> GraphError:
    """One of the numbered WhatsApp errors in TITLES, e.g. 131047."""
    title, details = TITLES[code]
    data = {"messaging_product": "whatsapp", "details": details}
    return GraphError(code, f"(#{code}) {title}", status=status, data=data)


def invalid_token() -> GraphError:
    return GraphError(INVALID_TOKEN, "Invalid OAuth access token.", status=401)


def token_missing() -> GraphError:
    return GraphError(
        ACCESS_TOKEN_MISSING, "An access token is required to request this resource.", status=401
    )


def unsupported_request(object_id: str, verb: str = "post") -> GraphError:
    """Unknown phone number id, or one the token may not use."""
    return GraphError(
        INVALID_PARAMETER,
        f"Unsupported {verb} request. Object with ID '{object_id}' does not exist, cannot be "
        "loaded due to missing permissions, or does not support this operation. Please read "
        "the Graph API documentation at https://developers.facebook.com/docs/graph-api",
        subcode=33,
    )


def unknown_path(path: str) -> GraphError:
    return GraphError(UNKNOWN_PATH, f"Unknown path components: {path}")


def required(name: str) -> GraphError:
    """A missing parameter, named as Graph does: `text['body']`."""
    return GraphError(INVALID_PARAMETER, f"(#100) The parameter {name} is required.")


def invalid(name: str, problem: str) -> GraphError:
    """An invalid parameter: `(#100) Param text['body'] must be at most 4096 characters long.`"""
    return GraphError(INVALID_PARAMETER, f"(#100) Param {name} {problem}")


def server_error(status: int, description: str) -> GraphError:
    """What faults answer: Graph's transient codes 1 (unknown error) and 2 (unavailable)."""
    if status == 503:
        return GraphError(
            SERVICE_UNAVAILABLE, "Service temporarily unavailable", status=503, transient=True
        )
    if status >= 500:
        return GraphError(
            UNKNOWN_ERROR, "An unknown error has occurred.", status=status, transient=True
        )
    if status == 404:
        return GraphError(UNKNOWN_PATH, "Unknown path components", status=404)
    return GraphError(UNKNOWN_ERROR, description, status=status)


def webhook_error(code: int) -> dict[str, Any]:
    """An entry of `statuses[].errors` / `messages[].errors` in webhooks."""
    title, details = TITLES.get(code, ("Something went wrong", "Unknown error."))
    return {
        "code": code,
        "title": title,
        "message": title,
        "error_data": {"details": details},
        "href": ERROR_DOCS,
    }
