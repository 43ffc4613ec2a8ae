"""Sends to one chat go in the order their commands came from the stream (in one instance).

A lane starts each command in its own task as it arrives, and the steps before the call
(the record, the announcement, the slot) take different times, so a bot's three-part reply
reached the chat as 1, 3, 2. Each command takes a turn when its lane receives it (fetch
order is the stream's) and waits, before its slot, until every earlier command to its chat
in this lane has been answered or has left the lane (failed, held, put back).

Not ordered: sends to one chat taken by two instances, and a send put back to the stream
for a retry (the next one goes meanwhile).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass, field

import orjson
from nats.aio.msg import Msg

from switchboard.events.envelope import H_WORKSPACE

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
    return (msg.metadata.consumer or "", (msg.headers or {}).get(H_WORKSPACE, ""), *chat)


@dataclass
class Turns:
    """The commands of each chat in this instance, in the order their lane received them."""

    _chats: dict[Key, OrderedDict[int, asyncio.Event]] = field(default_factory=dict)
    _keys: dict[int, Key] = field(default_factory=dict)

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
        """Until every command to the chat that arrived before ``msg`` has left."""
        seq = msg.metadata.sequence.stream
        key = self._keys.get(seq)
        if key is None:
            return
        queue = self._chats[key]
        while seq in queue and (head := next(iter(queue))) != seq:
            await queue[head].wait()

    def leave(self, msg: Msg) -> None:
        """``msg`` no longer holds its chat (answered, settled or put back); idempotent."""
        seq = msg.metadata.sequence.stream
        key = self._keys.pop(seq, None)
        if key is None:
            return
        queue = self._chats[key]
        queue.pop(seq).set()
        if not queue:
            del self._chats[key]

    def __len__(self) -> int:
        return len(self._keys)
