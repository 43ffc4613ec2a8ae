"""Per-provider size limits of media sent as bytes, checked before any provider call.

A file that the provider would refuse is refused here first: over HTTP a 413 naming the
field and the limit, on the bus a permanent ``delivery.failed`` with ``error_code``
``too_large``, never an upload that is bound to fail (and to be retried). The limits are
the providers' published ones for uploads: Telegram 10 MB photos and 50 MB other files;
WhatsApp Cloud API per media type (image 5 MB, audio and video 16 MB, document 100 MB,
sticker 500 KB); Viber 1 MB pictures, 26 MB videos, 50 MB files. Media given by URL are
fetched by the provider itself and are not measured here (Telegram: 5 MB photos / 20 MB
others by URL); a ``file_id`` has no size to check.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from switchboard.events.catalog.common import Channel
from switchboard.events.catalog.outbound import OutMedia, OutMediaGroup, SendMessage
from switchboard.runtime.media_sizes import MB, WHATSAPP_MEDIA

TELEGRAM = {"photo": 10 * MB}
TELEGRAM_OTHER = 50 * MB
VIBER = {"photo": 1 * MB, "video": 26 * MB}
VIBER_OTHER = 50 * MB


@dataclass(frozen=True)
class TooLarge:
    """A media item over its provider's limit: the field, its size and the limit (bytes)."""

    field: str
    size: int
    limit: int
    what: str

    @property
    def reason(self) -> str:
        return (
            f"{self.field}: {self.size} bytes is over the {self.limit}-byte limit of "
            f"{self.what}; send it by url or file_id, or smaller"
        )


def decoded_size(data_base64: str) -> int:
    """The byte size of base64 text without decoding it."""
    text = data_base64.strip()
    return len(text) * 3 // 4 - text[-2:].count("=") if text else 0


def limit_of(channel: Channel, kind: str) -> tuple[int, str] | None:
    """The upload limit of ``kind`` on ``channel`` and what it is called (None: none known)."""
    if channel is Channel.TELEGRAM:
        return TELEGRAM.get(kind, TELEGRAM_OTHER), f"Telegram {kind} uploads"
    if channel is Channel.WHATSAPP and kind in WHATSAPP_MEDIA:
        return WHATSAPP_MEDIA[kind], f"WhatsApp {kind} media"
    if channel is Channel.VIBER:
        return VIBER.get(kind, VIBER_OTHER), f"Viber {kind} files"
    return None


def media_items(cmd: SendMessage) -> list[tuple[str, OutMedia]]:
    """The media items of ``cmd`` with the path of each one's ``source`` in the body."""
    content = cmd.content
    if isinstance(content, OutMedia):
        return [("content.source", content)]
    if isinstance(content, OutMediaGroup):
        return [(f"content.items.{i}.source", item) for i, item in enumerate(content.items)]
    return []


def largest_limit() -> int:
    """The largest upload any provider takes: a file over it can be sent nowhere."""
    return max(TELEGRAM_OTHER, VIBER_OTHER, *TELEGRAM.values(), *WHATSAPP_MEDIA.values(),
               *VIBER.values())  # fmt: skip


def too_large(cmd: SendMessage, upload_sizes: Mapping[str, int] | None = None) -> TooLarge | None:
    """The first media item of ``cmd`` given as bytes (inline, or an upload whose size is in
    ``upload_sizes``) over its provider's limit, or None."""
    for where, item in media_items(cmd):
        source = item.source
        limit = limit_of(cmd.channel, item.kind)
        if limit is None:
            continue
        if source.data_base64 is not None:
            field, size = f"{where}.data_base64", decoded_size(source.data_base64)
        elif source.upload_id is not None and upload_sizes and source.upload_id in upload_sizes:
            field, size = f"{where}.upload_id", upload_sizes[source.upload_id]
        else:
            continue
        if size > limit[0]:
            return TooLarge(field, size, limit[0], limit[1])
    return None
