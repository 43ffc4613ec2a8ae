"""WhatsApp webhooks: the GET verification handshake, signed envelopes, at-least-once queueing.

A number delivers nothing until its webhook URL passed the handshake (`hub.challenge` echoed
back); payloads raised before that wait in the number's queue. Every POST carries
`X-Hub-Signature-256: sha256=<hex HMAC-SHA256(app secret, raw body)>`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx
from starlette.responses import JSONResponse, Response

from switchboard.sandbox.errors import SandboxError
from switchboard.sandbox.handshakes import handshake
from switchboard.sandbox.webhooks import WebhookTarget
from switchboard.sandbox.whatsapp.state import Subscription, WaNumber, WhatsAppState

SIGNATURE_HEADER = "X-Hub-Signature-256"


class VerificationError(SandboxError):
    """The callback URL did not echo the challenge (Meta's "couldn't be validated")."""


def verification_failed(exc: Exception) -> Response | None:
    """A webhook whose handshake failed answers what Meta's dashboard shows."""
    if isinstance(exc, VerificationError):
        return JSONResponse({"error": str(exc), "verified": False}, status_code=400)
    return None


def signature(app_secret: str, body: bytes) -> str:
    """The header value Meta sends: `sha256=` + hex HMAC-SHA256 of the raw body."""
    digest = hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def signer(number: WaNumber) -> WebhookTarget:
    """The delivery target of a verified number (reads the app secret at send time)."""

    def sign(body: bytes) -> Mapping[str, str]:
        return {SIGNATURE_HEADER: signature(number.app_secret, body)}

    return WebhookTarget(url=number.subscription.url, sign=sign)


def envelope(number: WaNumber, value: dict[str, Any]) -> dict[str, Any]:
    """Meta's webhook body around one `value` (messages, statuses or errors)."""
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": number.waba_id,
                "changes": [
                    {
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": number.metadata(),
                            **value,
                        },
                        "field": "messages",
                    }
                ],
            }
        ],
    }


def queue(state: WhatsAppState, number: WaNumber, value: dict[str, Any], ref: str) -> None:
    """Queue one webhook; with `duplicate_rate` it is queued twice (at-least-once)."""
    payload = envelope(number, value)
    number.deliveries.put(payload, ref=ref)
    rate = state.config.duplicate_rate
    if rate and number.rng.random() < rate:
        number.deliveries.put(payload, ref=ref)


async def verify(state: WhatsAppState, number: WaNumber, url: str) -> None:
    """Perform Meta's GET handshake against `url`; raise VerificationError when it fails.

    The attempt is recorded as a delivery with ref `verification`.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise VerificationError("the callback URL must be an http(s) URL")
    challenge = str(secrets.randbelow(10**10))
    params = {
        "hub.mode": "subscribe",
        "hub.verify_token": number.verify_token,
        "hub.challenge": challenge,
    }
    timeout = state.config.verify_timeout

    def problem_of(response: httpx.Response) -> str | None:
        if response.status_code != 200:
            return f"the callback answered {response.status_code}"
        if response.text.strip() != challenge:
            return "the callback did not echo hub.challenge"
        return None

    problem = await handshake(
        state.core,
        provider="whatsapp",
        account=number.phone_number_id,
        url=url,
        ref="verification",
        request=lambda http: http.get(url, params=params, timeout=timeout),
        problem_of=problem_of,
        unreachable=lambda error: f"the callback could not be reached ({error})",
    )
    if problem is not None:
        raise VerificationError(
            f"The callback URL or verify token couldn't be validated: {problem}"
        )


async def subscribe(state: WhatsAppState, number: WaNumber, url: str) -> Subscription:
    """Configure the webhook URL: handshake first, deliveries only once it passed.

    On failure the previous (verified) subscription stays in force and the error is kept
    in `subscription.last_error`; an empty URL stops deliveries (payloads stay queued).
    """
    if not url:
        number.subscription = Subscription()
        number.deliveries.set_target(None)
        return number.subscription
    try:
        await verify(state, number, url)
    except VerificationError as exc:
        number.subscription.last_error = str(exc)
        raise
    number.subscription = Subscription(url=url, verified=True, verified_at=state.core.clock.time())
    number.deliveries.set_target(signer(number))
    return number.subscription
