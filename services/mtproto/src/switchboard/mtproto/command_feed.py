"""A session's commands with a deadline as its holder serves them: outbound's sends
(relay.py) and the CRM's downloads (media_fetch.py). The two differ only in the command,
its answer, its consumer and how they end on a dead connection (``CommandFeed``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic

from nats.aio.msg import Msg
from nats.js.api import DeliverPolicy

from switchboard.mtproto import holder_serve
from switchboard.mtproto.holder_serve import H, R


@dataclass(frozen=True)
class CommandFeed(Generic[H, R]):
    """One kind of command of a session and how its holder answers it (``serve_command``)."""

    kind: type[H]
    answer_as: type[R]
    consumer: Callable[[str], str]  # the session's durable consumer of them
    subject: Callable[[str], str]  # the session's subject of them
    ack_wait_s: float
    batch: int
    fatal: tuple[type[Exception], ...]
    last_word: Callable[[Exception], R | None]

    async def serve(
        self,
        holder: holder_serve.Holder,
        work: Callable[[H, str], Awaitable[R]],
        in_use: Callable[[], None] | None = None,
    ) -> None:
        """Serve the holder's session's commands with ``work`` until cancelled or an error
        in ``fatal``; ``in_use`` is told of each (a session that serves one is in use).

        From the start of the stream, as the session's other consumers: a command asked for
        before the holder first pulled is served (or, past its deadline, dropped and
        erased). From new messages only, it was never read, and stayed in MTPROTO."""
        durable = self.consumer(holder.session_id)
        config = holder_serve.consumer(
            durable, self.ack_wait_s, DeliverPolicy.ALL, subject=self.subject(holder.session_id)
        )

        async def handle(msg: Msg) -> None:
            if in_use is not None:
                in_use()
            await holder_serve.serve_command(
                holder,
                msg,
                self.kind,
                durable,
                self.answer_as,
                work,
                fatal=self.fatal,
                last_word=self.last_word,
            )

        await holder_serve.serve(holder.bus, config, self.batch, handle)
