"""Graph API errors of the CAPI fake: `{"error": {message, type, code, error_subcode, ...}}`.

The token (104, 190), unknown-object (100/33), deprecated-version (2635) and unknown-path
(2500) errors follow the Graph API. For event validation Meta answers code 100 "Invalid
parameter" with an `error_subcode` and user-facing title and text; 2804003 ("Event
Timestamp Too Old") is Meta's, the other subcodes here are the sandbox's own choice
(PROTOCOLS.md does not list them). `error_user_msg` always names the offending field.
"""

from __future__ import annotations

import secrets
import string
from typing import Any

from starlette.responses import JSONResponse

from switchboard.sandbox.errors import SandboxError

SUBCODE_UNKNOWN_OBJECT = 33
SUBCODE_TOKEN_EXPIRED = 463
SUBCODE_STALE_EVENT = 2804003
SUBCODE_FUTURE_EVENT = 2804004
SUBCODE_PARAMETER = 2804019
SUBCODE_TOO_MANY_EVENTS = 2804022

_TRACE_CHARS = string.ascii_letters + string.digits + "_-"
_GRAPH_DOCS = "https://developers.facebook.com/docs/graph-api"


def fbtrace_id() -> str:
    """A Graph-style trace id (27 URL-safe characters)."""
    return "A" + "".join(secrets.choice(_TRACE_CHARS) for _ in range(26))


class GraphError(SandboxError):
    """A failed Graph call; `status` is the HTTP status (400 for client errors)."""

    def __init__(
        self,
        message: str,
        *,
        code: int,
        kind: str = "OAuthException",
        subcode: int | None = None,
        user_title: str | None = None,
        user_msg: str | None = None,
        status: int = 400,
        transient: bool | None = None,
    ) -> None:
        super().__init__(user_msg or message)
        self.message = message
        self.code = code
        self.kind = kind
        self.subcode = subcode
        self.user_title = user_title
        self.user_msg = user_msg
        self.status = status
        self.transient = transient

    @property
    def description(self) -> str:
        """What the recorder stores: the specific text when there is one."""
        return self.user_msg or self.message

    def body(self, trace: str) -> dict[str, Any]:
        error: dict[str, Any] = {"message": self.message, "type": self.kind, "code": self.code}
        if self.subcode is not None:
            error["error_subcode"] = self.subcode
        if self.transient is not None:
            error["is_transient"] = self.transient
        if self.user_title is not None:
            error["error_user_title"] = self.user_title
        if self.user_msg is not None:
            error["error_user_msg"] = self.user_msg
        error["fbtrace_id"] = trace
        return {"error": error}


def token_required() -> GraphError:
    return GraphError("An access token is required to request this resource.", code=104)


def invalid_token() -> GraphError:
    return GraphError("Invalid OAuth access token - Cannot parse access token", code=190)


def expired_token(expired_at: str, now: str) -> GraphError:
    return GraphError(
        f"Error validating access token: Session has expired on {expired_at}. "
        f"The current time is {now}.",
        code=190,
        subcode=SUBCODE_TOKEN_EXPIRED,
    )


def unknown_object(object_id: str) -> GraphError:
    """Unknown pixel, or a token without access to it: Graph cannot tell them apart."""
    return GraphError(
        f"Unsupported post request. Object with ID '{object_id}' does not exist, cannot be "
        "loaded due to missing permissions, or does not support this operation. Please read "
        f"the Graph API documentation at {_GRAPH_DOCS}",
        code=100,
        kind="GraphMethodException",
        subcode=SUBCODE_UNKNOWN_OBJECT,
    )


def deprecated_version(latest: str) -> GraphError:
    return GraphError(
        "(#2635) You are calling a deprecated version of the Ads API. "
        f"Please update to the latest version: {latest}.",
        code=2635,
    )


def unknown_path(path: str) -> GraphError:
    return GraphError(f"Unknown path components: {path}", code=2500)


def missing_parameter(name: str) -> GraphError:
    return GraphError(f"(#100) The parameter {name} is required", code=100)


def invalid_parameter(
    user_msg: str, *, title: str = "Invalid Parameter", subcode: int = SUBCODE_PARAMETER
) -> GraphError:
    """Code 100 "Invalid parameter" with the specific problem in `error_user_msg`."""
    return GraphError(
        "Invalid parameter",
        code=100,
        subcode=subcode,
        user_title=title,
        user_msg=user_msg,
        transient=False,
    )


def server_error(status: int, description: str) -> GraphError:
    """Graph's answer to a server-side failure (injected faults): transient, retry it."""
    if status == 404:
        return GraphError(
            "Unsupported request - method type: post", code=100, kind="GraphMethodException"
        )
    if status >= 500:
        return GraphError(
            "An unexpected error has occurred. Please retry your request later.",
            code=2,
            status=status,
            transient=True,
        )
    return GraphError(description, code=1, status=status)


def error_response(error: GraphError, trace: str | None = None) -> JSONResponse:
    """The HTTP answer of a failed call, with the trace id in a header too."""
    trace = trace or fbtrace_id()
    headers = {"x-fb-trace-id": trace}
    if error.code in (104, 190):
        headers["WWW-Authenticate"] = f'OAuth "Facebook Platform" "invalid_token" "{error.message}"'
    return JSONResponse(error.body(trace), status_code=error.status, headers=headers)
