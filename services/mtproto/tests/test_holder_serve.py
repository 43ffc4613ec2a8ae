"""One command served by a session's holder (holder_serve.serve_command) over real NATS: the
sender gets the work's answer and the command is acked; when the connection is lost or the
key is dead, the sender gets the last word (acked) or the command goes back to the next
holder (nak), and the error reaches the runner."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from nats.aio.msg import Msg
from nats.js.api import DeliverPolicy
from nats.js.errors import NotFoundError

from switchboard.events.catalog.mtproto import FetchMedia, MediaFetched
from switchboard.mtproto import holder_serve
from switchboard.mtproto.media_fetch import media_consumer, media_subject
from switchboard.mtproto.ports import AuthKeyUnregisteredError, DisconnectedError
from switchboard.runtime.bus import Bus
from switchboard.runtime.delivery.pull import BatchPull
from switchboard.runtime.holder_call import ask_holder
from switchboard.runtime.testing import eventually

SESSION = "holder"
WAIT = 15.0


@dataclass
class Holder:
    bus: Bus
    session_id: str = SESSION
    workspace_id: Callable[[], str] = lambda: "demo"
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))


@dataclass
class Served:
    holder: Holder
    pull: BatchPull

    async def next(self) -> tuple[asyncio.Task[bytes], Msg]:
        """A command asked of the holder (the asker's task), and its delivery."""
        deadline = datetime.now(UTC) + timedelta(seconds=60)
        cmd = FetchMedia(
            session_id=SESSION,
            chat_id="1",
            message_id=2,
            object_key="k",
            max_bytes=1000,
            deadline=deadline,
        )
        asked = asyncio.create_task(ask_holder(self.holder.bus, cmd, "demo", timeout=WAIT))
        (msg,) = await self.pull.fetch(1, timeout=WAIT)
        return asked, msg


@pytest.fixture
async def served(nats_url: str) -> AsyncIterator[Served]:
    bus = await Bus.connect(nats_url, name="holder-serve-test")
    await bus.provision()
    config = holder_serve.consumer(media_consumer(SESSION), 60.0, DeliverPolicy.NEW,
                                   subject=media_subject(SESSION))  # fmt: skip
    pull = await BatchPull(bus, holder_serve.STREAM, config).start()
    try:
        yield Served(Holder(bus), pull)
    finally:
        await pull.close(nak_buffered=True)
        await bus.close()


def _retry(exc: Exception) -> MediaFetched | None:
    return None if isinstance(exc, DisconnectedError) else MediaFetched(status="retry")


@pytest.mark.parametrize(
    ("outcome", "answered", "handed_back"),
    [
        # The work's answer goes to the sender; the command is acked.
        (MediaFetched(status="stored", object_key="k"), "stored", False),
        # A fatal error with a last word: that is answered, the command acked, the error raised.
        (AuthKeyUnregisteredError(), "retry", False),
        # A fatal error without one: the command goes back at once (nak), the error raised.
        (DisconnectedError(), None, True),
    ],
)
async def test_one_command_is_answered_and_acked_or_handed_back(
    served: Served, outcome: MediaFetched | Exception, answered: str | None, handed_back: bool
) -> None:
    asked, msg = await served.next()

    async def work(cmd: FetchMedia, workspace: str) -> MediaFetched:
        assert (cmd.object_key, workspace) == ("k", "demo")
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    serving = holder_serve.serve_command(
        served.holder,
        msg,
        FetchMedia,
        media_consumer(SESSION),
        MediaFetched,
        work,
        fatal=(DisconnectedError, AuthKeyUnregisteredError),
        last_word=_retry,
    )
    if isinstance(outcome, Exception):
        with pytest.raises(type(outcome)):
            await serving
    else:
        await serving
    if answered is not None:
        assert MediaFetched.model_validate_json(await asked).status == answered
    # Answered, the command is gone from the stream (what it names of a person stays no
    # longer than its handling); handed back, it is still there for the next holder.
    assert await stored(served.holder.bus, msg) is handed_back
    if handed_back:
        (again,) = await served.pull.fetch(1, timeout=WAIT)
        assert again.metadata.num_delivered == 2
        assert not asked.done()  # the sender still waits, for the next holder's answer
        asked.cancel()
    else:

        async def acked() -> bool:  # nothing left pending on the consumer
            js = served.holder.bus.js
            info = await js.consumer_info(holder_serve.STREAM, served.pull.name)
            return bool(info.num_ack_pending == 0 and info.num_redelivered == 0)

        await eventually(acked, message="the command acked")


async def stored(bus: Bus, msg: Msg) -> bool:
    """Whether the stream still holds ``msg``."""
    try:
        await bus.js.get_msg(holder_serve.STREAM, msg.metadata.sequence.stream)
    except NotFoundError:
        return False
    return True


async def test_a_command_read_after_its_deadline_or_undecodable_is_erased(
    served: Served,
) -> None:
    asked, msg = await served.next()
    late = Holder(served.holder.bus, now=lambda: datetime.now(UTC) + timedelta(hours=1))
    assert await holder_serve.admit(late, msg, FetchMedia, "c", MediaFetched) is None
    assert not await stored(served.holder.bus, msg)
    asked.cancel()
    await served.holder.bus.nc.publish(
        media_subject(SESSION), b"not json", headers={"ce-type": "x"}
    )
    (bad,) = await served.pull.fetch(1, timeout=WAIT)
    assert await holder_serve.decode_command(served.holder.bus, bad, FetchMedia, "c") is None
    assert not await stored(served.holder.bus, bad)
