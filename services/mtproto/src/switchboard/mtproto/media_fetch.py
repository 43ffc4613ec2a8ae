"""The CRM's downloads of received files through a user session: ``cmd.mtproto.fetch_media``.

Only the session's holder has the connection, so it serves these the way it serves
outbound's sends (relay.py): from the session's own durable consumer, answering each command
on the inbox its sender named (``reply-to`` header). The bytes do not cross the bus (NATS
payloads are about 1 MB): the holder reads the message again (Telegram's file references
expire), downloads the file with ``upload.getFile`` piece by piece into the shared object
store, kept only whole, and answers with a :class:`MediaFetched` naming the object.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

from switchboard.events.catalog.mtproto import FetchMedia, MediaFetched
from switchboard.mtproto.command_feed import CommandFeed
from switchboard.mtproto.ports import (
    DisconnectedError,
    FloodWaitError,
    MtprotoClient,
    MtprotoError,
    Peer,
    PeerNotFoundError,
)
from switchboard.mtproto.relay import classify
from switchboard.runtime.bus import Bus
from switchboard.runtime.logging import get_logger
from switchboard.runtime.objectstore import ObjectStore

log = get_logger(__name__)
# Telegram serves user accounts files up to 2000 MiB (4000 MiB with Premium, not assumed).
TELEGRAM_USER_DOWNLOAD = 2000 * 1024 * 1024


@dataclass
class MediaDownload:
    """A message's file opened for download: what Telegram says of it and its bytes."""

    size: int | None
    mime_type: str
    chunks: AsyncIterator[bytes]


@runtime_checkable
class MediaSource(Protocol):
    """What a client offers for downloads (the Telethon adapter does)."""

    async def open_media(self, peer: Peer, message_id: int) -> MediaDownload | None:
        """The file of message ``message_id`` in ``peer`` (None: no such message or no file)."""
        ...


def media_consumer(session_id: str) -> str:
    """The durable consumer of one session's downloads (pulled by its holder only)."""
    return f"mtproto-media-{session_id}"


def media_subject(session_id: str) -> str:
    return f"cmd.{FetchMedia.name}.v{FetchMedia.version}.{session_id}"


def size_limit(cmd: FetchMedia) -> int:
    """The largest file this command may store: the caller's and Telegram's limit."""
    return min(cmd.max_bytes, TELEGRAM_USER_DOWNLOAD)


def too_large(size: int | None, limit: int) -> MediaFetched | None:
    """The refusal of a file over ``limit`` (None: its size is unknown or within)."""
    if size is None or size <= limit:
        return None
    return MediaFetched(
        status="too_large",
        size=size,
        error_code="file_too_large",
        reason=f"the file has {size} bytes, over the limit of {limit}",
    )


async def store(
    objects: ObjectStore, key: str, download: MediaDownload, limit: int
) -> MediaFetched:
    """Write the download under ``key``, whole or not at all (a file that turns out over
    ``limit`` while it streams, or any failure, leaves nothing behind)."""
    refused = too_large(download.size, limit)
    if refused is not None:
        return refused
    writer = objects.writer(key, download.mime_type)
    size = 0
    try:
        async for chunk in download.chunks:
            size += len(chunk)
            if size > limit:
                await writer.abort()
                return MediaFetched(
                    status="too_large",
                    error_code="file_too_large",
                    reason=f"the file is over the limit of {limit} bytes",
                )
            await writer.write(chunk)
        await writer.commit()
    except BaseException:
        await writer.abort()
        raise
    return MediaFetched(status="stored", object_key=key, size=size, mime_type=download.mime_type)


def _retry_elsewhere(exc: Exception) -> MediaFetched:
    """The connection dropped: answered at once (the caller may retry on the next holder),
    then the runner reconnects."""
    code = exc.reason if isinstance(exc, MtprotoError) else None
    return MediaFetched(status="retry", error_code=code, reason=str(exc))


_DOWNLOADS = CommandFeed(
    FetchMedia,
    MediaFetched,
    media_consumer,
    media_subject,
    ack_wait_s=120.0,
    batch=4,
    fatal=(DisconnectedError,),
    last_word=_retry_elsewhere,
)


@dataclass
class MediaServer:
    """Serves one session's downloads while its holder is connected."""

    bus: Bus
    objects: ObjectStore
    session_id: str
    workspace_id: Callable[[], str]
    resolve: Callable[[MtprotoClient, str], Awaitable[Peer]]
    now: Callable[[], datetime] = lambda: datetime.now(UTC)
    on_fetch: Callable[[], None] | None = None  # a session that downloads is in use

    async def run(self, client: MtprotoClient) -> None:
        """Serve the session's downloads; a dropped connection answers "retry" and raises."""
        await _DOWNLOADS.serve(self, lambda cmd, _: self.fetch(client, cmd), self.on_fetch)

    async def fetch(self, client: MtprotoClient, cmd: FetchMedia) -> MediaFetched:
        """Download one received file into the object store and say where it is."""
        if not isinstance(client, MediaSource):
            return MediaFetched(status="refused", error_code="unsupported",
                                reason="this client cannot download files")  # fmt: skip
        try:
            peer = await self.resolve(client, cmd.chat_id)
            download = await client.open_media(peer, cmd.message_id)
            if download is None:
                return MediaFetched(
                    status="not_found",
                    error_code="no_file",
                    reason=f"message {cmd.message_id} of chat {cmd.chat_id} has no file",
                )
            return await store(self.objects, cmd.object_key, download, size_limit(cmd))
        except PeerNotFoundError as exc:
            return MediaFetched(status="not_found", error_code=exc.reason, reason=str(exc))
        except FloodWaitError as exc:
            return MediaFetched(
                status="flood_wait",
                error_code=exc.reason,
                retry_after=float(exc.seconds),
                reason=f"Telegram asks to wait {exc.seconds} s",
            )
        except DisconnectedError:
            raise
        except MtprotoError as exc:
            answer = classify(exc)
            return MediaFetched(
                status="unusable" if answer.status == "unusable" else "refused",
                error_code=exc.reason,
                reason=str(exc),
            )
        except OSError as exc:  # the object store
            log.warning("storing a download failed", session_id=self.session_id, error=str(exc))
            return MediaFetched(status="retry", error_code="store_failed", reason=str(exc))
