"""A raw-ASGI path for webhook POSTs, in front of the whole FastAPI stack, the service's hot path.

FastAPI's routing and dependency machinery cost more CPU per webhook than verifying and
storing it, so POST /webhooks/<provider>/<account> is answered here and everything else
falls through to the app. ``WEBHOOKS`` declares those paths once: the fast path serves
exactly them and the OpenAPI document describes exactly them (``webhook_operations``), with
no routed handler that could never run.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from fastapi.routing import APIRoute
from starlette.types import Message, Receive, Scope, Send

from switchboard.events.catalog.common import Channel
from switchboard.ingest.webhooks import RejectedError
from switchboard.runtime.http import PROBLEM_JSON as _PROBLEM

PROBLEM_JSON = _PROBLEM.encode()


@dataclass(frozen=True)
class WebhookPath:
    """One POST /webhooks/<channel>/{<param>} the fast path answers, as OpenAPI shows it."""

    channel: Channel
    param: str
    summary: str
    description: str

    @property
    def path(self) -> str:
        return f"/webhooks/{self.channel.value}/{{{self.param}}}"


WEBHOOKS = (
    WebhookPath(
        Channel.TELEGRAM,
        "account",
        "Telegram Bot API webhook",
        "Verified with `X-Telegram-Bot-Api-Secret-Token` (constant time).",
    ),
    WebhookPath(
        Channel.WHATSAPP,
        "account",
        "WhatsApp Cloud API webhook",
        "Verified with `X-Hub-Signature-256` over the raw body.",
    ),
    WebhookPath(
        Channel.VIBER,
        "account",
        "Viber REST bot callback",
        "Verified with `X-Viber-Content-Signature` (HMAC with the bot token).",
    ),
    WebhookPath(
        Channel.GENERIC,
        "source",
        "Standard Webhooks receiver",
        "Verified with `webhook-id`, `webhook-timestamp` (5 min tolerance) and "
        "`webhook-signature`; `webhook-id` deduplicates.",
    ),
)
CHANNELS = {w.channel.value: w.channel for w in WEBHOOKS}


@dataclass(frozen=True)
class WebhookResult:
    """What to answer: status, JSON body (a problem document from 400 on), extra headers."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


ReadBody = Callable[[int], Awaitable[bytes]]
Handle = Callable[[Channel, str, Mapping[str, str], ReadBody], Awaitable[WebhookResult]]


def body_reader(receive: Receive, declared: str | None) -> ReadBody:
    """Reads the ASGI body up to a limit, refusing (413) instead of buffering an oversized one;
    a declared Content-Length over the limit is refused before reading anything."""

    async def read(limit: int) -> bytes:
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise RejectedError(413, "too_large", f"body over {limit} bytes")
        chunks: list[bytes] = []
        size = 0
        while True:
            message: Message = await receive()
            if message["type"] == "http.disconnect":
                raise RejectedError(400, "disconnected", "client went away mid-body")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise RejectedError(413, "too_large", f"body over {limit} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    return read


def webhook_fast_path(handle: Handle) -> Callable[[Scope, Receive, Send], Awaitable[bool]]:
    """Answers POST /webhooks/<provider>/<account> (returns True), ignores anything else."""

    async def fast_path(scope: Scope, receive: Receive, send: Send) -> bool:
        if scope["method"] != "POST":
            return False
        parts = scope["path"].split("/")
        if len(parts) != 4 or parts[1] != "webhooks" or parts[2] not in CHANNELS or not parts[3]:
            return False
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        reader = body_reader(receive, headers.get("content-length"))
        result = await handle(CHANNELS[parts[2]], parts[3], headers, reader)
        await send_json(send, result)
        return True

    return fast_path


async def send_json(send: Send, result: WebhookResult) -> None:
    body = orjson.dumps(result.body)
    kind = PROBLEM_JSON if result.status >= 400 else b"application/json"
    headers = [(b"content-type", kind), (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in result.headers.items()]
    await send({"type": "http.response.start", "status": result.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def webhook_operations(responses: dict[int | str, dict[str, Any]]) -> tuple[APIRoute, ...]:
    """``WEBHOOKS`` as FastAPI operations for the OpenAPI document (``fast_path_routes``):
    never routed, so the endpoint only gives FastAPI the path parameter to describe."""
    return tuple(
        APIRoute(
            w.path,
            _described_by(w.param),
            methods=["POST"],
            summary=w.summary,
            description=w.description,
            responses=responses,
            tags=["webhooks"],
            name=f"{w.channel.value}_webhook",  # the operation ids the routes had
        )
        for w in WEBHOOKS
    )


def _described_by(param: str) -> Callable[..., Awaitable[None]]:
    """An endpoint whose signature is one string path parameter named ``param``."""

    async def answered_by_the_fast_path(**_: str) -> None:
        raise AssertionError("webhook POSTs are answered by the fast path, before routing")

    answered_by_the_fast_path.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter(param, inspect.Parameter.KEYWORD_ONLY, annotation=str)]
    )
    return answered_by_the_fast_path
