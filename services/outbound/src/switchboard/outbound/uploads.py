"""Files uploaded to outbound for sending: kept in object storage, referenced by id.

``POST /v1/uploads`` stores the bytes under the caller's workspace and answers an
``upload_id`` (``up_`` + the SHA-256 of the bytes: the same file uploaded twice is one
upload). A send names it in ``content.source.upload_id``; the command that travels in the
stream carries only that id (JetStream's ``max_payload`` is about 1 MB). The sender reads
the bytes back just before the provider call (:meth:`Uploads.inline`), so the provider
clients, and the shared file-id cache keyed by the bytes' digest, work as for inline bytes:
a file uploaded once to a provider is sent by its file id afterwards.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from switchboard.events.catalog.outbound import (
    OutMedia,
    OutMediaGroup,
    SendMessage,
)
from switchboard.outbound.errors import OutboundServiceError
from switchboard.outbound.media_limits import media_items
from switchboard.runtime.objectstore import ObjectStore
from switchboard.runtime.uploads import inline_upload, upload_key


class UploadMissingError(OutboundServiceError, LookupError):
    """A send names an upload its workspace does not have."""

    def __init__(self, upload_id: str) -> None:
        super().__init__(f"no upload {upload_id!r} in this workspace")
        self.upload_id = upload_id


@dataclass(frozen=True)
class Upload:
    """What the upload route answers."""

    upload_id: str
    size: int
    sha256: str
    mime_type: str
    file_name: str | None


def upload_id_of(data: bytes) -> str:
    return "up_" + hashlib.sha256(data).hexdigest()[:40]


def upload_ids(cmd: SendMessage) -> list[str]:
    """The uploads a send names."""
    return [item.source.upload_id for _, item in media_items(cmd) if item.source.upload_id]


class Uploads:
    """Uploaded files of every workspace in the object store."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store

    async def save(
        self, workspace: str, data: bytes, mime_type: str, file_name: str | None
    ) -> Upload:
        upload_id = upload_id_of(data)
        meta = {"size": str(len(data))}
        if file_name:
            meta["file_name"] = file_name
        await self.store.put(upload_key(workspace, upload_id), data, mime_type, meta)
        return Upload(upload_id, len(data), hashlib.sha256(data).hexdigest(), mime_type, file_name)

    async def sizes(self, workspace: str, cmd: SendMessage) -> dict[str, int]:
        """The byte size of every upload ``cmd`` names; :class:`UploadMissingError` if one
        is not the workspace's."""
        out: dict[str, int] = {}
        for upload_id in upload_ids(cmd):
            size = await self.store.size(upload_key(workspace, upload_id))
            if size is None:
                raise UploadMissingError(upload_id)
            out[upload_id] = size
        return out

    async def inline(self, workspace: str, cmd: SendMessage) -> SendMessage:
        """``cmd`` with every upload replaced by its bytes, for the provider call only
        (this copy is never published)."""
        if not upload_ids(cmd):
            return cmd

        async def resolved(item: OutMedia) -> OutMedia:
            source = item.source
            if not source.upload_id:
                return item
            inline = await inline_upload(self.store, workspace, source)
            if inline is None:
                raise UploadMissingError(source.upload_id)
            return item.model_copy(update={"source": inline})

        content = cmd.content
        if isinstance(content, OutMedia):
            return cmd.model_copy(update={"content": await resolved(content)})
        assert isinstance(content, OutMediaGroup)
        items = tuple([await resolved(item) for item in content.items])
        return cmd.model_copy(update={"content": content.model_copy(update={"items": items})})
