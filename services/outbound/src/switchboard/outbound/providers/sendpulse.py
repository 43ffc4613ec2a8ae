"""SendPulse REST client: address-book sync, transactional email (SMTP API) and SMS.

Not a `MessagingClient`: email and SMS are other commands than chat messages. The client
is typed (`Contact`, `Email`, `Sms` in, `EmailSent`, `SmsSent` out) and raises the same
classified `ProviderError` as the chat clients.

Authentication is OAuth client credentials (`POST /oauth/access_token`). The token is
cached per (base URL, client id) until shortly before `expires_in` runs out. A 401 on a
call means the token expired early (revoked, server restart): the client refreshes it once
and repeats the call once; this is the only repetition inside any provider client, because
it is part of the authentication protocol rather than a retry of a failed send. A second
401 is UNAUTHORIZED (the account waits for its credentials to be fixed). Concurrent
callers share one refresh (a lock per account).

Classification: 429 RATE_LIMITED for the account (`Retry-After`, else 1 s: the limit is
10 calls/s); 5xx and timeouts RETRYABLE; other 4xx PERMANENT with SendPulse's message
and `error_code` (`sendpulse_<error_code>`); bad credentials `sendpulse_invalid_client`.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from switchboard.outbound.providers.base import Failure, ProviderError
from switchboard.outbound.providers.transport import (
    DEFAULT_TIMEOUT,
    json_object,
    missing_config,
    send_request,
    status_failure,
)
from switchboard.runtime.accounts import Account

PROVIDER = "sendpulse"
SENDPULSE_API = "https://api.sendpulse.com"
TOKEN_MARGIN = 60.0
"""Refresh this many seconds before `expires_in` (at most a tenth of the lifetime)."""


@dataclass(frozen=True)
class SendPulseAccount:
    """The credentials of one SendPulse account, and where its API lives."""

    client_id: str
    client_secret: str = field(repr=False)
    base_url: str | None = None

    @classmethod
    def from_account(cls, account: Account) -> SendPulseAccount:
        """From a registry account: `secrets["client_id"]`/`["client_secret"]`, optional
        `settings["api_base_url"]`."""
        client_id = account.secrets.get("client_id") or account.settings.get("client_id")
        secret = account.secrets.get("client_secret")
        if not client_id or not secret:
            raise missing_config(PROVIDER, "secrets['client_id']", "secrets['client_secret']")
        base = account.settings.get("api_base_url")
        return cls(str(client_id), secret, str(base) if base else None)


@dataclass(frozen=True)
class Contact:
    """An address-book entry: the email and its variables (name, phone, custom fields)."""

    email: str
    variables: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Address:
    """An email address with an optional display name."""

    email: str
    name: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"email": self.email}
        if self.name is not None:
            out["name"] = self.name
        return out


@dataclass(frozen=True)
class Email:
    """A transactional email: HTML (base64-encoded by the client, as SendPulse wants) and/or
    text, or a SendPulse template with its variables."""

    sender: Address
    to: Sequence[Address]
    subject: str | None = None
    html: str | None = None
    text: str | None = None
    template_id: int | str | None = None
    template_variables: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        email: dict[str, Any] = {
            "from": self.sender.to_json(),
            "to": [address.to_json() for address in self.to],
        }
        if self.subject is not None:
            email["subject"] = self.subject
        if self.html is not None:
            email["html"] = base64.b64encode(self.html.encode("utf-8")).decode("ascii")
        if self.text is not None:
            email["text"] = self.text
        if self.template_id is not None:
            email["template"] = {
                "id": self.template_id,
                "variables": dict(self.template_variables),
            }
        return {"email": email}


@dataclass(frozen=True)
class Sms:
    """An SMS to one or more phones (digits with the country code; a leading + is fine)."""

    sender: str
    phones: Sequence[str]
    body: str
    transliterate: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "sender": self.sender,
            "phones": list(self.phones),
            "body": self.body,
            "transliterate": 1 if self.transliterate else 0,
        }


@dataclass(frozen=True)
class EmailSent:
    """SendPulse accepted the email: its id, and the whole answer."""

    id: str
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SmsSent:
    """SendPulse accepted the SMS: campaign id, how many phones it goes to, the answer."""

    campaign_id: int | None
    sends: int | None
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Token:
    """A cached access token and the (client clock) time to stop using it."""

    value: str
    expires_at: float


def classify_error(response: httpx.Response, body: dict[str, Any] | None) -> ProviderError:
    """A failed SendPulse answer (API `error_code` bodies and OAuth error bodies)."""
    data = body or {}
    message = str(data.get("message") or data.get("error_description") or data.get("error") or "")
    error_code = data.get("error_code")
    if data.get("error") == "invalid_client":
        code = "sendpulse_invalid_client"
    elif isinstance(error_code, int):
        code = f"sendpulse_{error_code}"
    else:
        code = f"sendpulse_{response.status_code}"
    return status_failure(PROVIDER, response, message or None, code=code, raw={"body": data})


class SendPulseClient:
    """One client for every SendPulse account; tokens are cached per account."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        base_url: str = SENDPULSE_API,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.http = http
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._clock = clock
        self._tokens: dict[tuple[str, str], _Token] = {}
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}

    # -- API methods ------------------------------------------------------------------

    async def add_to_address_book(
        self, account: SendPulseAccount, book_id: int | str, contacts: Sequence[Contact]
    ) -> dict[str, Any]:
        """Add (or update the variables of) contacts in an address book."""
        emails = [{"email": c.email, "variables": dict(c.variables)} for c in contacts]
        return await self._call(
            account, "POST", f"/addressbooks/{book_id}/emails", {"emails": emails}
        )

    async def send_email(self, account: SendPulseAccount, email: Email) -> EmailSent:
        """Send one transactional email through the SMTP API."""
        result = await self._call(account, "POST", "/smtp/emails", email.to_json())
        return EmailSent(id=str(result.get("id", "")), raw=result)

    async def send_sms(self, account: SendPulseAccount, sms: Sms) -> SmsSent:
        """Send one SMS campaign (one text to the given phones)."""
        result = await self._call(account, "POST", "/sms/send", sms.to_json())
        counters = result.get("counters")
        sends = counters.get("sends") if isinstance(counters, dict) else None
        campaign = result.get("campaign_id")
        return SmsSent(
            campaign_id=campaign if isinstance(campaign, int) else None,
            sends=sends if isinstance(sends, int) else None,
            raw=result,
        )

    # -- tokens -----------------------------------------------------------------------

    def _base(self, account: SendPulseAccount) -> str:
        """The API root for `account` (its own base URL, e.g. the sandbox, or ours)."""
        return (account.base_url or self.base_url).rstrip("/")

    def _key(self, account: SendPulseAccount) -> tuple[str, str]:
        """Tokens belong to a client id on one API root."""
        return (self._base(account), account.client_id)

    async def token(self, account: SendPulseAccount) -> str:
        """A valid access token for `account`: the cached one, or a new one."""
        key = self._key(account)
        cached = self._tokens.get(key)
        if cached is not None and self._clock() < cached.expires_at:
            return cached.value
        async with self._locks.setdefault(key, asyncio.Lock()):
            cached = self._tokens.get(key)
            if cached is not None and self._clock() < cached.expires_at:
                return cached.value
            return await self._fetch_token(account)

    async def _refresh(self, account: SendPulseAccount, refused: str) -> str:
        """A new token after `refused` got a 401 (unless another caller already has one)."""
        key = self._key(account)
        async with self._locks.setdefault(key, asyncio.Lock()):
            cached = self._tokens.get(key)
            if cached is not None and cached.value != refused and self._clock() < cached.expires_at:
                return cached.value
            self._tokens.pop(key, None)
            return await self._fetch_token(account)

    async def _fetch_token(self, account: SendPulseAccount) -> str:
        """Client-credentials grant; caches the token until shortly before it expires."""
        response = await send_request(
            self.http,
            PROVIDER,
            "POST",
            f"{self._base(account)}/oauth/access_token",
            timeout=self.timeout,
            secrets=[account.client_secret],
            json={
                "grant_type": "client_credentials",
                "client_id": account.client_id,
                "client_secret": account.client_secret,
            },
        )
        body = json_object(response)
        if not response.is_success:
            raise classify_error(response, body)
        value = (body or {}).get("access_token")
        if not isinstance(value, str) or not value:
            raise ProviderError(
                Failure.RETRYABLE, "sendpulse_bad_answer", "the token answer had no access_token"
            )
        lifetime = (body or {}).get("expires_in")
        seconds = float(lifetime) if isinstance(lifetime, int | float) else 3600.0
        margin = min(TOKEN_MARGIN, seconds / 10)
        self._tokens[self._key(account)] = _Token(value, self._clock() + seconds - margin)
        return value

    # -- calls ------------------------------------------------------------------------

    async def _call(
        self, account: SendPulseAccount, method: str, path: str, payload: dict[str, Any]
    ) -> dict[str, Any]:
        """One API call, repeated once with a fresh token if the first answer is 401."""
        token = await self.token(account)
        response = await self._request(account, method, path, payload, token)
        if response.status_code == 401:
            token = await self._refresh(account, token)
            response = await self._request(account, method, path, payload, token)
            if response.status_code == 401:
                self._tokens.pop(self._key(account), None)
                error = classify_error(response, json_object(response))
                error.reason = f"token refused right after a refresh: {error.reason}"
                raise error
        body = json_object(response)
        if not response.is_success:
            raise classify_error(response, body)
        return body or {}

    async def _request(
        self,
        account: SendPulseAccount,
        method: str,
        path: str,
        payload: dict[str, Any],
        token: str,
    ) -> httpx.Response:
        """One authenticated HTTP request (a timeout, no retries)."""
        return await send_request(
            self.http,
            PROVIDER,
            method,
            f"{self._base(account)}{path}",
            timeout=self.timeout,
            secrets=[token, account.client_secret],
            json=payload,
            headers={"Authorization": f"Bearer {token}"},
        )
