"""Files of messages a Telegram user account (channel ``mtproto``) received.

A user session is no registry account with a token: only the gateway instance holding the
session can download its files. The CRM asks it over the bus (``mtproto.fetch_media``,
answered on an inbox); the holder writes the file into the shared object store and the CRM
streams it from there like a kept file. Pure rules here: the command, and the HTTP answer
each of the gateway's refusals becomes.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError
from starlette.responses import Response

from switchboard.crm.attachments import Attachment
from switchboard.events.catalog.mtproto import FetchMedia, MediaFetched
from switchboard.runtime.bus import Bus
from switchboard.runtime.holder_call import ask_holder
from switchboard.runtime.http import error


def fetch_command(
    found: dict[str, Any], key: str, limit: int, timeout: float, now: datetime | None = None
) -> FetchMedia:
    """The download of message ``found`` (a ``queries.message_files`` row) into ``key``."""
    return FetchMedia(
        session_id=str(found["account"]),
        chat_id=str(found["chat_id"]),
        message_id=int(found["provider_message_id"]),
        object_key=key,
        max_bytes=limit,
        deadline=(now or datetime.now(UTC)) + timedelta(seconds=timeout),
    )


def refusal(answer: MediaFetched, session: str) -> Response | None:
    """The HTTP answer to anything but a stored file (None when it was stored)."""
    if answer.status == "stored":
        return None
    reason = answer.reason or answer.error_code or answer.status
    if answer.status == "too_large":
        return error(413, "file_too_large", reason)
    if answer.status in ("flood_wait", "retry"):
        wait = max(1, math.ceil(answer.retry_after or 1))
        return error(
            503,
            "gateway_busy",
            f"session {session!r} cannot download now: {reason}",
            headers={"Retry-After": str(wait)},
            retry_after_s=wait,
        )
    code = {"not_found": "file_gone", "unusable": "account_unavailable"}.get(
        answer.status, "provider_refused"
    )
    return error(502, code, f"Telegram (session {session!r}) did not serve the file: {reason}")


async def fetch(
    bus: Bus,
    workspace: str,
    found: dict[str, Any],
    attachment: Attachment,
    key: str,
    limit: int,
    timeout: float,
    now: datetime | None = None,
) -> Response | None:
    """Ask the session's holder to store the file under ``key``: None once it is there,
    else the error to answer (413 over ``limit``, 502 refused, 503 no answer). ``now`` is
    on the clock the holder judges the deadline by (the server's)."""
    session = str(found["account"])
    if attachment.file_size is not None and attachment.file_size > limit:
        return error(
            413,
            "file_too_large",
            f"the file has {attachment.file_size} bytes; Telegram serves at most {limit}",
        )
    if not str(found.get("provider_message_id") or "").isdigit():
        return error(502, "file_gone", "the message has no Telegram message id to read it by")
    cmd = fetch_command(found, key, limit, timeout, now)
    try:
        raw = await ask_holder(bus, cmd, workspace, timeout)
    except TimeoutError:
        return error(
            503,
            "gateway_unavailable",
            f"no gateway holding session {session!r} answered in {timeout:g} s",
            headers={"Retry-After": "5"},
            retry_after_s=5,
        )
    try:
        answer = MediaFetched.model_validate_json(raw)
    except ValidationError as exc:
        return error(502, "bad_gateway_answer", str(exc)[:200])
    return refusal(answer, session)
