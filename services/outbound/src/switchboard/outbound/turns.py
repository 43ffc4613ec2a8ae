"""Sends to one chat go in the order their commands came from the stream.

A lane starts each command in its own task as it arrives, and the steps before the call
(the record, the announcement, the slot) take different times, so a bot's three-part reply
reached the chat as 1, 3, 2; with two instances each taking some of the parts, no order at
all. Before its slot, a send waits:

- in its instance, until every earlier command to its chat that its lane received has been
  answered or has left the lane (failed, held, put back): each takes a turn when the lane
  receives it (fetch order is the stream's), and the one before wakes the next;
- across instances, until no earlier command is left in the stream on its own subject,
  whose last token is its recipient's bucket (``chat_bucket``): a command leaves the work
  queue when it is settled (acked, or terminated into the DLQ). JetStream says nothing when
  a message leaves, so this asks again, from 20 ms doubling to 0.5 s (a chat takes one send
  a second at Telegram), and goes anyway after ``patience_s`` (an earlier one may wait in a
  full lane of later ones, or for its time).

A send put back for a retry keeps its place in the stream, so the chat's later sends wait
for it (or for the patience). A send its instance sent back because its account's share of
the lane was full (``share``) leaves the stream for a moment: the chat's later sends that
reach that instance before it has gone on go back behind it (``behind``), and so does one
of them sent back again; one that reaches another instance meanwhile may go first. Sends
published on a subject without the bucket (before it existed) wait in their instance only.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass, field

import orjson
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from prometheus_client import Counter
from tenacity import AsyncRetrying, retry_if_result, stop_after_delay, wait_exponential

from switchboard.events.catalog.outbound import recipient_key
from switchboard.events.envelope import H_WORKSPACE
from switchboard.runtime.logging import get_logger

log = get_logger(__name__)
IMPATIENT = Counter(
    "switchboard_outbound_order_waits_given_up_total",
    "Sends that went before an earlier send to their chat still in the stream (patience)",
)
# Only the conversational lane's sends carry their chat's bucket (cmd.outbound.send.v1.
# <channel>.<account>.<bucket>); a bulk send's last token is its campaign.
_SEND = "cmd.outbound.send."
_SEND_TOKENS = 7
# Past this many chats with sends out, a send sent back forgets those out too long.
OUT_CHATS = 1000

Key = tuple[str, str, str, str, str]


def chat_of(msg: Msg) -> Key | None:
    """The lane, workspace, channel, account and recipient a send command names (None:
    not a send this can read; it waits for no one and no one waits for it)."""
    try:
        body = orjson.loads(msg.data)
        chat = (body["channel"], body["account"], body["recipient"])
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None
    if not all(isinstance(part, str) for part in chat):
        return None
    # one chat however its recipient is written (a WhatsApp phone: its digits)
    chat = (chat[0], chat[1], recipient_key(chat[0], chat[2]))
    return (msg.metadata.consumer or "", (msg.headers or {}).get(H_WORKSPACE, ""), *chat)


def _bucketed(subject: str) -> bool:
    return subject.startswith(_SEND) and subject.count(".") + 1 == _SEND_TOKENS


@dataclass
class Turns:
    """The commands of each chat in this instance, in the order their lane received them,
    and (with ``js``) the earlier ones still in the stream."""

    js: JetStreamContext | None = None
    patience_s: float = 30.0
    _chats: dict[Key, OrderedDict[int, asyncio.Event]] = field(default_factory=dict)
    _keys: dict[int, Key] = field(default_factory=dict)
    # chat -> its sends sent back from here and not gone on since: message_id -> (the
    # stream sequence it first came with, when it comes again)
    _out: dict[Key, dict[str, tuple[int, float]]] = field(default_factory=dict)
    # the first sequence of a command in the lane that came again after being sent back
    _went: dict[int, int] = field(default_factory=dict)

    def arrive(self, msg: Msg) -> None:
        """Queue ``msg`` behind the commands to its chat already here (call in the order
        the lane receives them)."""
        key = chat_of(msg)
        seq = msg.metadata.sequence.stream
        if key is None or seq in self._keys:
            return
        self._keys[seq] = key
        self._chats.setdefault(key, OrderedDict())[seq] = asyncio.Event()

    async def wait(self, msg: Msg) -> None:
        """Until every command to the chat that arrived before ``msg`` has left, here and
        (with ``js``) in the stream."""
        seq = msg.metadata.sequence.stream
        key = self._keys.get(seq)
        if key is not None:
            queue = self._chats[key]
            while seq in queue and (head := next(iter(queue))) != seq:
                await queue[head].wait()
        if self.js is not None and _bucketed(msg.subject):
            await self._first_in_stream(self.js, msg)

    async def _first_in_stream(self, js: JetStreamContext, msg: Msg) -> None:
        seq, stream = msg.metadata.sequence.stream, msg.metadata.stream

        async def earlier() -> int | None:
            """The sequence of an earlier command on the subject, None when there is none."""
            try:
                first = await js.get_msg(stream, seq=1, subject=msg.subject, next=True)
            except NotFoundError:
                return None  # nothing on the subject: this one was settled meanwhile
            return first.seq if first.seq is not None and first.seq < seq else None

        asking = AsyncRetrying(
            retry=retry_if_result(lambda found: found is not None),
            wait=wait_exponential(multiplier=0.02, max=0.5),
            stop=stop_after_delay(self.patience_s),
            retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
        )
        found: int | None = await asking(earlier)
        if found is not None:
            IMPATIENT.inc()
            log.warning("sending before an earlier send to the chat", earlier=found)

    def behind(self, msg: Msg, message_id: str, now: float) -> float | None:
        """When the last of the chat's sends sent back from here that came before
        ``message_id`` in the stream comes again, while one is still out (then this one
        goes back too, to come after them); None: it may go on. One out longer than the
        patience past its time is forgotten (another instance took it, or it was stopped).
        The order is the sequences the commands first came with (a command sent back
        comes again as a new message)."""
        key = self._keys.get(msg.metadata.sequence.stream)
        out = None if key is None else self._out.get(key)
        if key is None or out is None:
            return None
        first = self._first_seq(msg, message_id, out)
        self._prune(out, now)
        earlier = [until for m, (o, until) in out.items() if o < first and m != message_id]
        if not out:
            del self._out[key]
        return max(earlier) if earlier else None

    def sent_back(self, msg: Msg, message_id: str, until: float, now: float) -> None:
        """``message_id`` went back to the stream until ``until`` (its account's share here
        was full, or it is ``behind``); it keeps its place among the chat's sends."""
        key = self._keys.get(msg.metadata.sequence.stream)
        if key is not None:
            out = self._out.setdefault(key, {})
            out[message_id] = (self._first_seq(msg, message_id, out), until)
        if len(self._out) > OUT_CHATS:
            self._forget(now)

    def _forget(self, now: float) -> None:
        """Every send out longer than the patience past its time, of every chat: one that
        came again to another instance, or was stopped, never goes on here."""
        for key, out in list(self._out.items()):
            self._prune(out, now)
            if not out:
                del self._out[key]

    def _prune(self, out: dict[str, tuple[int, float]], now: float) -> None:
        """Drop the sends of one chat out longer than the patience past their time."""
        for gone in [m for m, (_, until) in out.items() if until + self.patience_s < now]:
            del out[gone]

    def gone_on(self, msg: Msg, message_id: str) -> None:
        """``message_id`` has its place in the lane: no longer out (its first sequence is
        kept until it leaves, for ``behind`` asked again before its slot)."""
        seq = msg.metadata.sequence.stream
        key = self._keys.get(seq)
        out = None if key is None else self._out.get(key)
        if key is not None and out is not None and message_id in out:
            self._went[seq] = out.pop(message_id)[0]
            if not out:
                del self._out[key]

    def _first_seq(self, msg: Msg, message_id: str, out: dict[str, tuple[int, float]]) -> int:
        seq = msg.metadata.sequence.stream
        found = out.get(message_id)
        return found[0] if found is not None else self._went.get(seq, seq)

    def leave(self, msg: Msg) -> None:
        """``msg`` no longer holds its chat (answered, settled or put back); idempotent."""
        seq = msg.metadata.sequence.stream
        self._went.pop(seq, None)
        key = self._keys.pop(seq, None)
        if key is None:
            return
        queue = self._chats[key]
        queue.pop(seq).set()
        if not queue:
            del self._chats[key]

    def __len__(self) -> int:
        return len(self._keys)
