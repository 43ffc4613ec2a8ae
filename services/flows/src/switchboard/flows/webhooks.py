"""The webhook step's call: one POST signed with Standard Webhooks 1.0 (``webhook-id`` is
the call's effect id, so a receiver deduplicates the repeat a crash may cause), bounded by
the step's timeout. Every outcome becomes a :class:`WebhookResult` that the run branches on:
a failure is the flow author's to handle (``on_failure``), never a swallowed log.
"""

from __future__ import annotations

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
    try:
        response = await http.post(
            url,
            content=body,
            headers={**headers, **host},
            extensions=extensions,
            timeout=httpx.Timeout(float(data.get("timeout_s", 5.0))),
        )
    except httpx.TimeoutException:
        return WebhookResult(None, error=f"no answer within {data.get('timeout_s')} s")
    except httpx.HTTPError as exc:
        return WebhookResult(None, error=f"{type(exc).__name__}: {exc}"[:300])
    answer: Any = None
    if response.content and len(response.content) <= MAX_ANSWER_BYTES:
        try:
            answer = response.json()
        except ValueError:
            answer = None
    return WebhookResult(response.status_code, body=answer)
