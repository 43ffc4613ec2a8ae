"""The webhook step's call: one POST signed with Standard Webhooks 1.0 (``webhook-id`` is
the call's effect id, so a receiver deduplicates the repeat a crash may cause), bounded by
the step's timeout. Every outcome becomes a :class:`WebhookResult` that the run branches on:
a failure is the flow author's to handle (``on_failure``), never a swallowed log.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import httpx
from pydantic import SecretStr
from standardwebhooks import Webhook

from switchboard.flows.engine import WebhookResult
from switchboard.runtime.addresses import NotPublicError, pinned

MAX_ANSWER_BYTES = 256 * 1024


def signed_request(
    secret: str, call_id: str, payload: dict[str, Any], now: datetime
) -> tuple[str, dict[str, str]]:
    """The exact body text and the headers of a call (the signature covers that text)."""
    body = json.dumps({**payload, "timestamp": now.isoformat()}, separators=(",", ":"))
    headers = {
        "content-type": "application/json",
        "webhook-id": call_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(call_id, now, body),
    }
    return body, headers


async def call(
    http: httpx.AsyncClient,
    secret: SecretStr | None,
    name: str,
    call_id: str,
    data: Mapping[str, Any],
    *,
    private: bool = False,
) -> WebhookResult:
    """Make the call a ``webhook`` effect describes, signed with ``secret`` (the run's
    workspace's secret called ``name``), and say how it went. The URL is the flow author's:
    only a public address is called (``private`` allows others: tests, a receiver in the
    cluster), the one that was checked."""
    if secret is None:
        return WebhookResult(None, error=f"no signing secret named {name!r} in the workspace")
    try:
        url, host, extensions = await pinned(str(data["url"]), private=private)
    except NotPublicError as exc:
        return WebhookResult(None, error=f"{exc}: not called")
    body, headers = signed_request(
        secret.get_secret_value(), call_id, dict(data["payload"]), datetime.now(UTC)
    )
    timeout = float(data.get("timeout_s", 5.0))
    try:
        # The step's timeout is the whole call's: httpx's bounds each read, and a receiver
        # dripping its answer slower than that held the step (and a worker slot) at will.
        async with asyncio.timeout(timeout):
            status, content = await _post(http, url, body, {**headers, **host}, extensions)
    except TimeoutError:
        return WebhookResult(None, error=f"no answer within {data.get('timeout_s')} s")
    except httpx.HTTPError as exc:
        return WebhookResult(None, error=f"{type(exc).__name__}: {exc}"[:300])
    answer: Any = None
    if content:
        try:
            answer = json.loads(content)
        except ValueError:
            answer = None
    return WebhookResult(status, body=answer)


async def _post(
    http: httpx.AsyncClient,
    url: str,
    body: str,
    headers: dict[str, str],
    extensions: dict[str, Any],
) -> tuple[int, bytes | None]:
    """The status and the answer's bytes, read no further than ``MAX_ANSWER_BYTES`` (None
    past it): the flows service is every workspace's, and an endless answer was read whole."""
    async with http.stream(
        "POST", url, content=body, headers=headers, extensions=extensions, timeout=None
    ) as response:
        content = bytearray()
        async for chunk in response.aiter_bytes():
            content += chunk
            if len(content) > MAX_ANSWER_BYTES:
                return response.status_code, None
        return response.status_code, bytes(content)
