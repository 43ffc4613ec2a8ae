"""What a send route refuses before queueing, beside schema validation: a file by a URL no
provider fetches, a text over its limit, a user account's unsupported content."""

from __future__ import annotations

import json
from typing import Any

import pytest

from switchboard.events.catalog.common import Channel
from switchboard.events.catalog.outbound import (
    MediaSource,
    OutMedia,
    OutMediaGroup,
    OutText,
    SendMessage,
)
from switchboard.outbound.fits import unfit


def send(channel: Channel, content: Any) -> SendMessage:
    return SendMessage(message_id="m", channel=channel, account="a", recipient="1",
                       content=content)  # fmt: skip


def by_url(url: str) -> OutMedia:
    return OutMedia(kind="photo", source=MediaSource(url=url))


@pytest.mark.parametrize(
    ("cmd", "answer"),
    [
        (send(Channel.TELEGRAM, by_url("https://cdn.example/a.jpg")), None),
        (send(Channel.WHATSAPP, by_url("HTTP://cdn.example/a.jpg")), None),
        (send(Channel.TELEGRAM, by_url("ftp://cdn.example/a.jpg")),
         ("invalid_url", "content.source.url")),
        (send(Channel.VIBER, by_url("file:///etc/passwd")), ("invalid_url", "content.source.url")),
        (send(Channel.TELEGRAM, OutMediaGroup(items=(by_url("https://a/1"), by_url("data:x")))),
         ("invalid_url", "content.items.1.source.url")),
        (send(Channel.TELEGRAM, OutText(text="x" * 4097)), ("too_long", "content.text")),
        (send(Channel.MTPROTO, OutMedia(kind="sticker", source=MediaSource(file_id="C"))),
         ("unsupported_content", "content.kind")),
    ],
)  # fmt: skip
def test_what_does_not_fit_is_a_422_naming_the_field(
    cmd: SendMessage, answer: tuple[str, str] | None
) -> None:
    problem = unfit(cmd)
    if answer is None:
        assert problem is None
        return
    assert problem is not None
    assert problem.status_code == 422
    body = json.loads(problem.body)
    assert (body["code"], body["field"]) == answer
