"""Files uploaded to outbound (``POST /v1/uploads``), read back from the shared object store
by whoever makes the provider call: outbound's sender for bots and numbers, the MTProto
gateway for a user account (its send command names the upload: the bytes never travel in
a stream, whose ``max_payload`` is about 1 MB)."""

from __future__ import annotations

import base64

from switchboard.events.catalog.outbound import MediaSource
from switchboard.runtime.failures import InfrastructureError
from switchboard.runtime.objectstore import ObjectStore, digest_segment, safe_key


def upload_key(workspace: str, upload_id: str) -> str:
    """Per workspace: another workspace's upload of the same bytes is another object."""
    return safe_key("uploads", digest_segment(workspace), upload_id)


async def inline_upload(
    store: ObjectStore, workspace: str, source: MediaSource
) -> MediaSource | None:
    """``source`` (an ``upload_id`` of ``workspace``) as its bytes, with the file name and
    type it was uploaded with unless the send names its own; None when the workspace has no
    such upload. The store failing is an InfrastructureError: retried, never a refusal."""
    assert source.upload_id is not None
    try:
        found = await store.get(upload_key(workspace, source.upload_id))
    except Exception as exc:
        raise InfrastructureError(f"object store: {exc}") from exc
    if found is None:
        return None
    return MediaSource(
        data_base64=base64.b64encode(found.data).decode(),
        file_name=source.file_name or found.metadata.get("file_name"),
        mime_type=source.mime_type or found.content_type,
    )
