"""What the analytics reader does with an event it cannot read: a DecodeError saying why
(the failure policy dead-letters it with that reason), never another exception."""

from __future__ import annotations

import pytest
from nats.aio.msg import Msg

from switchboard.analytics.items import decode
from switchboard.events import DecodeError

HEADERS = {
    "ce-id": "1",
    "ce-type": "switchboard.conv.not_in_the_catalog_yet.v1",  # kept as its JSON body
    "ce-source": "s",
    "ce-specversion": "1.0",
}
REPLY = "$JS.ACK.CONV.analytics.1.7.7.1765000000000000000.0"


def _msg(body: bytes) -> Msg:
    return Msg(None, subject="conv.x.v1", reply=REPLY, data=body, headers=HEADERS)  # type: ignore[arg-type]


def test_an_event_the_catalog_does_not_know_is_kept_as_its_body() -> None:
    item = decode(_msg(b'{"a": 1}'))
    assert (item.seq, item.model, item.body) == (7, None, {"a": 1})


@pytest.mark.parametrize(
    "body",
    [b"{nope", b"[1]", b"[" * 100_000 + b"]" * 100_000],
    ids=["not-json", "not-an-object", "nested-past-the-stack"],
)
def test_a_body_that_is_no_json_object_says_so(body: bytes) -> None:
    """Nested past Python's stack, json.loads raised RecursionError: dead-lettered as an
    unexplained error instead of naming the body."""
    with pytest.raises(DecodeError, match=r"not (a JSON object|JSON)"):
        decode(_msg(body))
