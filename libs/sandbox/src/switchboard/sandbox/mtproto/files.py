"""The fake cloud's file bytes: media a message carries, by the location Telegram names it.

A photo or document is addressed on the wire by (id, access_hash, file_reference); all three
derive from the media's `file_id`, so every process renders the same ones. Bytes arrive
either from the control API (`media.data`, base64) or from a client's `upload.saveFilePart`
calls; `upload.getFile` reads them back in Telegram's chunks.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass, field

from switchboard.sandbox.mtproto.errors import RpcError

MIB = 1024 * 1024
PART_ALIGN = 4096  # upload.getFile: offset and limit are multiples of 4 KB
MAX_LIMIT = MIB  # ... the limit at most 1 MB, dividing 1 MB, never crossing a 1 MB boundary


def file_ident(file_id: str) -> int:
    """The positive 62-bit id (and access hash) Telegram would give the file `file_id`."""
    return int.from_bytes(hashlib.sha256(file_id.encode()).digest()[:8], "big") >> 2


def file_reference(file_id: str) -> bytes:
    """The opaque reference a client must send back with the location."""
    return hashlib.sha256(b"ref:" + file_id.encode()).digest()[:12]


def decode_data(data: object) -> bytes:
    """Bytes of a control-API `media.data` (base64), or a precise ValueError."""
    if not isinstance(data, str):
        raise ValueError("media.data must be a base64 string")
    try:
        return base64.b64decode(data, validate=True)
    except binascii.Error as exc:
        raise ValueError(f"media.data is not valid base64: {exc}") from exc


def check_window(offset: int, limit: int) -> None:
    """Telegram's rules for one upload.getFile window (LIMIT_INVALID / OFFSET_INVALID)."""
    if limit <= 0 or limit % PART_ALIGN or limit > MAX_LIMIT or MIB % limit:
        raise RpcError("LIMIT_INVALID")
    if offset < 0 or offset % PART_ALIGN:
        raise RpcError("OFFSET_INVALID")
    if offset // MIB != (offset + limit - 1) // MIB:
        raise RpcError("LIMIT_INVALID")


@dataclass
class FileStore:
    """Bytes by file id, plus the parts of uploads a client has not sent in a message yet."""

    by_ident: dict[int, tuple[str, bytes]] = field(default_factory=dict)
    parts: dict[tuple[int, int], dict[int, bytes]] = field(default_factory=dict)

    def put(self, file_id: str, data: bytes) -> None:
        self.by_ident[file_ident(file_id)] = (file_id, data)

    def get(self, file_id: str) -> bytes | None:
        found = self.by_ident.get(file_ident(file_id))
        return None if found is None else found[1]

    def save_part(self, owner: int, upload_id: int, part: int, data: bytes) -> None:
        """One upload.saveFilePart / saveBigFilePart of `owner`'s upload `upload_id`."""
        if part < 0:
            raise RpcError("FILE_PART_INVALID")
        self.parts.setdefault((owner, upload_id), {})[part] = data

    def finish_upload(self, owner: int, upload_id: int, file_id: str, total: int) -> int:
        """Join the `total` parts of an upload under `file_id`; its size.

        FILE_PART_X_MISSING names the first part never received, as Telegram does.
        """
        parts = self.parts.pop((owner, upload_id), {})
        for index in range(total):
            if index not in parts:
                raise RpcError(f"FILE_PART_{index}_MISSING")
        data = b"".join(parts[i] for i in range(total))
        self.put(file_id, data)
        return len(data)

    def read(
        self, ident: int, access_hash: int, reference: bytes, offset: int, limit: int
    ) -> bytes:
        """One upload.getFile window of the file at (ident, access_hash, reference)."""
        check_window(offset, limit)
        found = self.by_ident.get(ident)
        if found is None or access_hash != ident:
            raise RpcError("LOCATION_INVALID")
        file_id, data = found
        if not reference:
            raise RpcError("FILE_REFERENCE_EMPTY")
        if reference != file_reference(file_id):
            raise RpcError("FILE_REFERENCE_EXPIRED")
        return data[offset : offset + limit]
