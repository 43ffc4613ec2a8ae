"""Object storage for media bytes: a local directory by default, S3-compatible by settings.

Bytes never travel in a stream (JetStream's ``max_payload`` is about 1 MB): an uploaded
file is stored here and commands carry its key; a downloaded attachment may be kept here
so that it is fetched from the provider once (written piece by piece while it streams
through, by an :class:`ObjectWriter` that publishes it only whole). The embedded default is
a directory on disk (``.data/objects``), a real deployment points every service at the same
S3 or MinIO bucket through ``SWITCHBOARD_OBJECTS__*`` settings. Keys are ``/``-separated
paths of safe characters (:func:`safe_key`), so both backends store the same names.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import uuid
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import orjson
from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from switchboard.runtime.errors import SwitchboardRuntimeError
from switchboard.runtime.logging import get_logger

log = get_logger(__name__)

_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._=-]{0,199}$")


class ObjectStoreSettings(BaseModel):
    """Where media bytes are kept (``SWITCHBOARD_OBJECTS__BACKEND=s3`` and friends)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    backend: Literal["local", "s3"] = "local"
    local_dir: str = Field(".data/objects", description="directory of the local backend")
    s3_bucket: str | None = Field(None, description="bucket (created if missing)")
    s3_endpoint_url: str | None = Field(None, description="S3 / MinIO endpoint; unset: AWS")
    s3_region: str = "us-east-1"
    s3_access_key_id: SecretStr | None = None
    s3_secret_access_key: SecretStr | None = None
    s3_prefix: str = Field("", description="key prefix inside the bucket")
    persist_downloads: bool = Field(
        True, description="keep attachments fetched from providers (fetched once, then served)"
    )

    @model_validator(mode="after")
    def _s3_needs_a_bucket(self) -> ObjectStoreSettings:
        if self.backend == "s3" and not self.s3_bucket:
            raise ValueError("objects.s3_bucket is required when objects.backend is s3")
        return self


class BadKeyError(SwitchboardRuntimeError, ValueError):
    """An object key with an empty, dotted or unsafe segment."""


def safe_key(*parts: str) -> str:
    """A key from path segments; every segment is checked (no ``..``, no ``/`` inside)."""
    for part in parts:
        if not _SEGMENT.match(part) or part in (".", ".."):
            raise BadKeyError(f"unsafe object key segment {part!r}")
    return "/".join(parts)


def digest_segment(text: str) -> str:
    """A safe, fixed-length segment for any text (e.g. a provider file id or a message id)."""
    return hashlib.sha256(text.encode()).hexdigest()[:40]


@dataclass(frozen=True)
class StoredObject:
    """An object's bytes and the metadata written with it."""

    data: bytes
    content_type: str
    metadata: dict[str, str]


# Pieces an object is read in when streamed (bounded memory per download).
READ_CHUNK = 1 << 20


@dataclass
class ObjectStream:
    """An object opened for reading piece by piece (``chunks``), with what was written with
    it; :meth:`aclose` when done, read to the end or not."""

    content_type: str
    metadata: dict[str, str]
    size: int
    chunks: AsyncGenerator[bytes, None]
    _close: Callable[[], Awaitable[None]] = field(repr=False)

    async def aclose(self) -> None:
        await self.chunks.aclose()
        await self._close()


class ObjectWriter(Protocol):
    """An object written piece by piece: nothing is visible under its key until
    :meth:`commit`; :meth:`abort` (or a crash before commit) leaves no object behind."""

    async def write(self, chunk: bytes) -> None: ...

    async def commit(self) -> None:
        """Publish what was written under the key, whole (replacing an older object)."""
        ...

    async def abort(self) -> None:
        """Forget what was written (idempotent; a no-op after commit)."""
        ...


class ObjectStore(ABC):
    """Put and get whole objects by key; a missing key reads as None. A backend writes and
    reads in pieces (:meth:`writer`, :meth:`open`); whole objects go through those, so both
    backends store and read them the one same way."""

    async def put(
        self,
        key: str,
        data: bytes,
        content_type: str = "application/octet-stream",
        metadata: dict[str, str] | None = None,
    ) -> None:
        writer = self.writer(key, content_type, metadata)
        try:
            await writer.write(data)
            await writer.commit()
        finally:
            await writer.abort()

    async def get(self, key: str) -> StoredObject | None:
        stream = await self.open(key)
        if stream is None:
            return None
        try:
            data = b"".join([chunk async for chunk in stream.chunks])
        finally:
            await stream.aclose()
        return StoredObject(data, stream.content_type, stream.metadata)

    @abstractmethod
    async def open(self, key: str) -> ObjectStream | None:
        """The object to stream (None: no such object), without holding it in memory."""

    @abstractmethod
    def writer(
        self,
        key: str,
        content_type: str = "application/octet-stream",
        metadata: dict[str, str] | None = None,
    ) -> ObjectWriter:
        """Write an object in pieces (e.g. while it streams through) without ever exposing
        part of it under ``key``."""

    @abstractmethod
    async def size(self, key: str) -> int | None:
        """The object's byte size without reading it (None: no such object)."""

    @abstractmethod
    async def delete(self, key: str) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...


def _still_open(done: bool) -> None:
    """A writer takes nothing more once it was committed or aborted."""
    if done:
        raise RuntimeError("the object was already committed or aborted")


class LocalObjectStore(ObjectStore):
    """Objects as files under a directory, with a ``.meta`` JSON beside each; writes go to a
    temporary name first and are renamed, so a reader never sees half a file."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        safe_key(*key.split("/"))
        return self.root / key

    def writer(
        self,
        key: str,
        content_type: str = "application/octet-stream",
        metadata: dict[str, str] | None = None,
    ) -> LocalObjectWriter:
        meta = orjson.dumps({"content_type": content_type, "metadata": metadata or {}})
        return LocalObjectWriter(self._path(key), meta)

    async def open(self, key: str) -> ObjectStream | None:
        path = self._path(key)

        def _open() -> tuple[Any, dict[str, Any], int] | None:
            try:
                meta = orjson.loads(path.with_name(path.name + ".meta").read_bytes())
                file = path.open("rb")  # an open file keeps its bytes through a replace
            except FileNotFoundError:
                return None
            return file, meta, os.fstat(file.fileno()).st_size

        opened = await asyncio.to_thread(_open)
        if opened is None:
            return None
        file, meta, size = opened

        async def chunks() -> AsyncGenerator[bytes, None]:
            while chunk := await asyncio.to_thread(file.read, READ_CHUNK):
                yield chunk

        async def close() -> None:
            await asyncio.to_thread(file.close)

        return ObjectStream(
            str(meta["content_type"]), dict(meta.get("metadata") or {}), size, chunks(), close
        )

    async def size(self, key: str) -> int | None:
        path = self._path(key)
        try:
            return path.stat().st_size
        except FileNotFoundError:
            return None

    async def delete(self, key: str) -> None:
        path = self._path(key)
        for target in (path, path.with_name(path.name + ".meta")):
            target.unlink(missing_ok=True)

    async def close(self) -> None:
        return None


def _temporary(target: Path) -> Path:
    """A hidden name beside ``target`` for its bytes in the making (never a valid key, as
    keys start with a letter or digit; unique, so concurrent writers never share one)."""
    return target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex[:12]}.tmp")


@dataclass
class LocalObjectWriter:
    """Writes into a hidden temporary file beside the object and renames it into place on
    commit (the ``.meta`` first, then the bytes: a reader needs both, so sees all or none)."""

    path: Path
    meta: bytes
    _tmp: Path | None = None
    _file: Any = field(default=None, repr=False)
    _done: bool = False

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = _temporary(self.path)
        self._file = self._tmp.open("wb")

    def _write(self, chunk: bytes) -> None:
        if self._file is None:
            self._open()
        self._file.write(chunk)

    def _commit(self) -> None:
        if self._file is None:
            self._open()
        self._file.close()
        meta_path = self.path.with_name(self.path.name + ".meta")
        meta_tmp = _temporary(meta_path)
        meta_tmp.write_bytes(self.meta)
        meta_tmp.replace(meta_path)
        assert self._tmp is not None
        self._tmp.replace(self.path)
        self._file = self._tmp = None

    def _abort(self) -> None:
        if self._file is not None:
            self._file.close()
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)
        self._file = self._tmp = None

    async def write(self, chunk: bytes) -> None:
        _still_open(self._done)
        await asyncio.to_thread(self._write, chunk)

    async def commit(self) -> None:
        _still_open(self._done)
        self._done = True
        try:
            await asyncio.to_thread(self._commit)
        except BaseException:
            await asyncio.to_thread(self._abort)
            raise

    async def abort(self) -> None:
        self._done = True
        await asyncio.to_thread(self._abort)


# S3 multipart parts must be at least 5 MiB except the last; a smaller object is one PUT.
S3_PART_SIZE = 8 * 1024 * 1024


@dataclass
class S3ObjectWriter:
    """Buffers up to one part and uploads parts of a multipart upload as they fill; S3
    shows the object only when the upload completes, and an aborted upload leaves nothing
    (a small object is a single PUT on commit)."""

    store: S3ObjectStore
    key: str
    content_type: str
    metadata: dict[str, str]
    part_size: int = S3_PART_SIZE
    _buffer: bytearray = field(default_factory=bytearray, repr=False)
    _upload_id: str | None = None
    _parts: list[dict[str, Any]] = field(default_factory=list)
    _done: bool = False

    async def _upload_part(self, s3: Any, data: bytes) -> None:
        if self._upload_id is None:
            started = await s3.create_multipart_upload(
                Bucket=self.store.bucket,
                Key=self.key,
                ContentType=self.content_type,
                Metadata=self.metadata,
            )
            self._upload_id = str(started["UploadId"])
        number = len(self._parts) + 1
        answer = await s3.upload_part(
            Bucket=self.store.bucket,
            Key=self.key,
            UploadId=self._upload_id,
            PartNumber=number,
            Body=data,
        )
        self._parts.append({"PartNumber": number, "ETag": answer["ETag"]})

    async def write(self, chunk: bytes) -> None:
        _still_open(self._done)
        self._buffer += chunk
        if len(self._buffer) >= self.part_size:
            s3 = await self.store._s3()
            while len(self._buffer) >= self.part_size:
                part = bytes(self._buffer[: self.part_size])
                del self._buffer[: self.part_size]
                await self._upload_part(s3, part)

    async def commit(self) -> None:
        _still_open(self._done)
        self._done = True
        s3 = await self.store._s3()
        try:
            if self._upload_id is None:
                await s3.put_object(
                    Bucket=self.store.bucket,
                    Key=self.key,
                    Body=bytes(self._buffer),
                    ContentType=self.content_type,
                    Metadata=self.metadata,
                )
            else:
                if self._buffer:
                    await self._upload_part(s3, bytes(self._buffer))
                await s3.complete_multipart_upload(
                    Bucket=self.store.bucket,
                    Key=self.key,
                    UploadId=self._upload_id,
                    MultipartUpload={"Parts": self._parts},
                )
                self._upload_id = None
        except BaseException:
            await self._abort_upload()
            raise
        finally:
            self._buffer.clear()

    async def _abort_upload(self) -> None:
        if self._upload_id is None:
            return
        upload_id, self._upload_id = self._upload_id, None
        s3 = await self.store._s3()
        try:
            await s3.abort_multipart_upload(
                Bucket=self.store.bucket, Key=self.key, UploadId=upload_id
            )
        except Exception as exc:  # the bucket's lifecycle rule reaps it; nothing is visible
            log.warning("abandoned multipart upload", key=self.key, error=str(exc))

    async def abort(self) -> None:
        self._done = True
        self._buffer.clear()
        await self._abort_upload()


class S3ObjectStore(ObjectStore):
    """Objects in an S3-compatible bucket through aiobotocore (AWS, MinIO, Ceph, ...).
    The client is made on first use and closed by :meth:`close`."""

    def __init__(self, settings: ObjectStoreSettings) -> None:
        assert settings.s3_bucket is not None
        self.settings = settings
        self.bucket = settings.s3_bucket
        self.prefix = settings.s3_prefix.strip("/")
        self._stack = contextlib.AsyncExitStack()
        self._client: Any = None
        self._lock = asyncio.Lock()

    def _key(self, key: str) -> str:
        safe_key(*key.split("/"))
        return f"{self.prefix}/{key}" if self.prefix else key

    async def _s3(self) -> Any:
        async with self._lock:
            if self._client is None:
                from aiobotocore.session import get_session

                s = self.settings
                secret = s.s3_secret_access_key
                self._client = await self._stack.enter_async_context(
                    get_session().create_client(
                        "s3",
                        endpoint_url=s.s3_endpoint_url,
                        region_name=s.s3_region,
                        aws_access_key_id=(
                            s.s3_access_key_id.get_secret_value() if s.s3_access_key_id else None
                        ),
                        aws_secret_access_key=secret.get_secret_value() if secret else None,
                    )
                )
            return self._client

    async def ensure_bucket(self) -> None:
        """Create the bucket when it does not exist (idempotent, like stream provisioning)."""
        from botocore.exceptions import ClientError

        s3 = await self._s3()
        try:
            await s3.head_bucket(Bucket=self.bucket)
        except ClientError:
            with contextlib.suppress(
                s3.exceptions.BucketAlreadyOwnedByYou, s3.exceptions.BucketAlreadyExists
            ):
                await s3.create_bucket(Bucket=self.bucket)

    def writer(
        self,
        key: str,
        content_type: str = "application/octet-stream",
        metadata: dict[str, str] | None = None,
    ) -> S3ObjectWriter:
        return S3ObjectWriter(self, self._key(key), content_type, metadata or {})

    async def open(self, key: str) -> ObjectStream | None:
        s3 = await self._s3()
        try:
            answer = await s3.get_object(Bucket=self.bucket, Key=self._key(key))
        except s3.exceptions.NoSuchKey:
            return None
        body = answer["Body"]

        async def chunks() -> AsyncGenerator[bytes, None]:
            async for chunk in body.iter_chunks(READ_CHUNK):
                yield chunk

        async def close() -> None:
            body.close()  # the connection goes back to the pool (or is dropped mid-body)

        return ObjectStream(
            str(answer.get("ContentType") or "application/octet-stream"),
            dict(answer.get("Metadata") or {}),
            int(answer["ContentLength"]),
            chunks(),
            close,
        )

    async def size(self, key: str) -> int | None:
        from botocore.exceptions import ClientError

        s3 = await self._s3()
        try:
            head = await s3.head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return int(head["ContentLength"])

    async def delete(self, key: str) -> None:
        s3 = await self._s3()
        await s3.delete_object(Bucket=self.bucket, Key=self._key(key))

    async def close(self) -> None:
        await self._stack.aclose()
        self._client = None


async def open_store(settings: ObjectStoreSettings) -> ObjectStore:
    """The configured store (an S3 bucket is created when missing). An unreachable S3 does
    not stop the service: only what needs the files fails (and is retried) until it is back,
    sends without files and the rest of the API go on."""
    if settings.backend == "s3":
        store = S3ObjectStore(settings)
        try:
            await store.ensure_bucket()
        except Exception as exc:
            log.warning("object store unreachable at start", bucket=store.bucket, error=str(exc))
        return store
    return LocalObjectStore(settings.local_dir)
