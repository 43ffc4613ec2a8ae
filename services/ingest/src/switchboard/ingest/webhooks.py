"""Webhook acceptance, kept free of HTTP framework types: verify, parse just enough to know
the provider's identity, publish to RAW and wait for the ack. Returns (status, body)."""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from switchboard.events import ids
from switchboard.events.catalog.common import Channel
from switchboard.ingest.raw import raw_envelope
from switchboard.runtime.accounts import Account

Publish = Callable[[str, bytes, dict[str, str]], Awaitable[Any]]
FindAccount = Callable[[Channel, str], Account | None]
TELEGRAM_SECRET_HEADER = "x-telegram-bot-api-secret-token"  # noqa: S105 (a header name)


class BusUnavailableError(Exception):
    """RAW did not acknowledge in time: answer 503 so the provider retries."""


@dataclass(frozen=True)
class RejectedError(Exception):
    """A precise 4xx: nothing was published."""

    status: int
    code: str
    message: str


def _json_object(body: bytes, content_type: str | None) -> dict[str, Any]:
    if content_type is None or content_type.split(";")[0].strip().lower() != "application/json":
        raise RejectedError(415, "unsupported_media_type", "Content-Type must be application/json")
    try:
        data = json.loads(body)
    except UnicodeDecodeError:
        raise RejectedError(400, "malformed_body", "body is not UTF-8") from None
    except ValueError as exc:
        raise RejectedError(400, "malformed_body", f"body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise RejectedError(400, "malformed_body", "body must be a JSON object")
    return data


async def accept_telegram(
    *,
    account_id: str,
    headers: Mapping[str, str],
    body: bytes,
    find_account: FindAccount,
    publish: Publish,
    source: str,
    trace_headers: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Verify a Telegram delivery and store it durably in RAW; raises :class:`RejectedError`."""
    account = find_account(Channel.TELEGRAM, account_id)
    if account is None:
        raise RejectedError(404, "unknown_account", f"no telegram account {account_id!r}")
    expected = account.secrets.get("webhook_secret", "")
    given = headers.get(TELEGRAM_SECRET_HEADER, "")
    if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
        raise RejectedError(401, "bad_secret", "missing or wrong X-Telegram-Bot-Api-Secret-Token")
    update = _json_object(body, headers.get("content-type"))
    update_id = update.get("update_id")
    if not isinstance(update_id, int) or isinstance(update_id, bool) or update_id < 0:
        raise RejectedError(400, "malformed_body", "update_id must be a non-negative integer")
    raw_id = ids.telegram_update(account_id, update_id)
    trace = trace_headers or {}
    subject, hdrs = raw_envelope(
        provider="telegram",
        account=account_id,
        raw_id=raw_id,
        source=source,
        workspace_id=account.workspace_id,
        received_at=datetime.now(UTC),
        traceparent=trace.get("traceparent"),
        tracestate=trace.get("tracestate"),
    )
    try:
        await publish(subject, body, hdrs)
    except Exception as exc:
        raise BusUnavailableError(str(exc)) from exc
    return {"ok": True, "id": raw_id}
