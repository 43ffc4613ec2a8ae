"""A send made on a leased slot reports its answer to the account's window; a user
account's send asked of the gateway during a pause (which answers without calling Telegram)
leased no slot and reports nothing. It used to report one: the window then logged a send
that never was, and held one of its places for nothing."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from switchboard.events.catalog.common import Channel
from switchboard.events.catalog.outbound import OutText, SendMessage
from switchboard.outbound.http import SEND_WINDOW
from switchboard.outbound.limits import LimitKey, send_limits
from switchboard.outbound.providers.base import Sent
from switchboard.outbound.sender import Sender, SendPolicy
from switchboard.runtime.accounts import Account
from switchboard.runtime.breaker import Breakers


@dataclass
class Window:
    """What the shared limiter would be told about the account's window."""

    margin: float = 0.0
    notes: list[tuple[str, float, bool]] = field(default_factory=list)

    def allowance(self, limit: Any) -> float:
        return 0.05

    def note_late(self, key: LimitKey, slot: float, seconds: float, answered: bool = False) -> None:
        self.notes.append((key.name, slot, answered))

    async def counted_late(self, key: LimitKey) -> None:
        return None

    async def shift(self, key: LimitKey, late: Any) -> None:
        return None


class Gateway:
    """The user-account client: leaves at once and answers sent."""

    channel = "mtproto"

    async def send(self, account: Account, command: SendMessage) -> Sent:
        window = SEND_WINDOW.get()
        assert window is not None
        window.left_at = window.clock()
        return Sent("77", {})


async def _call(leased: bool) -> list[tuple[str, float, bool]]:
    window = Window()
    sender = Sender(
        bus=None, accounts=None, attempts=None, limiter=window, schedulers=None,  # type: ignore[arg-type]
        breakers=Breakers(), clients={}, policy=SendPolicy(), clock=lambda: 100.0,
    )  # fmt: skip
    account = Account(channel=Channel.MTPROTO, id="ann")
    cmd = SendMessage(
        message_id="m1", channel=Channel.MTPROTO, account="ann", recipient="@friend",
        content=OutText(text="hi"),
    )  # fmt: skip
    limits = send_limits(account, cmd.recipient)
    sent = await sender._call(Gateway(), account, cmd, limits, 100.0, leased=leased)  # type: ignore[arg-type]
    assert sent.provider_message_id == "77"
    return window.notes


async def test_a_leased_send_reports_its_answer_to_the_window() -> None:
    notes = await _call(leased=True)
    assert [(slot, answered) for _, slot, answered in notes] == [(100.0, True)]


async def test_a_send_without_a_leased_slot_reports_nothing() -> None:
    assert await _call(leased=False) == []
