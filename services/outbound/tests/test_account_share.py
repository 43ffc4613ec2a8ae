"""``outbound.share``: how many commands of an account an instance holds, and when one that
found the room full comes again (paced at the account's rate, in order)."""

from __future__ import annotations

import pytest

from switchboard.outbound.ratelimit import Limit
from switchboard.outbound.share import MIN_HELD, AccountShare, come_back_at, room

BOT = Limit(30)  # a Telegram bot: 30 a second


@pytest.mark.parametrize(
    ("limit", "places", "held"),
    [
        (BOT, 512, 128),  # a quarter of the places: 2 s of its rate is less
        (BOT, 64, 32),  # half at most, though 2 s of its rate is more
        (BOT, 160, 60),  # 2 s of its rate, more than a quarter
        (Limit(80), 512, 160),  # a WhatsApp number
        (Limit(1), 16, MIN_HELD),  # a slow account on few places still holds a few
        (Limit(1), 4, 2),  # ... but never more than half of them
        (Limit(20, per=60.0), 1, 1),  # one place: the account may still hold it
    ],
)
def test_an_account_holds_a_share_of_the_places(limit: Limit, places: int, held: int) -> None:
    assert room(limit, 2.0, places) == held


def test_one_sent_back_comes_again_after_those_held_and_after_the_last_sent_back() -> None:
    assert come_back_at(60, BOT, last=0.0, now=100.0) == pytest.approx(102.0)
    assert come_back_at(60, BOT, last=105.0, now=100.0) == pytest.approx(105.0 + 1 / 30)


def test_a_share_holds_its_room_then_paces_the_rest_in_order_and_frees_on_release() -> None:
    share = AccountShare(ahead_s=2.0, places=160)
    assert [share.take("a", BOT, 100.0) for _ in range(60)] == [None] * 60
    backs = [share.take("a", BOT, 100.0) for _ in range(3)]
    assert backs == pytest.approx([2.0, 2.0 + 1 / 30, 2.0 + 2 / 30])  # in order, paced
    assert share.take("b", BOT, 100.0) is None  # another account has its own room
    share.release("a")
    assert share.take("a", BOT, 100.0) is None  # a place freed is taken again
    for _ in range(60):
        share.release("a")
    assert "a" not in share.held
