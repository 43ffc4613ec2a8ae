"""Outbound webhooks to other systems, signed with Standard Webhooks 1.0.

Each delivery is one POST of a JSON body with `webhook-id` (our message id, so the
receiver can deduplicate retries), `webhook-timestamp` (unix seconds) and
`webhook-signature` (`v1,<base64 HMAC-SHA256>` of `{id}.{timestamp}.{body}`, computed by
the `standardwebhooks` library with the endpoint's `whsec_...` secret).

Classification of the receiver's answer (Standard Webhooks' sender rules):
- 2xx: delivered.
- 410 Gone: PERMANENT (`webhook_410`): the endpoint is gone and should be disabled.
- 429: RATE_LIMITED for the endpoint (`Retry-After`, else 60 s).
- 502, 503, 504: RATE_LIMITED with the `Retry-After` when the receiver gives one (it is
  asking for a pause), otherwise RETRYABLE; other 5xx, 408, timeouts, resets: RETRYABLE.
- 401: UNAUTHORIZED: the receiver refuses our signature (the account's signing secret is
  not the one it has); the account waits, its messages unspent, until it is fixed.
- Any other status (3xx: redirects are not followed; 4xx such as 400, 404): PERMANENT.
  The receiver refuses this delivery as it is; retrying it will not help.

`GenericWebhookClient` makes this a `MessagingClient` for the "generic" channel: the
account's `settings["url"]` receives `{"type": "message.send", "timestamp", "data":
<SendMessage as JSON>}` signed with `secrets["signing_secret"]`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from standardwebhooks import Webhook

from switchboard.events.catalog.outbound import SendMessage
from switchboard.outbound.providers.base import Failure, ProviderError, Sent
from switchboard.outbound.providers.transport import (
    json_object,
    missing_config,
    retry_after_header,
    send_request,
    status_failure,
)
from switchboard.runtime.accounts import Account

PROVIDER = "webhook"
WEBHOOK_TIMEOUT = httpx.Timeout(15.0, connect=5.0)
"""Standard Webhooks suggests 15-30 s for the receiver to answer."""
THROTTLE_WAIT = 60.0
THROTTLE_STATUSES = frozenset({502, 503, 504})


@dataclass(frozen=True)
class Delivered:
    """The receiver accepted the delivery."""

    status: int
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)


def sign_headers(secret: str, message_id: str, timestamp: datetime, body: str) -> dict[str, str]:
    """The three Standard Webhooks headers for `body` (the exact text that is sent).

    A naive `timestamp` is read as UTC, as the library does when it signs."""
    timestamp = (
        timestamp.replace(tzinfo=UTC) if timestamp.tzinfo is None else timestamp.astimezone(UTC)
    )
    signature = Webhook(secret).sign(message_id, timestamp, body)
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": signature,
    }


def classify_status(response: httpx.Response) -> ProviderError:
    """A non-2xx answer of the receiver (see the module doc)."""
    status = response.status_code
    reason = f"HTTP {status} {response.reason_phrase}".strip()
    raw: dict[str, Any] = {"http_status": status}
    after = retry_after_header(response.headers)
    if status == 410:
        return ProviderError(
            Failure.PERMANENT, f"{PROVIDER}_410", "the endpoint is gone (410)", raw=raw
        )
    return status_failure(
        PROVIDER,
        response,
        reason,
        raw=raw,
        default_retry_after=THROTTLE_WAIT,
        throttled=status in THROTTLE_STATUSES and after is not None,
    )


class WebhookClient:
    """Delivers signed webhooks; one attempt per call."""

    def __init__(
        self, http: httpx.AsyncClient, *, timeout: httpx.Timeout | float = WEBHOOK_TIMEOUT
    ) -> None:
        self.http = http
        self.timeout = timeout

    async def deliver(
        self,
        url: str,
        secret: str,
        message_id: str,
        payload: Mapping[str, Any] | str,
        *,
        timestamp: datetime | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Delivered:
        """POST `payload` (a JSON object, or JSON text sent byte for byte) to `url`."""
        body = (
            payload
            if isinstance(payload, str)
            else json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
        )
        when = timestamp or datetime.now(UTC)
        try:
            signed = sign_headers(secret, message_id, when, body)
        except Exception as exc:  # the library raises several types for a bad secret
            raise ProviderError(
                Failure.PERMANENT,
                "webhook_config",
                f"the signing secret is not a valid whsec_/base64 secret: {type(exc).__name__}",
            ) from exc
        all_headers = {**(headers or {}), **signed, "content-type": "application/json"}
        response = await send_request(
            self.http,
            PROVIDER,
            "POST",
            url,
            timeout=self.timeout,
            secrets=[secret],
            content=body.encode("utf-8"),
            headers=all_headers,
        )
        if not response.is_success:
            raise classify_status(response)
        return Delivered(
            status=response.status_code,
            body=json_object(response),
            headers=dict(response.headers),
        )


def message_payload(command: SendMessage, timestamp: datetime) -> dict[str, Any]:
    """The Standard Webhooks payload shape (`type`, `timestamp`, `data`) of a send."""
    return {
        "type": "message.send",
        "timestamp": timestamp.isoformat().replace("+00:00", "Z"),
        "data": command.model_dump(mode="json", exclude_none=True),
    }


class GenericWebhookClient:
    """The "generic" channel: a send is a signed webhook to the account's URL."""

    channel = "generic"

    def __init__(
        self, http: httpx.AsyncClient, *, timeout: httpx.Timeout | float = WEBHOOK_TIMEOUT
    ) -> None:
        self.webhooks = WebhookClient(http, timeout=timeout)

    async def send(self, account: Account, command: SendMessage) -> Sent:
        """Deliver the command; the receiver's JSON `id` (if any) is the provider id."""
        url = account.settings.get("url")
        secret = account.secrets.get("signing_secret")
        if not url or not secret:
            raise missing_config(PROVIDER, "settings['url']", "secrets['signing_secret']")
        when = datetime.now(UTC)
        delivered = await self.webhooks.deliver(
            str(url), secret, command.message_id, message_payload(command, when), timestamp=when
        )
        answer_id = (delivered.body or {}).get("id")
        return Sent(
            provider_message_id=str(answer_id) if answer_id else command.message_id,
            raw={"http_status": delivered.status},
        )
