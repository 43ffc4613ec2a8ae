"""Media size limits as pure decisions: which item of which channel is over its limit."""

from __future__ import annotations

import base64

import pytest

from switchboard.events.catalog.common import Channel
from switchboard.events.catalog.outbound import MediaSource, OutMedia, OutMediaGroup, SendMessage
from switchboard.outbound.media_limits import decoded_size, too_large
from switchboard.runtime.media_sizes import KB, MB


def item(kind: str, size: int) -> OutMedia:
    return OutMedia.model_validate(
        {"kind": kind, "source": {"data_base64": base64.b64encode(b"x" * size).decode()}}
    )


def send(channel: Channel, content: OutMedia | OutMediaGroup) -> SendMessage:
    return SendMessage(message_id="m", channel=channel, account="a", recipient="r", content=content)


@pytest.mark.parametrize("size", [0, 1, 2, 3, 4, 1000, 1001, 1002])
def test_the_decoded_size_is_exact(size: int) -> None:
    assert decoded_size(base64.b64encode(b"y" * size).decode()) == size


@pytest.mark.parametrize(
    ("channel", "kind", "limit"),
    [
        (Channel.TELEGRAM, "photo", 10 * MB),
        (Channel.WHATSAPP, "sticker", 500 * KB),
        (Channel.VIBER, "photo", 1 * MB),
    ],
)
def test_one_byte_over_the_limit_is_too_large(channel: Channel, kind: str, limit: int) -> None:
    assert too_large(send(channel, item(kind, limit))) is None
    over = too_large(send(channel, item(kind, limit + 1)))
    assert over is not None
    assert (over.field, over.size, over.limit) == ("content.source.data_base64", limit + 1, limit)


def test_a_group_names_the_item_over_the_limit() -> None:
    group = OutMediaGroup(items=(item("photo", 10), item("photo", 10 * MB + 1)))
    over = too_large(send(Channel.TELEGRAM, group))
    assert over is not None
    assert over.field == "content.items.1.source.data_base64"


def test_urls_and_file_ids_are_not_measured() -> None:
    by_url = OutMedia(kind="photo", source=MediaSource(url="https://cdn.test/huge.jpg"))
    assert too_large(send(Channel.TELEGRAM, by_url)) is None


def test_an_upload_is_measured_by_its_stored_size() -> None:
    cmd = send(
        Channel.TELEGRAM,
        OutMedia.model_validate({"kind": "photo", "source": {"upload_id": "up_" + "a" * 40}}),
    )
    sizes = {"up_" + "a" * 40: 10 * MB + 1}
    over = too_large(cmd, sizes)
    assert over is not None
    assert over.field == "content.source.upload_id"
    assert too_large(cmd, {"up_" + "a" * 40: 10 * MB}) is None
    assert too_large(cmd) is None  # an unknown size is measured where the bytes are read


def test_a_source_names_exactly_one_of_id_url_bytes_or_upload() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        MediaSource(url="https://x.test/a.jpg", upload_id="up_" + "b" * 40)
    with pytest.raises(ValueError, match="upload_id"):
        MediaSource(upload_id="../../etc/passwd")


def test_by_url_telegram_takes_5_mb_photos_and_20_mb_others() -> None:
    from switchboard.outbound.url_sizes import url_limit_of

    assert url_limit_of(Channel.TELEGRAM, "photo") == (5 * MB, "Telegram photo sent by URL")
    assert url_limit_of(Channel.TELEGRAM, "video")[0] == 20 * MB  # type: ignore[index]
    assert url_limit_of(Channel.WHATSAPP, "photo")[0] == 5 * MB  # type: ignore[index]


async def test_internal_addresses_are_not_probed_unless_allowed() -> None:
    import httpx

    from switchboard.outbound.url_sizes import UrlSizes, _total_of

    asked: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        asked.append(str(request.url))
        return httpx.Response(200, headers={"content-length": "123"})

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http:
        assert await UrlSizes(http).size("http://127.0.0.1:9/x.jpg") is None
        assert await UrlSizes(http).size("http://10.1.2.3/x.jpg") is None
        assert await UrlSizes(http).size("file:///etc/passwd") is None
        assert asked == []
        assert await UrlSizes(http, probe_private=True).size("http://127.0.0.1:9/x.jpg") == 123
    assert _total_of("bytes 0-0/6291456") == 6291456
    assert _total_of("bytes */*") is None


# Public addresses that resolve to themselves without DNS (TEST-NET ranges are not global).
PUBLIC, OTHER_PUBLIC = "93.184.216.34", "93.184.216.35"


async def test_a_redirect_to_an_internal_address_is_not_followed() -> None:
    """A public URL answering ``Location: http://127.0.0.1/...`` (or the cloud's metadata
    address) must not make the probe ask there: httpx following redirects did."""
    import httpx

    from switchboard.outbound.url_sizes import UrlSizes

    asked: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        asked.append(f"{request.method} {request.url}")
        if request.url.host == PUBLIC:
            return httpx.Response(302, headers={"location": "http://127.0.0.1:9/secret"})
        if request.url.host == OTHER_PUBLIC:
            return httpx.Response(302, headers={"location": "http://169.254.169.254/latest"})
        return httpx.Response(200, headers={"content-length": "999999999"})

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http:
        assert await UrlSizes(http).size(f"http://{PUBLIC}/x.jpg") is None
        assert await UrlSizes(http).size(f"http://{OTHER_PUBLIC}/x.jpg") is None
    assert all(PUBLIC in a or OTHER_PUBLIC in a for a in asked), asked


async def test_redirects_between_public_addresses_are_followed_and_bounded() -> None:
    import httpx

    from switchboard.outbound.url_sizes import UrlSizes
    from switchboard.runtime.addresses import MAX_REDIRECTS

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/cdn":
            return httpx.Response(301, headers={"location": f"http://{OTHER_PUBLIC}/file.jpg"})
        if request.url.path == "/loop":
            return httpx.Response(302, headers={"location": "/loop"})
        return httpx.Response(200, headers={"content-length": "6291456"})

    asked: list[str] = []

    def counted(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.path)
        return answer(request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(counted)) as http:
        assert await UrlSizes(http).size(f"http://{PUBLIC}/cdn") == 6291456
        asked.clear()
        assert await UrlSizes(http).size(f"http://{PUBLIC}/loop") is None
    assert len(asked) == MAX_REDIRECTS + 1  # the HEAD's hops, bounded: a loop ends the probe


async def test_a_probe_connects_to_the_address_its_check_resolved(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A name answering a public address to the check and a private one to a second lookup
    (DNS rebinding): the probe connects to the checked address, naming the host in
    ``Host`` and in TLS's server name."""
    import ipaddress

    import httpx

    from switchboard.outbound.url_sizes import UrlSizes
    from switchboard.runtime import addresses

    answers = iter([PUBLIC, "127.0.0.1", "127.0.0.1", "127.0.0.1"])

    async def rebinding(host: str) -> list[addresses.IPAddress]:
        return [ipaddress.ip_address(next(answers))] if host == "cdn.example" else []

    monkeypatch.setattr(addresses, "resolved", rebinding)
    seen: list[tuple[str, str, object]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(
            (str(request.url), request.headers["host"], request.extensions.get("sni_hostname"))
        )
        return httpx.Response(200, headers={"content-length": "42"})

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http:
        assert await UrlSizes(http).size("https://cdn.example/x.jpg") == 42
    assert seen == [(f"https://{PUBLIC}/x.jpg", "cdn.example", "cdn.example")]
