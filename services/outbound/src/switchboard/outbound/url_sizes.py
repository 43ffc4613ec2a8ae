"""Media sent by URL are fetched by the provider, within its own limits: Telegram takes 5 MB
photos and 20 MB other files by URL; WhatsApp and Viber apply their per-type limits to
links too. The send route asks the URL's size (``HEAD``, or a one-byte ``GET`` range when
HEAD is refused) and answers 413 before anything is queued or called, instead of a send
that the provider is bound to fail.

An unknown size (no ``Content-Length``, a timeout, an unreachable host) lets the send go:
the provider decides, as before. Addresses that are not public (loopback, private,
link-local) are not probed unless allowed by settings, nor is a redirect to one, and a
probe connects to the address its check resolved: a caller must not be able to use the
service to learn what listens inside the network.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpx

from switchboard.events.catalog.common import Channel
from switchboard.events.catalog.outbound import OutMedia, SendMessage
from switchboard.outbound.media_limits import TooLarge, limit_of, media_items
from switchboard.outbound.providers import viber
from switchboard.runtime.addresses import NotPublicError, send_public
from switchboard.runtime.media_sizes import MB

TELEGRAM_BY_URL = {"photo": 5 * MB}
TELEGRAM_BY_URL_OTHER = 20 * MB


def url_limit_of(channel: Channel, kind: str) -> tuple[int, str] | None:
    """The by-URL limit of ``kind`` on ``channel`` and what it is called."""
    if channel is Channel.TELEGRAM:
        limit = TELEGRAM_BY_URL.get(kind, TELEGRAM_BY_URL_OTHER)
        return limit, f"Telegram {kind} sent by URL"
    return limit_of(channel, kind)


def _total_of(content_range: str | None) -> int | None:
    """The total of ``bytes 0-0/12345``."""
    if not content_range or "/" not in content_range:
        return None
    total = content_range.rsplit("/", 1)[1].strip()
    return int(total) if total.isdigit() else None


class UrlSizes:
    """Asks a URL's size with a short timeout; None when it cannot be known."""

    def __init__(
        self, http: httpx.AsyncClient, *, probe_private: bool = False, timeout: float = 3.0
    ) -> None:
        self.http = http
        self.probe_private = probe_private
        self.timeout = timeout

    async def size(self, url: str) -> int | None:
        """The URL's size in bytes; None when unknown within the timeout (name lookup too)."""
        try:
            async with asyncio.timeout(self.timeout):
                return await self._size(url)
        except TimeoutError:
            return None

    async def _size(self, url: str) -> int | None:
        try:
            async with self._open("HEAD", url, {}) as head:
                if head is None:
                    return None
                length = head.headers.get("content-length")
                if head.status_code == 200 and length and length.isdigit():
                    return int(length)
            # A server that ignores the range would send the whole file: headers only.
            async with self._open("GET", url, {"Range": "bytes=0-0"}) as ranged:
                if ranged is None:
                    return None
                if ranged.status_code == 206:
                    return _total_of(ranged.headers.get("content-range"))
                length = ranged.headers.get("content-length")
                if ranged.status_code == 200 and length and length.isdigit():
                    return int(length)
        except httpx.HTTPError:
            return None
        return None

    @contextlib.asynccontextmanager
    async def _open(
        self, method: str, url: str, headers: dict[str, str]
    ) -> AsyncIterator[httpx.Response | None]:
        """The answer's headers (body unread) to ``method`` on ``url``, each redirect's hop
        checked and pinned (``send_public``); None where one is not public (unless
        ``probe_private``) or not an http(s) URL."""
        try:
            response = await send_public(
                self.http, method, url, headers=headers, private=self.probe_private
            )
        except NotPublicError:
            yield None
            return
        try:
            yield response
        finally:
            await response.aclose()

    async def sized(self, cmd: SendMessage) -> SendMessage:
        """``cmd`` with the size a provider needs in the message (a Viber video or file) asked
        of its URL when not given; as it was when the size cannot be known (the send is then
        refused naming ``content.source.size``)."""
        content = cmd.content
        if (
            cmd.channel is not Channel.VIBER
            or not isinstance(content, OutMedia)
            or content.kind not in viber.SIZED_KINDS
            or content.source.url is None
            or content.source.size is not None
        ):
            return cmd
        size = await self.size(content.source.url)
        if size is None:
            return cmd
        source = content.source.model_copy(update={"size": size})
        return cmd.model_copy(update={"content": content.model_copy(update={"source": source})})

    async def too_large(self, cmd: SendMessage) -> TooLarge | None:
        """The first media item given by URL over its provider's by-URL limit, or None."""
        for where, item in media_items(cmd):
            url = item.source.url
            limit = url_limit_of(cmd.channel, item.kind)
            if url is None or limit is None:
                continue
            size = item.source.size or await self.size(url)
            if size is not None and size > limit[0]:
                return TooLarge(f"{where}.url", size, limit[0], limit[1])
        return None
