"""The CRM's media routes: the files of a received message, listed and downloaded.

``GET /v1/messages/{id}/attachments`` lists them; ``GET /v1/messages/{id}/media`` answers
the bytes of one (``?index=``, default 0: the message's file, for photos the largest size).
The message must be the caller's workspace's (else 404, as if it did not exist); its
account's token is read from the accounts registry. A file is fetched from the provider
once, streamed to the caller as it arrives and tee'd into the object store (when
``objects.persist_downloads``; kept only whole), so a second download neither calls the
provider nor depends on the provider's URL still working. A user account's (mtproto) file
is downloaded by the gateway holding the session into the object store (user_files.py) and
streamed from there.
"""

from __future__ import annotations

import asyncio
import math
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Query
from starlette.responses import JSONResponse, Response

from switchboard.crm import queries, user_files
from switchboard.crm.attachments import Attachment, attachments_of, download_limit, object_key
from switchboard.crm.media import MediaError, ProviderMedia
from switchboard.crm.media_stream import KeptStreamResponse, MediaStreamResponse
from switchboard.crm.settings import CrmSettings
from switchboard.runtime.accounts import AccountCache
from switchboard.runtime.app import ServiceApp
from switchboard.runtime.auth import Workspace
from switchboard.runtime.bus import Bus
from switchboard.runtime.http import error
from switchboard.runtime.integrations import add_integrations_route
from switchboard.runtime.logging import get_logger
from switchboard.runtime.objectstore import ObjectStore, ObjectWriter
from switchboard.runtime.ownership import NotFoundError

ACCOUNTS_WAIT_S = 5.0
log = get_logger(__name__)


def _disposition(attachment: Attachment, message_id: str) -> str:
    name = attachment.file_name or f"{attachment.kind}-{attachment.index}"
    return f"inline; filename*=UTF-8''{quote(name, safe='')}"


def media_routes(app: ServiceApp, ports: dict[str, Any], settings: CrmSettings) -> None:
    """Register the attachments and media routes on the CRM app, and the health of the
    providers it downloads from."""

    def integrations() -> dict[str, dict[str, Any]]:
        fetcher: ProviderMedia | None = ports.get("media")
        return {} if fetcher is None else fetcher.breakers.report()

    add_integrations_route(
        app,
        integrations,
        "Per provider account the CRM downloads received files from: breaker state, "
        "last success and failure (with the reason), p95 latency of recent calls",
    )

    async def message(ws: str, message_id: str) -> dict[str, Any]:
        async with ports["pool"].acquire() as conn:
            found = await queries.message_files(conn, ws, message_id)
        if found is None:
            raise NotFoundError("message", message_id)
        return found

    @app.get(
        "/v1/messages/{message_id:path}/attachments",
        tags=["conversations"],
        summary="The files a message carries (index 0 is its file; then a photo's sizes)",
        responses={404: {"description": "no such message in the key's workspace"}},
    )
    async def attachments(message_id: str, ws: Workspace) -> Response:
        found = await message(ws, message_id)
        items = [
            {
                **a.public(),
                "href": f"/v1/messages/{quote(message_id, safe='')}/media?index={a.index}",
            }
            for a in attachments_of(found["content"])
        ]
        return JSONResponse({"message_id": message_id, "items": items})

    @app.get(
        "/v1/messages/{message_id:path}/media",
        tags=["conversations"],
        summary="Download a file a customer sent, fetched from the provider with the "
        "account's token (kept in object storage after the first download)",
        responses={
            200: {"content": {"application/octet-stream": {}}, "description": "the bytes"},
            404: {"description": "no such message, or it has no file at that index"},
            413: {"description": "the file is over the provider's download limit"},
            502: {"description": "the provider refused or failed to serve the file"},
            503: {
                "description": "this CRM has no encryption keys to use account tokens, the "
                "provider has been failing and is not called until Retry-After, or no "
                "gateway holding the user session answered"
            },
        },
    )
    async def media(
        message_id: str, ws: Workspace, index: Annotated[int, Query(ge=0, le=32)] = 0
    ) -> Response:
        found = await message(ws, message_id)
        files = attachments_of(found["content"])
        attachment = next((a for a in files if a.index == index), None)
        if attachment is None:
            return error(404, "no_attachment", f"message {message_id!r} has no file {index}")
        headers = {"Content-Disposition": _disposition(attachment, message_id)}
        objects: ObjectStore = ports["objects"]
        key = object_key(ws, message_id, index)
        if settings.objects.persist_downloads:
            try:
                kept = await objects.open(key)
            except Exception as exc:  # the store is down: the provider still has the file
                log.warning("object store read failed", error=str(exc))
                kept = None
            if kept is not None:
                return KeptStreamResponse(kept, headers)
        channel, account_id = str(found["channel"]), str(found["account"])
        limit = download_limit(channel, attachment.kind)
        if limit is None:
            return error(501, "unsupported_channel", f"{channel} files cannot be downloaded")
        if channel == "mtproto":  # a user session is no registry account: ask its holder
            bus: Bus = ports["bus"]
            timeout = settings.media_timeout_s
            now = ports["now"]()
            refused = await user_files.fetch(bus, ws, found, attachment, key, limit, timeout, now)
            if refused is not None:
                return refused
            stored = await objects.open(key)
            if stored is None:
                return error(502, "file_gone", "the gateway's stored file is not in the store")
            return KeptStreamResponse(stored, headers)
        accounts: AccountCache | None = ports.get("accounts")
        if accounts is None:
            return error(
                503,
                "media_unavailable",
                "this CRM cannot use account tokens: set SWITCHBOARD_ENCRYPTION_KEYS",
            )
        try:
            async with asyncio.timeout(ACCOUNTS_WAIT_S):
                await accounts.loaded.wait()
        except TimeoutError:
            return error(
                503, "media_unavailable", "the accounts are not loaded yet; retry shortly",
                headers={"Retry-After": "1"},
            )  # fmt: skip
        account = accounts.owned(channel, account_id, ws)
        if account is None:
            return error(
                502,
                "account_unavailable",
                f"the {channel} account {account_id!r} that received the message is gone",
            )
        fetcher: ProviderMedia = ports["media"]
        try:
            download = await fetcher.open(channel, account, attachment, limit)
        except MediaError as exc:
            if exc.retry_after is None:
                return error(exc.status, exc.code, exc.reason)
            wait = max(1, math.ceil(exc.retry_after))
            return error(
                exc.status,
                exc.code,
                exc.reason,
                headers={"Retry-After": str(wait)},
                retry_after_s=wait,
            )
        writer: ObjectWriter | None = None
        if settings.objects.persist_downloads:
            writer = objects.writer(key, download.content_type)
        return MediaStreamResponse(download, writer, headers)
