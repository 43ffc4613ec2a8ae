"""``turns.Turns`` without NATS: a chat's sends wait for the ones their lane received
before them, other chats and other lanes do not, and a command that leaves (sent, failed,
held, put back) lets the next one go."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import orjson

from switchboard.outbound.turns import Turns, chat_of


def command(
    seq: int,
    recipient: str,
    *,
    lane: str = "outbound-sends",
    ws: str = "acme",
    channel: str = "telegram",
) -> Any:
    body = {"channel": channel, "account": "shop", "recipient": recipient, "content": {}}
    meta = SimpleNamespace(consumer=lane, sequence=SimpleNamespace(stream=seq))
    subject = "cmd.outbound.send.v1.telegram.shop"
    headers = {"workspace-id": ws}
    return SimpleNamespace(subject=subject, data=orjson.dumps(body), headers=headers, metadata=meta)


async def test_a_chat_s_sends_go_in_the_order_they_arrived() -> None:
    turns = Turns()
    first, second, third = command(1, "7"), command(2, "7"), command(3, "7")
    other_chat, other_lane = command(4, "8"), command(5, "7", lane="outbound-bulk")
    for msg in (first, second, third, other_chat, other_lane):
        turns.arrive(msg)
    went: list[int] = []

    async def send(msg: Any) -> None:
        await turns.wait(msg)
        went.append(msg.metadata.sequence.stream)

    tasks = [asyncio.create_task(send(m)) for m in (third, second, other_chat, other_lane)]
    await asyncio.wait_for(asyncio.gather(tasks[2], tasks[3]), 1)  # nothing before them
    assert went == [4, 5]
    await send(first)
    turns.leave(first)
    await asyncio.wait_for(tasks[1], 1)
    assert not tasks[0].done()  # the third waits for the second to leave
    turns.leave(second)
    await asyncio.wait_for(tasks[0], 1)
    assert went == [4, 5, 1, 2, 3]
    for msg in (third, other_chat, other_lane, third):  # leaving twice is harmless
        turns.leave(msg)
    assert len(turns) == 0


async def test_a_send_that_leaves_before_its_turn_lets_the_next_one_go() -> None:
    turns = Turns()
    held, later = command(1, "7"), command(2, "7")
    turns.arrive(held)
    turns.arrive(later)
    waiting = asyncio.create_task(turns.wait(later))
    await asyncio.sleep(0)
    assert not waiting.done()
    turns.leave(held)  # held for its time, failed, or put back: it never took its turn
    await asyncio.wait_for(waiting, 1)


def test_only_a_readable_send_takes_a_turn() -> None:
    broken = command(1, "7")
    broken.data = b"not json"
    assert chat_of(broken) is None
    assert chat_of(command(2, "7", ws="other")) == (
        "outbound-sends",
        "other",
        "telegram",
        "shop",
        "7",
    )
    turns = Turns()
    turns.arrive(broken)
    assert len(turns) == 0


def test_a_chat_s_sends_go_behind_its_sends_sent_back_in_their_first_order() -> None:
    """Sent back for the account's share: the chat's later sends go behind it, one sent
    back again keeps its place, and one out past the patience is forgotten."""
    turns = Turns(patience_s=10)
    first, second, fresh, other = command(1, "7"), command(2, "7"), command(3, "7"), command(4, "8")
    for msg in (first, second, fresh, other):
        turns.arrive(msg)
    turns.sent_back(first, "m1", 100.0, 0.0)
    turns.sent_back(second, "m2", 101.0, 0.0)
    assert turns.behind(fresh, "m3", 50.0) == 101.0  # behind both
    assert turns.behind(other, "m4", 50.0) is None  # another chat
    assert turns.behind(first, "m1", 100.0) is None  # the first out goes on
    assert turns.behind(second, "m2", 101.0) == 100.0  # the first is still out
    turns.sent_back(first, "m1", 105.0, 0.0)  # sent back again: still first
    assert turns.behind(second, "m2", 101.0) == 105.0
    turns.gone_on(first, "m1")
    assert turns.behind(second, "m2", 106.0) is None
    assert turns.behind(fresh, "m3", 120.0) is None  # m2 out 19 s past its time: forgotten


def test_sends_sent_back_keep_the_order_they_first_came_in_when_they_come_again() -> None:
    """A send sent back comes again as a new message (a later sequence); it keeps the
    place its first sequence gave it, also once it has gone on (asked again before its
    slot), and a later send sent back first does not put an earlier one behind it."""
    turns = Turns(patience_s=10)
    first, second = command(1, "7"), command(2, "7")
    for msg in (first, second):
        turns.arrive(msg)
    turns.sent_back(second, "m2", 100.0, 0.0)  # the later one reached the full share first
    assert turns.behind(first, "m1", 50.0) is None  # the earlier one is not behind it
    turns.sent_back(first, "m1", 101.0, 0.0)  # sent back too (the share is full)
    again_2, again_1 = command(8, "7"), command(9, "7")  # they come again, m2 first
    turns.arrive(again_2)
    turns.arrive(again_1)
    assert turns.behind(again_2, "m2", 100.0) == 101.0  # behind m1, which came first
    assert turns.behind(again_1, "m1", 101.0) is None
    turns.gone_on(again_1, "m1")
    assert turns.behind(again_1, "m1", 101.0) is None  # asked again before its slot
    turns.leave(again_1)
    assert turns.behind(again_2, "m2", 102.0) is None


def test_sends_out_too_long_are_forgotten_for_every_chat() -> None:
    """A send sent back that came again to another instance never goes on here: past
    ``OUT_CHATS`` chats with sends out, those out longer than the patience are forgotten."""
    from switchboard.outbound import turns as module

    turns = Turns(patience_s=10)
    for n in range(module.OUT_CHATS + 1):
        msg = command(n + 1, f"chat-{n}")
        turns.arrive(msg)
        turns.sent_back(msg, f"m{n}", 100.0, 50.0)
    assert len(turns._out) == module.OUT_CHATS + 1  # none is out too long yet
    late = command(5000, "late")
    turns.arrive(late)
    turns.sent_back(late, "late", 200.0, 150.0)
    assert list(turns._out) == [module.chat_of(late)]


def test_a_whatsapp_phone_written_two_ways_is_one_chat() -> None:
    """ "+1 555 123 4567" and 15551234567 are one WhatsApp chat: one turn in the instance and
    one bucket of the subject across instances. Before, the two spellings were two chats, so
    a send written one way could overtake an earlier one written the other way."""
    from switchboard.events.catalog.common import Channel
    from switchboard.events.catalog.outbound import OutText, SendMessage

    spelled, digits = (
        command(1, "+1 555 123 4567", channel="whatsapp"),
        command(2, "15551234567", channel="whatsapp"),
    )
    assert chat_of(spelled) == chat_of(digits)
    assert chat_of(command(3, "+1 555 123 4567")) != chat_of(command(4, "15551234567"))

    def send(recipient: str) -> SendMessage:
        return SendMessage(message_id="m", channel=Channel.WHATSAPP, account="wa",
                           recipient=recipient, content=OutText(text="hi"))  # fmt: skip

    assert send("+1 (555) 123-4567").subject() == send("15551234567").subject()
    assert send("US.13491208655302741918").subject() != send("13491208655302741918").subject()
