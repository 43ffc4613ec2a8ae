"""The answers of a media download: the provider's bytes passed on as they arrive, and
tee'd into the object store when downloads are kept; or a kept file read from the store
piece by piece. Neither holds a whole file in memory.

The store sees the file only whole: its writer publishes on the last byte and is aborted
otherwise (the file went over the limit, the provider broke off, the client went away). A
file cut after the answer began cannot change its status any more, so the response is
aborted (the connection closes before the body's end) rather than ended as if complete: a
client never takes a truncated file for the whole one (HTTP/1.1 has no other way to say
it). A failing store never fails the download: the file is then served without being kept.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from switchboard.crm.errors import CrmServiceError
from switchboard.crm.media import Download, MediaError
from switchboard.runtime.logging import get_logger
from switchboard.runtime.objectstore import ObjectStream, ObjectWriter

log = get_logger(__name__)


class DownloadAbortedError(CrmServiceError):
    """The file could not be passed on whole after its answer began: the response is cut."""


class KeptStreamResponse(StreamingResponse):
    """Streams a file kept in the object store, closed whatever happens."""

    def __init__(self, kept: ObjectStream, headers: Mapping[str, str]) -> None:
        self.kept = kept
        all_headers = {**headers, "Content-Length": str(kept.size)}
        super().__init__(kept.chunks, media_type=kept.content_type, headers=all_headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self.kept.aclose()


class MediaStreamResponse(StreamingResponse):
    """Streams a :class:`Download` to the client (and into ``writer`` when given), and
    closes both whatever happens: read to the end, cut, or abandoned by the client."""

    def __init__(
        self,
        download: Download,
        writer: ObjectWriter | None,
        headers: Mapping[str, str],
    ) -> None:
        self.download = download
        self.writer = writer
        self._body = self._stream()
        all_headers = dict(headers)
        if download.size is not None:
            all_headers["Content-Length"] = str(download.size)
        super().__init__(self._body, media_type=download.content_type, headers=all_headers)

    async def _stream(self) -> AsyncGenerator[bytes, None]:
        try:
            async for chunk in self.download.chunks():
                await self._keep(chunk)
                yield chunk
        except MediaError as exc:
            log.warning("media download cut", status=exc.status, reason=exc.reason)
            raise DownloadAbortedError(exc.reason) from None
        await self._publish()

    async def _keep(self, chunk: bytes) -> None:
        if self.writer is None:
            return
        try:
            await self.writer.write(chunk)
        except Exception as exc:  # not kept: fetched again next time, still served now
            log.warning("object store write failed", error=str(exc))
            await self._drop_writer()

    async def _publish(self) -> None:
        if self.writer is None:
            return
        try:
            await self.writer.commit()
        except Exception as exc:
            log.warning("object store write failed", error=str(exc))
        self.writer = None

    async def _drop_writer(self) -> None:
        writer, self.writer = self.writer, None
        if writer is None:
            return
        try:
            await writer.abort()
        except Exception as exc:  # a temporary file or upload is left for the store to reap
            log.warning("object store abort failed", error=str(exc))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        except DownloadAbortedError:
            # Returning with the body incomplete makes the server close the connection (no
            # final chunk): the client sees a broken body, the log the warning above rather
            # than a traceback for an expected event.
            return
        finally:
            # The body may stop anywhere (client gone, cut): close the generator so nothing
            # is published, then the provider's stream and any half-written object.
            await self._body.aclose()
            await self.download.aclose()
            await self._drop_writer()
