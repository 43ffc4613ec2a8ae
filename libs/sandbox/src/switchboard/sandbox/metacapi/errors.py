"""Graph API errors of the CAPI fake: `{"error": {message, type, code, error_subcode, ...}}`.

The token (104, 190), unknown-object (100/33), deprecated-version (2635) and unknown-path
(2500) errors follow the Graph API. For event validation Meta answers code 100 "Invalid
parameter" with an `error_subcode` and user-facing title and text; 2804003 ("Event
Timestamp Too Old") is Meta's, the other subcodes here are the sandbox's own choice
(PROTOCOLS.md does not list them). `error_user_msg` always names the offending field.
"""

from __future__ import annotations

from starlette.responses import JSONResponse

from switchboard.sandbox.graph import GraphError, fbtrace_id

SUBCODE_UNKNOWN_OBJECT = 33
SUBCODE_TOKEN_EXPIRED = 463
SUBCODE_STALE_EVENT = 2804003
SUBCODE_FUTURE_EVENT = 2804004
SUBCODE_PARAMETER = 2804019
SUBCODE_TOO_MANY_EVENTS = 2804022

_GRAPH_DOCS = "https://developers.facebook.com/docs/graph-api"


def token_required() -> GraphError:
    return GraphError(104, "An access token is required to request this resource.")


def invalid_token() -> GraphError:
    return GraphError(190, "Invalid OAuth access token - Cannot parse access token")


def expired_token(expired_at: str, now: str) -> GraphError:
    return GraphError(
        190,
        f"Error validating access token: Session has expired on {expired_at}. "
        f"The current time is {now}.",
        subcode=SUBCODE_TOKEN_EXPIRED,
    )


def unknown_object(object_id: str) -> GraphError:
    """Unknown pixel, or a token without access to it: Graph cannot tell them apart."""
    return GraphError(
        100,
        f"Unsupported post request. Object with ID '{object_id}' does not exist, cannot be "
        "loaded due to missing permissions, or does not support this operation. Please read "
        f"the Graph API documentation at {_GRAPH_DOCS}",
        kind="GraphMethodException",
        subcode=SUBCODE_UNKNOWN_OBJECT,
    )


def deprecated_version(latest: str) -> GraphError:
    return GraphError(
        2635,
        "(#2635) You are calling a deprecated version of the Ads API. "
        f"Please update to the latest version: {latest}.",
    )


def unknown_path(path: str) -> GraphError:
    return GraphError(2500, f"Unknown path components: {path}")


def missing_parameter(name: str) -> GraphError:
    return GraphError(100, f"(#100) The parameter {name} is required")


def invalid_parameter(
    user_msg: str, *, title: str = "Invalid Parameter", subcode: int = SUBCODE_PARAMETER
) -> GraphError:
    """Code 100 "Invalid parameter" with the specific problem in `error_user_msg`."""
    return GraphError(
        100,
        "Invalid parameter",
        subcode=subcode,
        user_title=title,
        user_msg=user_msg,
        transient=False,
    )


def server_error(status: int, description: str) -> GraphError:
    """Graph's answer to a server-side failure (injected faults): transient, retry it."""
    if status == 404:
        return GraphError(
            100, "Unsupported request - method type: post", kind="GraphMethodException"
        )
    if status >= 500:
        return GraphError(
            2,
            "An unexpected error has occurred. Please retry your request later.",
            status=status,
            transient=True,
        )
    return GraphError(1, description, status=status)


def error_response(error: GraphError, trace: str | None = None) -> JSONResponse:
    """The HTTP answer of a failed call, with the trace id in a header too."""
    trace = trace or fbtrace_id()
    headers = {"x-fb-trace-id": trace}
    if error.code in (104, 190):
        headers["WWW-Authenticate"] = f'OAuth "Facebook Platform" "invalid_token" "{error.message}"'
    return JSONResponse(error.body(trace), status_code=error.status, headers=headers)
