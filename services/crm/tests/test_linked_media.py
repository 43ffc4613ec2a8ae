"""A Viber message names its file by URL, and whoever holds the account's token can sign a
webhook naming any URL: the CRM downloads it as a tenant's URL (public hosts only, every
redirect checked, connected at the address checked), never from inside the network."""

from __future__ import annotations

import httpx
import pytest

from switchboard.crm.attachments import Attachment
from switchboard.crm.media import MediaError, ProviderMedia
from switchboard.events.catalog.common import Channel
from switchboard.runtime.accounts import Account
from switchboard.runtime.breaker import Breakers

# Public addresses that need no DNS (TEST-NET ranges would not count as global).
PUBLIC, OTHER_PUBLIC = "93.184.216.34", "93.184.216.35"
VIBER = Account(channel=Channel.VIBER, id="shop", workspace_id="w1", secrets={"auth_token": "t"})


def picture(url: str) -> Attachment:
    return Attachment(index=0, kind="photo", file_id="", url=url)


def fake_cdn(asked: list[str]) -> httpx.MockTransport:
    def answer(request: httpx.Request) -> httpx.Response:
        asked.append(str(request.url))
        if request.url.path == "/to-metadata":
            return httpx.Response(302, headers={"location": "http://169.254.169.254/latest/"})
        if request.url.path == "/to-cdn":
            return httpx.Response(301, headers={"location": f"http://{OTHER_PUBLIC}/pic.jpg"})
        return httpx.Response(200, content=b"PNG", headers={"content-type": "image/png"})

    return httpx.MockTransport(answer)


async def open_file(url: str, asked: list[str], *, private: bool = False) -> bytes:
    # The client as the CRM builds it: it follows redirects for the providers' own APIs.
    async with httpx.AsyncClient(transport=fake_cdn(asked), follow_redirects=True) as http:
        media = ProviderMedia(http, Breakers(), private_urls=private)
        download = await media.open("viber", VIBER, picture(url), 1024)
        return b"".join([chunk async for chunk in download.chunks()])


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8222/varz",  # the NATS monitor on the same pod
        "http://169.254.169.254/latest/meta-data/",  # the cloud's credentials
        "http://10.0.0.7/internal",
        "file:///etc/passwd",
    ],
)
async def test_a_url_inside_the_network_is_refused_without_a_call(url: str) -> None:
    asked: list[str] = []
    with pytest.raises(MediaError) as refused:
        await open_file(url, asked)
    assert (refused.value.status, refused.value.code) == (502, "not_public_url")
    assert asked == []


async def test_a_redirect_into_the_network_is_not_followed() -> None:
    asked: list[str] = []
    with pytest.raises(MediaError) as refused:
        await open_file(f"http://{PUBLIC}/to-metadata", asked)
    assert refused.value.code == "not_public_url"
    assert asked == [f"http://{PUBLIC}/to-metadata"]


async def test_a_public_file_and_its_public_redirects_download() -> None:
    asked: list[str] = []
    assert await open_file(f"http://{PUBLIC}/to-cdn", asked) == b"PNG"
    assert asked == [f"http://{PUBLIC}/to-cdn", f"http://{OTHER_PUBLIC}/pic.jpg"]


async def test_a_local_sandbox_is_reached_only_when_allowed() -> None:
    asked: list[str] = []
    assert await open_file("http://127.0.0.1:8090/viber/media/x.png", asked, private=True) == b"PNG"
    assert asked == ["http://127.0.0.1:8090/viber/media/x.png"]
