"""What a received message carries as files, and how large a download each provider allows.

Pure functions over the stored content (the ``content`` JSON of a ``conv.message_received``):
index 0 is the message's file (for photos the largest size), then the photo's smaller sizes.
Limits are the providers' own for fetching a file: Telegram's ``getFile`` serves at most
20 MB; WhatsApp media follow Meta's per-type limits (image 5 MB, audio/video 16 MB, sticker
500 KB, document 100 MB); Viber's media URLs carry files up to 50 MB; a
user account (mtproto) downloads up to 2000 MiB.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from switchboard.runtime.media_sizes import MB, WHATSAPP_MEDIA
from switchboard.runtime.objectstore import digest_segment, safe_key

TELEGRAM_DOWNLOAD = 20 * MB
VIBER_DOWNLOAD = 50 * MB
# A Telegram user account downloads files up to 2000 MiB (4000 MiB with Premium).
TELEGRAM_USER_DOWNLOAD = 2000 * MB
MEDIA_KINDS = frozenset({"photo", "video", "audio", "voice", "document", "animation", "sticker"})


@dataclass(frozen=True)
class Attachment:
    """One downloadable file of a message: the provider's id and what is known about it."""

    index: int
    kind: str
    file_id: str
    mime_type: str | None = None
    file_size: int | None = None
    file_name: str | None = None
    width: int | None = None
    height: int | None = None
    duration: int | None = None
    url: str | None = None

    def public(self) -> dict[str, Any]:
        """What the API lists (the provider's URL and id stay inside: they carry no right
        to the file without the account's token, and Viber's URL is the file itself)."""
        out = asdict(self)
        out.pop("url")
        out.pop("file_id")
        return {k: v for k, v in out.items() if v is not None}


# What the stored file may say about itself, each under the same name as on Attachment.
_DESCRIBED = tuple(f.name for f in fields(Attachment) if f.name not in ("index", "kind", "file_id"))


def _attachment(index: int, kind: str, file: Any) -> Attachment | None:
    if not isinstance(file, dict) or not file.get("file_id"):
        return None
    known = {name: file.get(name) for name in _DESCRIBED}
    return Attachment(index=index, kind=kind, file_id=str(file["file_id"]), **known)


def attachments_of(content: dict[str, Any]) -> list[Attachment]:
    """The files of a message's content: its ``file``, then its other ``sizes``."""
    kind = str(content.get("kind", ""))
    if kind not in MEDIA_KINDS:
        return []
    files = [content.get("file"), *(content.get("sizes") or ())]
    found = [_attachment(i, kind, f) for i, f in enumerate(files)]
    return [a for a in found if a is not None]


def download_limit(channel: str, kind: str) -> int | None:
    """The largest file ``channel`` lets us fetch for ``kind`` (None: no known limit)."""
    if channel == "telegram":
        return TELEGRAM_DOWNLOAD
    if channel == "whatsapp":
        return WHATSAPP_MEDIA.get(kind, WHATSAPP_MEDIA["document"])
    if channel == "viber":
        return VIBER_DOWNLOAD
    if channel == "mtproto":
        return TELEGRAM_USER_DOWNLOAD
    return None


def object_key(workspace: str, message_id: str, index: int) -> str:
    """Where a downloaded file is kept: per workspace, per message, per index."""
    return safe_key("inbound", digest_segment(workspace), digest_segment(message_id), str(index))
