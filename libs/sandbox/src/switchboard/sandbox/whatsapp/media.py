"""Media of the Cloud API fake: uploads (`POST /{version}/{phone_number_id}/media`), the
media object (`GET /{version}/{media_id}`: a short-lived download URL, the MIME type, the
SHA-256 and the size) and the download itself (`GET` of that URL with the same bearer
token), as Meta serves them. A media id belongs to one business number: another number's
token is refused, like an unknown id.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

# Meta's limits per media MIME family (bytes); documents are the default.
LIMITS = {
    "image": 5 * 1024 * 1024,
    "video": 16 * 1024 * 1024,
    "audio": 16 * 1024 * 1024,
    "image/webp": 500 * 1024,
}
DOCUMENT_LIMIT = 100 * 1024 * 1024


def limit_for(mime: str) -> int:
    """The largest file Meta takes for ``mime`` (stickers, images, audio/video, documents)."""
    base = mime.split(";")[0].strip().lower()
    return LIMITS.get(base) or LIMITS.get(base.split("/")[0]) or DOCUMENT_LIMIT


@dataclass(frozen=True)
class WaMedia:
    """One stored file: who owns it, its bytes and what the media object reports. A file of
    generated traffic keeps no bytes: stable filler of its size is made on download."""

    id: str
    phone_number_id: str
    size: int
    mime_type: str
    file_name: str | None
    content: bytes | None = None

    @property
    def data(self) -> bytes:
        if self.content is not None:
            return self.content
        seed = self.id.encode()
        return (seed * (self.size // len(seed) + 1))[: self.size]

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    def info(self, url: str) -> dict[str, object]:
        """The media object `GET /{media_id}` answers."""
        return {
            "messaging_product": "whatsapp",
            "url": url,
            "mime_type": self.mime_type,
            "sha256": self.sha256,
            "file_size": self.size,
            "id": self.id,
        }


class MediaStore:
    """Every number's media by id (ids look like Meta's: 15-16 digits)."""

    def __init__(self, seed: int = 0) -> None:
        self._rng = random.Random(f"{seed}:wa-media")
        self._by_id: dict[str, WaMedia] = {}

    def __len__(self) -> int:
        return len(self._by_id)

    def add(
        self, phone_number_id: str, data: bytes, mime_type: str, file_name: str | None = None
    ) -> WaMedia:
        media_id = str(self._rng.randrange(10**15, 10**16))
        while media_id in self._by_id:
            media_id = str(self._rng.randrange(10**15, 10**16))
        media = WaMedia(media_id, phone_number_id, len(data), mime_type, file_name, data)
        self._by_id[media_id] = media
        return media

    def hold(
        self, media_id: str, phone_number_id: str, mime_type: str, file_name: str | None
    ) -> WaMedia:
        """The media ``media_id`` of a generated or injected message, registered with
        filler bytes (20-200 KB, stable per id) when it is not known yet."""
        found = self._by_id.get(media_id)
        if found is None:
            size = 20_000 + int(hashlib.sha256(media_id.encode()).hexdigest()[:8], 16) % 180_000
            found = WaMedia(media_id, phone_number_id, size, mime_type, file_name)
            self._by_id[media_id] = found
        return found

    def get(self, media_id: str) -> WaMedia | None:
        return self._by_id.get(media_id)
