"""``turns.Turns`` across instances, on real NATS: a send waits while an earlier command on
its subject (its chat's bucket) is still in the OUTBOUND stream, goes once that one leaves,
and goes anyway after its patience (counted), so a stuck earlier send never stops a chat."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from switchboard.events import encode
from switchboard.events.catalog.outbound import OutText, SendMessage
from switchboard.outbound.turns import IMPATIENT, Turns
from switchboard.runtime.bus import Bus
from switchboard.runtime.testing import eventually


async def stored(bus: Bus, n: int, recipient: str = "4201") -> Any:
    """A send command stored in OUTBOUND, as a lane would receive it (no consumer runs)."""
    cmd = SendMessage(
        message_id=f"o-{recipient}-{n}", channel="telegram", account="shop",
        recipient=recipient, content=OutText(text=str(n)),
    )  # fmt: skip
    enc = encode(cmd, source="test", workspace_id="demo")
    ack = await bus.publish_raw(enc.subject, enc.body, dict(enc.headers))
    meta = SimpleNamespace(stream="OUTBOUND", consumer="outbound-sends",
                           sequence=SimpleNamespace(stream=ack.seq))  # fmt: skip
    return SimpleNamespace(subject=enc.subject, data=enc.body, headers=enc.headers, metadata=meta)


async def test_a_send_waits_for_an_earlier_one_on_its_subject_until_it_leaves(
    bus: Bus, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = await stored(bus, 1), await stored(bus, 3)
    other_chat = await stored(bus, 2, "4299")
    turns = Turns(bus.js, patience_s=60)
    await asyncio.wait_for(turns.wait(first), 5)  # nothing before it
    await asyncio.wait_for(turns.wait(other_chat), 5)  # another chat's bucket
    get_msg, asked = bus.js.get_msg, []

    async def counted(*args: Any, **kw: Any) -> Any:
        asked.append(kw.get("subject"))
        return await get_msg(*args, **kw)

    monkeypatch.setattr(bus.js, "get_msg", counted)
    waiting = asyncio.create_task(turns.wait(second))

    async def asked_three_times() -> bool:
        return len(asked) >= 3

    await eventually(asked_three_times)
    assert not waiting.done()  # the first is still there
    await bus.js.delete_msg("OUTBOUND", first.metadata.sequence.stream)  # settled elsewhere
    await asyncio.wait_for(waiting, 5)


async def test_a_send_goes_after_its_patience_and_is_counted(bus: Bus) -> None:
    stuck, later = await stored(bus, 1, "4202"), await stored(bus, 2, "4202")
    before = IMPATIENT._value.get()
    await asyncio.wait_for(Turns(bus.js, patience_s=0.1).wait(later), 5)
    assert IMPATIENT._value.get() == before + 1
    assert (await bus.js.get_msg("OUTBOUND", stuck.metadata.sequence.stream)).seq
