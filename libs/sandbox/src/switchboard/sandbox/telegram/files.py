"""Files a bot can reuse: per-bot, per-type `file_id`s, photo size sets and downloads.

A `file_id` only works for the bot that received it and for the same kind of media, as on
Telegram; unknown ids are "wrong file identifier", ids of another kind are refused with
TDLib's "can't use file of type X as Y".
"""

from __future__ import annotations

import base64
import random
import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypedDict

if TYPE_CHECKING:
    from typing_extensions import Unpack

KIND_CODES = {
    "photo": 2,
    "voice": 3,
    "video": 4,
    "document": 5,
    "sticker": 8,
    "audio": 9,
    "animation": 10,
    "video_note": 13,
}
TYPE_NAMES = {
    "photo": "Photo",
    "voice": "VoiceNote",
    "video": "Video",
    "document": "Document",
    "sticker": "Sticker",
    "audio": "Audio",
    "animation": "Animation",
    "video_note": "VideoNote",
}
_FOLDERS = {
    "photo": "photos",
    "voice": "voice",
    "video": "videos",
    "document": "documents",
    "sticker": "stickers",
    "audio": "music",
    "animation": "animations",
    "video_note": "video_notes",
}
_EXTENSIONS = {
    "photo": "jpg",
    "voice": "oga",
    "video": "mp4",
    "document": "bin",
    "sticker": "webp",
    "audio": "mp3",
    "animation": "mp4",
    "video_note": "mp4",
}
DEFAULT_MIME = {
    "voice": "audio/ogg",
    "video": "video/mp4",
    "audio": "audio/mpeg",
    "animation": "video/mp4",
    "document": "application/octet-stream",
}
PHOTO_SIDES = (90, 320, 800, 1280)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


class FileMeta(TypedDict, total=False):
    """What a file may say about itself besides its kind and size (``FileStore.add``'s
    keywords, stored as they are on the `StoredFile`)."""

    width: int | None
    height: int | None
    duration: int | None
    mime_type: str | None
    file_name: str | None
    extra: dict[str, Any]


@dataclass
class StoredFile:
    """One file as the bot knows it; `describe()` is its Bot API object."""

    file_id: str
    file_unique_id: str
    kind: str
    size: int
    path: str
    content: bytes | None = None
    width: int | None = None
    height: int | None = None
    duration: int | None = None
    mime_type: str | None = None
    file_name: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        """The File-like object embedded in a Message (a PhotoSize for photos)."""
        out: dict[str, Any] = {"file_id": self.file_id, "file_unique_id": self.file_unique_id}
        if self.kind == "sticker":
            out.update(type="regular", is_animated=False, is_video=False)
        for name in ("width", "height", "duration", "file_name", "mime_type"):
            value = getattr(self, name)
            if value is not None and not (self.kind == "photo" and name == "mime_type"):
                out[name] = value
        out.update(self.extra)
        out["file_size"] = self.size
        return out

    def file_object(self) -> dict[str, Any]:
        """The `File` answered by getFile."""
        return {
            "file_id": self.file_id,
            "file_unique_id": self.file_unique_id,
            "file_size": self.size,
            "file_path": self.path,
        }

    def download(self) -> bytes:
        """The bytes behind `file_path`: the upload, or stable filler for generated files."""
        if self.content is not None:
            return self.content
        seed = self.file_unique_id.encode() or b"\0"
        return (seed * (self.size // len(seed) + 1))[: self.size]


class FileStore:
    """All files of one bot, by file_id and by download path."""

    def __init__(self, bot_id: int, seed: int = 0, keep_bytes: int = 20 * 1024 * 1024) -> None:
        self.bot_id = bot_id
        self.keep_bytes = keep_bytes
        self._rng = random.Random(f"{seed}:{bot_id}")
        self._seq = 0
        self._by_id: dict[str, StoredFile] = {}
        self._by_path: dict[str, StoredFile] = {}
        self._photo_sets: dict[str, list[StoredFile]] = {}

    def __len__(self) -> int:
        return len(self._by_id)

    def get(self, file_id: str) -> StoredFile | None:
        return self._by_id.get(file_id)

    def by_path(self, path: str) -> StoredFile | None:
        return self._by_path.get(path)

    def photo_set(self, file_id: str) -> list[StoredFile] | None:
        """Every size of the photo that `file_id` is one size of."""
        return self._photo_sets.get(file_id)

    def add(
        self,
        kind: str,
        *,
        size: int,
        content: bytes | None = None,
        **meta: Unpack[FileMeta],
    ) -> StoredFile:
        """Register a new file and give it fresh ids and a download path (the kind's usual
        MIME type when none is given)."""
        self._seq += 1
        raw = struct.pack(">BBBBqI", KIND_CODES[kind], 0, 2, 0, self.bot_id, self._seq)
        file_id = _b64(raw + self._rng.randbytes(9))
        tail = struct.pack(">IB", self._seq, KIND_CODES[kind]) + self._rng.randbytes(3)
        unique = "AQAD" + _b64(tail)
        extension = _EXTENSIONS[kind]
        file_name = meta.get("file_name")
        if kind == "document" and file_name and "." in file_name:
            extension = file_name.rsplit(".", 1)[1][:8] or extension
        path = f"{_FOLDERS[kind]}/file_{self._seq}.{extension}"
        kept = content if content is not None and len(content) <= self.keep_bytes else None
        stored = StoredFile(file_id, unique, kind, size, path, kept, **meta)
        stored.mime_type = stored.mime_type or DEFAULT_MIME.get(kind)
        stored.extra = dict(stored.extra)  # the caller's dict stays the caller's
        self._by_id[file_id] = stored
        self._by_path[path] = stored
        return stored

    def add_photo(
        self, width: int, height: int, size: int, content: bytes | None = None
    ) -> list[StoredFile]:
        """Register a photo as Telegram stores it: thumbnails up to the original size."""
        longest = max(width, height, 1)
        sides = [s for s in PHOTO_SIDES if s < longest] + [min(longest, 2560)]
        sizes: list[StoredFile] = []
        for side in sides:
            scale = side / longest
            w, h = max(1, round(width * scale)), max(1, round(height * scale))
            part = max(1, round(size * scale * scale)) if side != sides[-1] else size
            sizes.append(
                self.add(
                    "photo",
                    size=part,
                    width=w,
                    height=h,
                    content=content if side == sides[-1] else None,
                )
            )
        for item in sizes:
            self._photo_sets[item.file_id] = sizes
        return sizes


def image_size(data: bytes) -> tuple[int, int] | None:
    """Width and height of a PNG, GIF or JPEG image, read from its header."""
    if data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return int(width), int(height)
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        width, height = struct.unpack("<HH", data[6:10])
        return int(width), int(height)
    if data.startswith(b"\xff\xd8"):
        return _jpeg_size(data)
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    index = 2
    while index + 9 < len(data):
        if data[index] != 0xFF:
            index += 1
            continue
        marker = data[index + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            index += 2
            continue
        length = int.from_bytes(data[index + 2 : index + 4], "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", data[index + 5 : index + 9])
            return int(width), int(height)
        index += 2 + length
    return None
