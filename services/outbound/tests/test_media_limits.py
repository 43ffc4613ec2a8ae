"""Media size limits as pure decisions: which item of which channel is over its limit."""

from __future__ import annotations

import base64

import pytest

from switchboard.events.catalog.common import Channel
from switchboard.events.catalog.outbound import MediaSource, OutMedia, OutMediaGroup, SendMessage
from switchboard.outbound.media_limits import KB, MB, decoded_size, too_large


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
