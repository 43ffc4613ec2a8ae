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

from dataclasses import dataclass

from switchboard.events.catalog.common import Channel
from switchboard.events.catalog.outbound import OutMedia, OutMediaGroup, SendMessage

MB = 1024 * 1024
KB = 1024
TELEGRAM = {"photo": 10 * MB}
TELEGRAM_OTHER = 50 * MB
WHATSAPP = {
    "photo": 5 * MB,
    "video": 16 * MB,
    "animation": 16 * MB,
    "audio": 16 * MB,
    "voice": 16 * MB,
    "document": 100 * MB,
    "sticker": 500 * KB,
}
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
    if channel is Channel.WHATSAPP and kind in WHATSAPP:
        return WHATSAPP[kind], f"WhatsApp {kind} media"
    if channel is Channel.VIBER:
        return VIBER.get(kind, VIBER_OTHER), f"Viber {kind} files"
    return None


def too_large(cmd: SendMessage) -> TooLarge | None:
    """The first media item of ``cmd`` given as bytes over its provider's limit, or None."""
    content = cmd.content
    items: list[tuple[str, OutMedia]] = []
    if isinstance(content, OutMedia):
        items = [("content.source.data_base64", content)]
    elif isinstance(content, OutMediaGroup):
        items = [
            (f"content.items.{i}.source.data_base64", item) for i, item in enumerate(content.items)
        ]
    for field, item in items:
        data = item.source.data_base64
        limit = limit_of(cmd.channel, item.kind)
        if data is None or limit is None:
            continue
        size = decoded_size(data)
        if size > limit[0]:
            return TooLarge(field, size, limit[0], limit[1])
    return None
