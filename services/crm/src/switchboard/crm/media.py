"""Fetching a received file from its provider with the account's token.

Telegram: ``getFile`` names a path, then ``/file/bot<token>/<path>`` holds the bytes.
WhatsApp: ``GET /{version}/{media_id}`` answers a short-lived URL, fetched with the same
bearer token. Viber: the message's media URL is the file. Every fetch has a timeout, a few
retries with backoff and jitter on network errors and 5xx, and a size cap checked on the
declared size and again while reading, so an oversize file is a 413 without reading it
whole; anything the provider refuses is a 502 naming the provider's reason (never the
token, which lives in Telegram's URLs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from switchboard.crm.attachments import Attachment
from switchboard.runtime.accounts import Account

TELEGRAM_API = "https://api.telegram.org"
GRAPH_API = "https://graph.facebook.com"
GRAPH_VERSION = "v26.0"


class MediaError(Exception):
    """A download that cannot be served: the HTTP status to answer, a code and why."""

    def __init__(self, status: int, code: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.code = code
        self.reason = reason


class _TransientError(Exception):
    """A network error or a 5xx: worth another try."""


@dataclass(frozen=True)
class Fetched:
    """The bytes of a file and their type."""

    data: bytes
    content_type: str


def too_large(size: int, limit: int, where: str) -> MediaError:
    return MediaError(
        413, "too_large", f"the file is {size} bytes, over the {limit}-byte limit of {where}"
    )


class ProviderMedia:
    """Downloads received files through the provider APIs (bounded, retried)."""

    def __init__(self, http: httpx.AsyncClient, attempts: int = 3) -> None:
        self.http = http
        self.attempts = attempts

    async def fetch(
        self, channel: str, account: Account, attachment: Attachment, limit: int
    ) -> Fetched:
        """The file's bytes; :class:`MediaError` (413/502) when it cannot be had."""
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential_jitter(multiplier=0.2, max=2.0, jitter=0.2),
            retry=retry_if_exception_type(_TransientError),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await self._fetch_once(channel, account, attachment, limit)
        except _TransientError as exc:
            raise MediaError(502, "provider_unavailable", str(exc)) from None
        raise AssertionError("unreachable")  # pragma: no cover

    async def _fetch_once(
        self, channel: str, account: Account, attachment: Attachment, limit: int
    ) -> Fetched:
        if attachment.file_size is not None and attachment.file_size > limit:
            raise too_large(attachment.file_size, limit, f"{channel} downloads")
        if channel == "telegram":
            return await self._telegram(account, attachment, limit)
        if channel == "whatsapp":
            return await self._whatsapp(account, attachment, limit)
        if channel == "viber":
            if not attachment.url:
                raise MediaError(502, "no_media_url", "the Viber message carries no media URL")
            return await self._download("viber", attachment.url, {}, limit, attachment)
        raise MediaError(
            501, "unsupported_channel", f"files of {channel} messages cannot be downloaded"
        )

    async def _telegram(self, account: Account, attachment: Attachment, limit: int) -> Fetched:
        token = account.secrets.get("token")
        if not token:
            raise MediaError(502, "account_config", "the Telegram account has no token")
        base = str(account.settings.get("api_base_url") or TELEGRAM_API).rstrip("/")
        body = await self._json(
            "telegram", "POST", f"{base}/bot{token}/getFile", {}, {"file_id": attachment.file_id}
        )
        if body.get("ok") is not True:
            description = str(body.get("description") or "getFile failed")
            if "too big" in description.lower():
                raise MediaError(
                    413, "too_large", f"Telegram: {description} (getFile serves up to 20 MB)"
                )
            raise MediaError(502, "provider_refused", f"Telegram: {description}")
        result = body.get("result") or {}
        size = result.get("file_size")
        if isinstance(size, int) and size > limit:
            raise too_large(size, limit, "Telegram downloads")
        path = result.get("file_path")
        if not path:
            raise MediaError(502, "provider_refused", "Telegram: getFile gave no file_path")
        return await self._download(
            "telegram", f"{base}/file/bot{token}/{path}", {}, limit, attachment
        )

    async def _whatsapp(self, account: Account, attachment: Attachment, limit: int) -> Fetched:
        token = account.secrets.get("access_token")
        if not token:
            raise MediaError(502, "account_config", "the WhatsApp account has no access_token")
        base = str(account.settings.get("api_base_url") or GRAPH_API).rstrip("/")
        version = str(account.settings.get("graph_version") or GRAPH_VERSION)
        auth = {"Authorization": f"Bearer {token}"}
        body = await self._json(
            "whatsapp", "GET", f"{base}/{version}/{attachment.file_id}", auth, None
        )
        if "error" in body or not body.get("url"):
            error = body.get("error") if isinstance(body.get("error"), dict) else {}
            reason = str((error or {}).get("message") or "no media URL")
            raise MediaError(502, "provider_refused", f"WhatsApp: {reason}")
        size = body.get("file_size")
        if isinstance(size, int) and size > limit:
            raise too_large(size, limit, f"WhatsApp {attachment.kind} media")
        return await self._download("whatsapp", str(body["url"]), auth, limit, attachment)

    async def _json(
        self,
        provider: str,
        method: str,
        url: str,
        headers: dict[str, str],
        payload: dict[str, Any] | None,
    ) -> dict[str, Any]:
        """A provider's JSON answer (errors included: both APIs describe them in JSON)."""
        try:
            response = await self.http.request(method, url, headers=headers, json=payload)
        except httpx.HTTPError as exc:
            raise _TransientError(f"{provider}: {type(exc).__name__}") from None
        if response.status_code >= 500:
            raise _TransientError(f"{provider}: HTTP {response.status_code}")
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise MediaError(
                502, "provider_refused", f"{provider}: HTTP {response.status_code}, not JSON"
            )
        return body

    async def _download(
        self,
        provider: str,
        url: str,
        headers: dict[str, str],
        limit: int,
        attachment: Attachment,
    ) -> Fetched:
        """Stream the bytes, stopping as soon as they pass ``limit``."""
        try:
            async with self.http.stream("GET", url, headers=headers) as response:
                if response.status_code >= 500:
                    raise _TransientError(f"{provider}: HTTP {response.status_code}")
                if response.status_code != 200:
                    raise MediaError(
                        502,
                        "provider_refused",
                        f"{provider}: the file download answered HTTP {response.status_code}",
                    )
                declared = response.headers.get("content-length")
                if declared and declared.isdigit() and int(declared) > limit:
                    raise too_large(int(declared), limit, f"{provider} downloads")
                data = bytearray()
                async for chunk in response.aiter_bytes():
                    data += chunk
                    if len(data) > limit:
                        raise too_large(len(data), limit, f"{provider} downloads")
                kind = response.headers.get("content-type") or attachment.mime_type
        except httpx.HTTPError as exc:
            raise _TransientError(f"{provider}: {type(exc).__name__}") from None
        return Fetched(bytes(data), kind or "application/octet-stream")
