"""Webhook acceptance, free of HTTP framework types: verify the provider's proof, read just
enough of the body to know its identity, store it in RAW and wait for the ack.

Each provider has a verifier that returns the deterministic RAW id or raises
:class:`RejectedError` (a precise 4xx; nothing is published).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from prometheus_client import Counter
from standardwebhooks.webhooks import (
    EmptyWebhookSecretError,
    Webhook,
    WebhookVerificationError,
)

from switchboard.events import ids
from switchboard.events.catalog.common import Channel
from switchboard.ingest.errors import IngestServiceError
from switchboard.ingest.raw import raw_envelope
from switchboard.runtime.accounts import Account
from switchboard.runtime.bus import PayloadTooLargeError
from switchboard.runtime.logging import get_logger

log = get_logger(__name__)
FOREIGN_NUMBERS = Counter(
    "switchboard_ingest_foreign_number_changes_total",
    "WhatsApp changes for a number no account of the signing app has (not stored)",
)

Publish = Callable[[str, bytes, dict[str, str]], Awaitable[Any]]
TELEGRAM_SECRET_HEADER = "x-telegram-bot-api-secret-token"  # noqa: S105 (a header name)
WHATSAPP_SIGNATURE_HEADER = "x-hub-signature-256"
VIBER_SIGNATURE_HEADER = "x-viber-content-signature"


# What a RAW message's headers take of the server's max_payload: the envelope is about
# 600 bytes; the rest is room for a caller's traceparent/tracestate.
RAW_HEADER_ROOM = 4096


def body_limit(configured: int, max_payload: int) -> int:
    """The largest webhook body ingest accepts: its setting, but never more than the bus
    can carry (NATS counts headers against ``max_payload``; a larger publish would have
    the server close the connection)."""
    return max(min(configured, max_payload - RAW_HEADER_ROOM), 0)


class BusUnavailableError(IngestServiceError):
    """RAW did not acknowledge in time: answer 503 so the provider retries."""


@dataclass(frozen=True)
class RejectedError(IngestServiceError):
    """A precise 4xx: nothing was published."""

    status: int
    code: str
    message: str
    headers: dict[str, str] | None = None


def _secret(account: Account, name: str) -> str:
    value = account.secrets.get(name, "")
    if not value:
        # A misconfigured account must not accept unverifiable traffic.
        raise RejectedError(401, "not_configured", f"account has no {name}; cannot verify")
    return value


def _secrets(account: Account, name: str, now: datetime) -> list[str]:
    """The current secret, plus the previous one while a rotation's grace period lasts.
    ``now`` is the server clock's: the grace's end was written by whichever instance
    rotated, and every instance judges it on the one clock they share."""
    found = [_secret(account, name)]
    previous = account.secrets.get(f"{name}_previous")
    until = account.settings.get("previous_secret_until")
    if previous and until and now < datetime.fromisoformat(str(until)):
        found.append(previous)
    return found


def _any_matches(given: str, candidates: list[str]) -> bool:
    # Compare with every candidate (no early exit) so timing does not reveal which matched.
    results = [hmac.compare_digest(given.encode(), c.encode()) for c in candidates]
    return any(results)


def json_object(body: bytes, content_type: str | None) -> dict[str, Any]:
    """The body as a JSON object, or a 415/400 naming the problem."""
    if content_type is None or content_type.split(";")[0].strip().lower() != "application/json":
        raise RejectedError(415, "unsupported_media_type", "Content-Type must be application/json")
    try:
        data = orjson.loads(body)  # several times faster than json on the hot path
    except orjson.JSONDecodeError as exc:
        reason = "body is not UTF-8" if "utf-8" in str(exc).lower() else f"body is not JSON: {exc}"
        raise RejectedError(400, "malformed_body", reason) from None
    if not isinstance(data, dict):
        raise RejectedError(400, "malformed_body", "body must be a JSON object")
    return data


def verify_telegram(
    account: Account, headers: Mapping[str, str], body: bytes, now: datetime
) -> str:
    """Secret header (constant time), then ``update_id`` -> ``tg:<bot>:<update_id>``."""
    given = headers.get(TELEGRAM_SECRET_HEADER, "")
    if not _any_matches(given, _secrets(account, "webhook_secret", now)):
        raise RejectedError(401, "bad_secret", "missing or wrong X-Telegram-Bot-Api-Secret-Token")
    update = json_object(body, headers.get("content-type"))
    update_id = update.get("update_id")
    if not isinstance(update_id, int) or isinstance(update_id, bool) or update_id < 0:
        raise RejectedError(400, "malformed_body", "update_id must be a non-negative integer")
    return ids.telegram_update(account.id, update_id)


def _hmac_hex(key: str, body: bytes) -> str:
    return hmac.new(key.encode(), body, hashlib.sha256).hexdigest()


def verify_whatsapp(
    account: Account, headers: Mapping[str, str], body: bytes, now: datetime
) -> str:
    """``X-Hub-Signature-256: sha256=<hex>`` over the raw body with the app secret."""
    given = headers.get(WHATSAPP_SIGNATURE_HEADER, "")
    expected = "sha256=" + _hmac_hex(_secret(account, "app_secret"), body)
    if not hmac.compare_digest(given.strip().lower().encode(), expected.encode()):
        raise RejectedError(401, "bad_signature", "missing or wrong X-Hub-Signature-256")
    data = json_object(body, headers.get("content-type"))
    if data.get("object") != "whatsapp_business_account":
        raise RejectedError(400, "malformed_body", "object must be whatsapp_business_account")
    if not isinstance(data.get("entry"), list):
        raise RejectedError(400, "malformed_body", "entry must be a list")
    return whatsapp_raw_id(data, body)


def whatsapp_raw_id(data: dict[str, Any], body: bytes) -> str:
    """``wa:<wamid>`` for one message (``wa:<wamid>:<status>`` for a status); a batch gets a
    hash of its sorted identities, so a retry of the same batch is the same RAW message."""
    keys: list[str] = []
    for entry in data.get("entry") or []:
        for change in (entry.get("changes") or []) if isinstance(entry, dict) else []:
            value = change.get("value") if isinstance(change, dict) else None
            if not isinstance(value, dict):
                continue
            for msg in value.get("messages") or []:
                if isinstance(msg, dict) and msg.get("id"):
                    keys.append(str(msg["id"]))
            for st in value.get("statuses") or []:
                if isinstance(st, dict) and st.get("id"):
                    keys.append(f"{st['id']}:{st.get('status', '')}")
    if len(keys) == 1:
        return ids.whatsapp_message(keys[0])
    if keys:
        return "wa:batch:" + ids.stable_hash(*sorted(keys))
    return "wa:body:" + hashlib.sha256(body).hexdigest()[:32]


def _number_of(change: Any) -> str | None:
    """The number a WhatsApp change is for (``value.metadata.phone_number_id``), if it names one."""
    value = change.get("value") if isinstance(change, dict) else None
    metadata = value.get("metadata") if isinstance(value, dict) else None
    number = metadata.get("phone_number_id") if isinstance(metadata, dict) else None
    return None if number is None else str(number)


def whatsapp_numbers(data: dict[str, Any]) -> dict[str | None, dict[str, Any]]:
    """A webhook body's changes grouped by the number each is for (None: a change naming
    none, such as an account update, or a part too malformed to tell), each group a body of
    its own: the same ``object``, each entry with its other fields and only the group's
    changes, in order. Pure: tested against pywa's routing."""
    groups: dict[str | None, dict[str, Any]] = {}

    def add(number: str | None, entry: Any) -> None:
        groups.setdefault(number, {"object": data.get("object"), "entry": []})["entry"].append(
            entry
        )

    for entry in data.get("entry") or []:
        changes = entry.get("changes") if isinstance(entry, dict) else None
        if not isinstance(changes, list):
            add(None, entry)  # the normalizer names what is wrong with it
            continue
        per: dict[str | None, list[Any]] = {}
        for change in changes:
            per.setdefault(_number_of(change), []).append(change)
        rest = {k: v for k, v in entry.items() if k != "changes"}
        for number, theirs in per.items():
            add(number, {**rest, "changes": theirs})
    return groups


def whatsapp_targets(
    account: Account, body: bytes, raw_id: str, owner_of: Callable[[str], Account | None]
) -> list[tuple[Account, str, bytes]]:
    """Where a verified WhatsApp body goes: (account, RAW id, body) for each account whose
    number it has changes for. One Meta app sends every number's changes to its one callback
    URL, so a body posted to ``account`` can hold another number's, maybe another
    workspace's: those go to the account that number is (``owner_of``) if it is an account
    of the same app (its app secret is the one that signed the body), and nowhere otherwise.
    A body all of ``account``'s own number (or of an account without one set) is stored as
    it came."""
    own = account.settings.get("phone_number_id")
    if own is None or b'"phone_number_id"' not in body:
        return [(account, raw_id, body)]
    groups = whatsapp_numbers(orjson.loads(body))
    if set(groups) <= {None, str(own)}:
        return [(account, raw_id, body)]
    secret = account.secrets.get("app_secret")
    parts: dict[str, tuple[Account, dict[str, Any]]] = {}
    for number, part in groups.items():
        target = account if number in (None, str(own)) else owner_of(number)
        if (
            target is None
            or target.channel is not Channel.WHATSAPP
            or (target.secrets.get("app_secret") != secret)
        ):
            FOREIGN_NUMBERS.inc()
            log.warning(
                "whatsapp changes for a number no account of this app has: not stored",
                account=account.id,
                phone_number_id=number,
            )
            continue
        found = parts.get(target.key)
        if found is None:
            parts[target.key] = (target, part)
        else:
            found[1]["entry"].extend(part["entry"])
    targets = []
    for target, part in parts.values():
        stored = orjson.dumps(part)
        targets.append((target, whatsapp_raw_id(part, stored), stored))
    return targets


def whatsapp_handshake(
    account: Account, mode: str, token: str, challenge: str, now: datetime
) -> str:
    """Meta's GET verification: echo the challenge only for the right mode and token."""
    if mode != "subscribe" or not _any_matches(token, _secrets(account, "verify_token", now)):
        raise RejectedError(403, "bad_verify_token", "hub.mode or hub.verify_token is wrong")
    if not challenge:
        raise RejectedError(400, "missing_challenge", "hub.challenge is required")
    return challenge


def verify_viber(account: Account, headers: Mapping[str, str], body: bytes, now: datetime) -> str:
    """``X-Viber-Content-Signature`` = hex HMAC-SHA256(auth token, raw body), no prefix."""
    given = headers.get(VIBER_SIGNATURE_HEADER, "").strip().lower()
    expected = _hmac_hex(_secret(account, "token"), body)
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise RejectedError(401, "bad_signature", "missing or wrong X-Viber-Content-Signature")
    data = json_object(body, headers.get("content-type"))
    event = data.get("event")
    if not isinstance(event, str) or not event:
        raise RejectedError(400, "malformed_body", "event must be a non-empty string")
    token = data.get("message_token", data.get("timestamp"))
    if not isinstance(token, int | str) or isinstance(token, bool):
        raise RejectedError(400, "malformed_body", "message_token or timestamp is required")
    user = data.get("user_id") or (data.get("sender") or {}).get("id") or ""
    if not isinstance(user, str):
        user = ""
    return ids.viber_event(account.id, event, token, user)


def verify_generic(account: Account, headers: Mapping[str, str], body: bytes, now: datetime) -> str:
    """Standard Webhooks: ``webhook-id``/``-timestamp``/``-signature``, 5 min tolerance.

    ``standardwebhooks`` >= 1.3 verifies the body byte for byte and compares whole
    signature entries, so a body that is not UTF-8 gets past the signature and is then a
    400 about the body, and entries of other schemes beside ``v1`` are simply skipped.
    """
    reason = "no signature"
    for secret in _secrets(account, "signing_secret", now):
        try:
            webhook = Webhook(secret)
        except (ValueError, RuntimeError, EmptyWebhookSecretError):  # binascii.Error: ValueError
            raise RejectedError(
                401, "not_configured", "account signing_secret is not base64; cannot verify"
            ) from None
        try:
            webhook.verify(body, dict(headers), json_parse=False)
            break
        except WebhookVerificationError as exc:
            reason = str(exc)
    else:
        raise RejectedError(401, "bad_signature", f"Standard Webhooks: {reason}")
    json_object(body, headers.get("content-type"))
    return ids.generic_webhook(account.id, headers["webhook-id"])


# A verifier gets the server clock's ``now`` (for a rotated secret's grace) and returns the
# RAW id, or raises RejectedError.
Verifier = Callable[[Account, Mapping[str, str], bytes, datetime], str]
VERIFIERS: dict[Channel, Verifier] = {
    Channel.TELEGRAM: verify_telegram,
    Channel.WHATSAPP: verify_whatsapp,
    Channel.VIBER: verify_viber,
    Channel.GENERIC: verify_generic,
}


async def store_raw(
    *,
    channel: Channel,
    account: Account,
    raw_id: str,
    body: bytes,
    publish: Publish,
    source: str,
    received_at: datetime,
    trace_headers: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Publish the verified body to RAW and return only once JetStream has stored it.
    ``received_at`` is on the server clock: flows times its delays from it in another
    process."""
    trace = trace_headers or {}
    subject, hdrs = raw_envelope(
        provider=channel.value,
        account=account.id,
        raw_id=raw_id,
        source=source,
        workspace_id=account.workspace_id,
        received_at=received_at,
        traceparent=trace.get("traceparent"),
        tracestate=trace.get("tracestate"),
    )
    try:
        await publish(subject, body, hdrs)
    except PayloadTooLargeError as exc:  # the body fit, but with its headers it does not
        raise RejectedError(413, "too_large", str(exc)) from None
    except Exception as exc:
        raise BusUnavailableError(str(exc)) from exc
    return {"ok": True, "id": raw_id}
