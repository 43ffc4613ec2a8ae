"""The object store's two backends agree: a local directory, and S3 over HTTP against a real
S3 endpoint (moto's standalone server in its own process on a free port, never a mock of
the client library)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from botocore.exceptions import EndpointConnectionError
from tests.support.moto import moto_server

from switchboard.runtime.objectstore import (
    BadKeyError,
    LocalObjectStore,
    ObjectStore,
    ObjectStoreSettings,
    S3ObjectStore,
    open_store,
    safe_key,
)


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    with moto_server() as url:
        yield url


def s3_settings(url: str, bucket: str = "media", prefix: str = "") -> ObjectStoreSettings:
    return ObjectStoreSettings.model_validate(
        {
            "backend": "s3",
            "s3_bucket": bucket,
            "s3_endpoint_url": url,
            "s3_access_key_id": "testing",
            "s3_secret_access_key": "testing",
            "s3_prefix": prefix,
        }
    )


@pytest.fixture(params=["local", "s3"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ObjectStore]:
    if request.param == "local":
        opened: ObjectStore = await open_store(ObjectStoreSettings(local_dir=str(tmp_path)))
        assert isinstance(opened, LocalObjectStore)
    else:
        url = request.getfixturevalue("moto_url")
        opened = await open_store(s3_settings(url, prefix="sb"))
        assert isinstance(opened, S3ObjectStore)
    yield opened
    await opened.close()


async def test_bytes_come_back_identical_with_their_type_and_metadata(store: ObjectStore) -> None:
    data = bytes(range(256)) * 4097  # ~1 MB, every byte value
    await store.put("ws1/uploads/abc", data, "image/jpeg", {"name": "cat.jpg"})
    got = await store.get("ws1/uploads/abc")
    assert got is not None
    assert got.data == data
    assert got.content_type == "image/jpeg"
    assert got.metadata == {"name": "cat.jpg"}
    assert await store.size("ws1/uploads/abc") == len(data)
    assert await store.size("ws1/uploads/none") is None


async def test_a_missing_key_is_none_and_delete_forgets(store: ObjectStore) -> None:
    assert await store.get("ws1/none") is None
    await store.put("ws1/gone", b"x")
    await store.delete("ws1/gone")
    assert await store.get("ws1/gone") is None


async def test_unsafe_keys_are_refused(store: ObjectStore) -> None:
    with pytest.raises(BadKeyError):
        await store.put("ws1/../etc/passwd", b"x")
    with pytest.raises(BadKeyError):
        await store.get("/abs")
    with pytest.raises(BadKeyError):
        safe_key("a/b")


async def test_s3_objects_are_really_in_the_bucket_under_the_prefix(moto_url: str) -> None:
    store = await open_store(s3_settings(moto_url, bucket="proof", prefix="p1"))
    assert isinstance(store, S3ObjectStore)
    try:
        await store.put("ws/k", b"hello", "text/plain")
        s3 = await store._s3()
        listed = await s3.list_objects_v2(Bucket="proof")
        assert [o["Key"] for o in listed["Contents"]] == ["p1/ws/k"]
        # a second open of the same bucket is fine (provisioning is idempotent)
        again = await open_store(s3_settings(moto_url, bucket="proof", prefix="p1"))
        got = await again.get("ws/k")
        assert got is not None
        assert got.data == b"hello"
        await again.close()
    finally:
        await store.close()


def test_s3_without_a_bucket_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="s3_bucket"):
        ObjectStoreSettings(backend="s3")


async def test_an_unreachable_s3_does_not_stop_start_up() -> None:
    store = await open_store(s3_settings("http://127.0.0.1:9", bucket="nowhere"))
    try:
        with pytest.raises(EndpointConnectionError):  # the call fails, not the start
            await store.get("ws/k")
    finally:
        await store.close()


async def test_a_written_object_appears_only_whole_on_commit(store: ObjectStore) -> None:
    data = bytes(range(256)) * 4097
    writer = store.writer("ws1/streamed/a", "image/png", {"from": "telegram"})
    for start in range(0, len(data), 65536):
        await writer.write(data[start : start + 65536])
        assert await store.get("ws1/streamed/a") is None  # nothing visible while writing
    await writer.commit()
    got = await store.get("ws1/streamed/a")
    assert got is not None
    assert got.data == data
    assert got.content_type == "image/png"
    assert got.metadata == {"from": "telegram"}


async def test_an_aborted_object_leaves_nothing(store: ObjectStore, tmp_path: Path) -> None:
    await store.put("ws1/streamed/b", b"the older, whole file")
    writer = store.writer("ws1/streamed/b")
    await writer.write(b"half of a new")
    await writer.abort()
    await writer.abort()  # idempotent
    got = await store.get("ws1/streamed/b")
    assert got is not None
    assert got.data == b"the older, whole file"  # the old object is untouched
    never = store.writer("ws1/streamed/c")
    await never.write(b"x")
    await never.abort()
    assert await store.get("ws1/streamed/c") is None
    if isinstance(store, LocalObjectStore):  # no temporary file is left behind
        assert sorted(p.name for p in (tmp_path / "ws1" / "streamed").iterdir()) == [
            "b",
            "b.meta",
        ]


async def test_a_large_s3_object_goes_up_in_parts_and_an_abort_leaves_no_upload(
    moto_url: str,
) -> None:
    store = await open_store(s3_settings(moto_url, bucket="parts"))
    assert isinstance(store, S3ObjectStore)
    data = bytes(range(256)) * (12 * 4096)  # 12 MiB: two parts of the multipart upload
    try:
        writer = store.writer("ws/big", "application/pdf")
        for start in range(0, len(data), 1 << 20):
            await writer.write(data[start : start + (1 << 20)])
        s3 = await store._s3()
        pending = await s3.list_multipart_uploads(Bucket="parts")
        assert len(pending.get("Uploads", [])) == 1  # the first part is already up
        await writer.commit()
        got = await store.get("ws/big")
        assert got is not None
        assert got.data == data
        assert got.content_type == "application/pdf"

        aborted = store.writer("ws/cut")
        await aborted.write(data)
        await aborted.abort()
        pending = await s3.list_multipart_uploads(Bucket="parts")
        assert pending.get("Uploads", []) == []
        assert await store.get("ws/cut") is None
    finally:
        await store.close()


async def test_an_object_streams_back_in_pieces_with_its_type(store: ObjectStore) -> None:
    data = bytes(range(256)) * (3 * 4096 + 7)  # 3 MiB and a bit: several read pieces
    await store.put("ws1/streamed/d", data, "video/mp4", {"n": "1"})
    opened = await store.open("ws1/streamed/d")
    assert opened is not None
    try:
        assert (opened.size, opened.content_type, opened.metadata) == (
            len(data),
            "video/mp4",
            {"n": "1"},
        )
        pieces = [chunk async for chunk in opened.chunks]
    finally:
        await opened.aclose()
    assert len(pieces) > 1
    assert b"".join(pieces) == data
    assert await store.open("ws1/streamed/none") is None
    half = await store.open("ws1/streamed/d")  # closed before the end: fine
    assert half is not None
    assert len(await anext(half.chunks)) > 0
    await half.aclose()
