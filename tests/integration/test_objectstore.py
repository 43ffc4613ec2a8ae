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
