"""Fetching a received file from its provider with the account's token, as a stream.

Telegram: ``getFile`` names a path, then ``/file/bot<token>/<path>`` holds the bytes.
WhatsApp: ``GET /{version}/{media_id}`` answers a short-lived URL, fetched with the same
bearer token. Viber: the message's media URL is the file. :meth:`ProviderMedia.open` does
everything up to the file's first byte (with a timeout, a few retries with backoff and jitter
on network errors and 5xx, and the size cap checked on every declared size, so an oversize
file is a 413 before a byte is read); :meth:`Download.chunks` then yields the bytes and
stops as soon as they pass the cap. Every provider call goes through the account's circuit
breaker: after consecutive failures the provider is not called until a probe is due (503
with the wait). Anything the provider refuses is a 502 naming the provider's reason (never
the token, which lives in Telegram's URLs).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
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
from switchboard.crm.errors import CrmServiceError
from switchboard.runtime.accounts import Account
from switchboard.runtime.addresses import MAX_REDIRECTS, NotPublicError, send_public
from switchboard.runtime.breaker import Breaker, Breakers
from switchboard.runtime.provider_checks import api_base

TELEGRAM_API = "https://api.telegram.org"
GRAPH_API = "https://graph.facebook.com"
GRAPH_VERSION = "v26.0"


class MediaError(CrmServiceError):
    """A download that cannot be served: the HTTP status to answer, a code and why."""

    def __init__(
        self, status: int, code: str, reason: str, retry_after: float | None = None
    ) -> None:
        super().__init__(reason)
        self.status = status
        self.code = code
        self.reason = reason
        self.retry_after = retry_after


class _TransientError(Exception):
    """A network error or a 5xx: worth another try."""


@dataclass
class Download:
    """A provider's file answer whose status and headers passed: the bytes are not read yet.
    Whoever opens it closes it (:meth:`aclose`), read to the end or not."""

    provider: str
    response: httpx.Response
    limit: int
    content_type: str
    breaker: Breaker

    @property
    def size(self) -> int | None:
        """The byte size the provider declared for what it sends (None: not declared, or
        compressed on the wire, so the bytes we pass on differ in length)."""
        declared = self.response.headers.get("content-length")
        encoded = self.response.headers.get("content-encoding", "identity") != "identity"
        return int(declared) if declared and declared.isdigit() and not encoded else None

    async def chunks(self) -> AsyncIterator[bytes]:
        """The file's bytes as they arrive; :class:`MediaError` 413 once they pass the limit
        (the provider did not declare the size, or lied), 502 if the provider breaks off."""
        read = 0
        try:
            async for chunk in self.response.aiter_bytes():
                read += len(chunk)
                if read > self.limit:
                    raise MediaError(
                        413,
                        "too_large",
                        f"the file is over the {self.limit}-byte limit of {self.provider} "
                        f"downloads (cut after {read} bytes)",
                    )
                yield chunk
        except httpx.HTTPError as exc:
            self.breaker.failure(type(exc).__name__)
            raise MediaError(
                502,
                "provider_unavailable",
                f"{self.provider}: the download broke off ({type(exc).__name__})",
            ) from None

    async def aclose(self) -> None:
        await self.response.aclose()


def too_large(size: int, limit: int, where: str) -> MediaError:
    return MediaError(
        413, "too_large", f"the file is {size} bytes, over the {limit}-byte limit of {where}"
    )


def _endpoint(account: Account, who: str, secret: str, default_base: str) -> tuple[str, str]:
    """(the account's ``secret``, its API base URL): a download needs both, and an account
    without the secret is a configuration problem (502) naming it."""
    token = account.secrets.get(secret)
    if not token:
        raise MediaError(502, "account_config", f"the {who} account has no {secret}")
    return token, api_base(account, default_base)


class ProviderMedia:
    """Downloads received files through the provider APIs (bounded, retried, behind a
    circuit breaker per provider account)."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        breakers: Breakers,
        attempts: int = 3,
        *,
        private_urls: bool = False,
    ) -> None:
        self.http = http
        self.breakers = breakers
        self.attempts = attempts
        self.private_urls = private_urls  # a message's own URLs may name non-public hosts

    async def open(
        self, channel: str, account: Account, attachment: Attachment, limit: int
    ) -> Download:
        """The file's stream, opened; :class:`MediaError` (413/502/503) when it cannot be."""
        breaker = self.breakers.get(channel, account.id)
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential_jitter(multiplier=0.2, max=2.0, jitter=0.2),
            retry=retry_if_exception_type(_TransientError),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await self._open_once(channel, account, attachment, limit, breaker)
        except _TransientError as exc:
            raise MediaError(502, "provider_unavailable", str(exc)) from None
        raise AssertionError("unreachable")  # pragma: no cover

    async def _open_once(
        self,
        channel: str,
        account: Account,
        attachment: Attachment,
        limit: int,
        breaker: Breaker,
    ) -> Download:
        if attachment.file_size is not None and attachment.file_size > limit:
            raise too_large(attachment.file_size, limit, f"{channel} downloads")
        if channel == "telegram":
            return await self._telegram(account, attachment, limit, breaker)
        if channel == "whatsapp":
            return await self._whatsapp(account, attachment, limit, breaker)
        if channel == "viber":
            if not attachment.url:
                raise MediaError(502, "no_media_url", "the Viber message carries no media URL")
            return await self._linked("viber", attachment.url, limit, attachment, breaker)
        raise MediaError(
            501, "unsupported_channel", f"files of {channel} messages cannot be downloaded"
        )

    async def _telegram(
        self, account: Account, attachment: Attachment, limit: int, breaker: Breaker
    ) -> Download:
        token, base = _endpoint(account, "Telegram", "token", TELEGRAM_API)
        body = await self._json(
            "telegram",
            breaker,
            "POST",
            f"{base}/bot{token}/getFile",
            {},
            {"file_id": attachment.file_id},
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
        return await self._fetch(
            "telegram", f"{base}/file/bot{token}/{path}", {}, limit, attachment, breaker
        )

    async def _whatsapp(
        self, account: Account, attachment: Attachment, limit: int, breaker: Breaker
    ) -> Download:
        token, base = _endpoint(account, "WhatsApp", "access_token", GRAPH_API)
        version = str(account.settings.get("graph_version") or GRAPH_VERSION)
        auth = {"Authorization": f"Bearer {token}"}
        body = await self._json(
            "whatsapp", breaker, "GET", f"{base}/{version}/{attachment.file_id}", auth, None
        )
        if "error" in body or not body.get("url"):
            error = body.get("error") if isinstance(body.get("error"), dict) else {}
            reason = str((error or {}).get("message") or "no media URL")
            raise MediaError(502, "provider_refused", f"WhatsApp: {reason}")
        size = body.get("file_size")
        if isinstance(size, int) and size > limit:
            raise too_large(size, limit, f"WhatsApp {attachment.kind} media")
        return await self._fetch("whatsapp", str(body["url"]), auth, limit, attachment, breaker)

    async def _send(
        self,
        provider: str,
        breaker: Breaker,
        request: httpx.Request,
        *,
        stream: bool,
        redirects: bool = True,
    ) -> httpx.Response:
        """One provider call through the breaker: held (503 with the wait) while it is open;
        a network error or a 5xx counts as a failure and is worth another try. Without
        ``redirects`` a redirect is the answer (the caller checks where it leads)."""
        allowed, wait = breaker.allow()
        if not allowed:
            raise MediaError(
                503,
                "provider_unavailable",
                f"{provider} has been failing: its calls are held for {wait:.1f} s",
                retry_after=wait,
            )
        started = time.monotonic()
        try:
            response = await self.http.send(request, stream=stream, follow_redirects=redirects)
        except httpx.HTTPError as exc:
            breaker.failure(type(exc).__name__)
            raise _TransientError(f"{provider}: {type(exc).__name__}") from None
        except BaseException:
            breaker.release()  # cancelled: it tells nothing about the provider
            raise
        status = response.status_code
        if status >= 500:
            await response.aclose()
            breaker.failure(f"HTTP {status}")
            raise _TransientError(f"{provider}: HTTP {status}")
        if status == 429:
            breaker.rate_limited("HTTP 429")
        elif status >= 400:
            breaker.rejected(f"HTTP {status}")
        else:
            breaker.success(time.monotonic() - started)
        return response

    async def _json(
        self,
        provider: str,
        breaker: Breaker,
        method: str,
        url: str,
        headers: dict[str, str],
        payload: dict[str, Any] | None,
    ) -> dict[str, Any]:
        """A provider's JSON answer (errors included: both APIs describe them in JSON)."""
        request = self.http.build_request(method, url, headers=headers, json=payload)
        response = await self._send(provider, breaker, request, stream=False)
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise MediaError(
                502, "provider_refused", f"{provider}: HTTP {response.status_code}, not JSON"
            )
        return body

    async def _linked(
        self, provider: str, url: str, limit: int, attachment: Attachment, breaker: Breaker
    ) -> Download:
        """A file at a URL the message itself names (Viber's ``media``): whoever holds the
        account's token can sign a webhook naming any URL, so it is a tenant's URL, called
        as every such URL is (``send_public``: public hosts only, each redirect checked)."""
        try:
            response = await send_public(
                self.http,
                "GET",
                url,
                private=self.private_urls,
                send=lambda request: self._send(
                    provider, breaker, request, stream=True, redirects=False
                ),
            )
        except NotPublicError as exc:
            raise MediaError(502, "not_public_url", f"{provider}: the file's {exc}") from None
        except httpx.TooManyRedirects:
            raise MediaError(502, "too_many_redirects", f"{provider}: the file's URL "
                             f"redirects more than {MAX_REDIRECTS} times") from None  # fmt: skip
        return await self._stream(provider, response, limit, attachment, breaker)

    async def _fetch(
        self,
        provider: str,
        url: str,
        headers: dict[str, str],
        limit: int,
        attachment: Attachment,
        breaker: Breaker,
    ) -> Download:
        """A file at the provider's own API (its redirects followed by the client)."""
        request = self.http.build_request("GET", url, headers=headers)
        response = await self._send(provider, breaker, request, stream=True)
        return await self._stream(provider, response, limit, attachment, breaker)

    async def _stream(
        self,
        provider: str,
        response: httpx.Response,
        limit: int,
        attachment: Attachment,
        breaker: Breaker,
    ) -> Download:
        """The file's answer, open: refused at once when it declares more than ``limit``."""
        try:
            if response.status_code != 200:
                raise MediaError(
                    502,
                    "provider_refused",
                    f"{provider}: the file download answered HTTP {response.status_code}",
                )
            kind = response.headers.get("content-type") or attachment.mime_type
            download = Download(
                provider, response, limit, kind or "application/octet-stream", breaker
            )
            if download.size is not None and download.size > limit:
                raise too_large(download.size, limit, f"{provider} downloads")
        except BaseException:
            await response.aclose()
            raise
        return download
