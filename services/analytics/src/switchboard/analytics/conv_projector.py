"""Rollups of stream ``CONV``: messages in and out per channel, account and hour; end-to-end
latency samples; first response time per conversation; every event by name."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from switchboard.analytics import metrics
from switchboard.analytics.context import Context
from switchboard.analytics.counting import (
    CounterTable,
    Deltas,
    Sample,
    count_events,
    earliest,
    fresh,
    rows_for,
    save_samples,
)
from switchboard.analytics.items import Item, hour_of, millis
from switchboard.events.catalog.common import ChatType
from switchboard.events.catalog.conv import MessageReceived, MessageSent
from switchboard.runtime.db import Conn
from switchboard.runtime.identity import keyed_hash
from switchboard.runtime.pii import identity_hash

PROJECTION = "analytics_conv"
STREAM = "CONV"
SUBJECTS = ("conv.>",)

VOLUME = CounterTable(
    "message_volume",
    (
        ("workspace_id", "text"),
        ("hour", "timestamptz"),
        ("channel", "text"),
        ("account", "text"),
        ("direction", "text"),
    ),
    "messages",
)


@dataclass
class Conversation:
    channel: str
    account: str
    first_in_at: datetime | None = None
    first_reply_at: datetime | None = None
    inbound: int = 0
    outbound: int = 0

    def customer_wrote(self, at: datetime) -> None:
        self.inbound += 1
        self.first_in_at = earliest(self.first_in_at, at)

    def business_wrote(self, at: datetime) -> bool:
        """Count a reply; True when it is the conversation's first response."""
        self.outbound += 1
        if self.first_in_at is None or at < self.first_in_at:
            return False  # not an answer: nobody had written yet
        first = self.first_reply_at is None
        if first or (self.first_reply_at is not None and at < self.first_reply_at):
            self.first_reply_at = at
        return first


def _conversation(workspace: str, channel: str, account: str, chat_id: str) -> str:
    """The key of a conversation: keyed, because a chat id is often the person's phone
    number or user id, and rollups are kept after an erasure; of the chat's identity hash,
    so a chat id that decodes as erased (a replay after its key was shredded) keys the same
    conversation (``pii.identity_hash``)."""
    chat = identity_hash(workspace, channel, chat_id)
    return keyed_hash("conversation", channel, account, chat)


async def apply(conn: Conn, items: list[Item], ctx: Context) -> None:
    new = await fresh(conn, items)
    volume = Deltas(VOLUME)
    samples: list[Sample] = []
    convs = await _conversations(conn, new)
    observed: list[tuple[str, str, str, float]] = []
    for item in new:
        ev, ws = item.model, item.workspace
        if isinstance(ev, MessageReceived):
            channel = ev.channel.value
            volume.add((ws, hour_of(ev.received_at), channel, ev.account, "in"))
            ms = millis(ev.received_at, item.stored_at)
            samples.append(
                (
                    ws,
                    keyed_hash("event", item.envelope.id),
                    hour_of(ev.received_at),
                    channel,
                    ev.account,
                    ms,
                )
            )
            conv = convs.get((ws, _conversation(ws, ev.channel.value, ev.account, ev.chat.id)))
            if conv is not None:
                conv.customer_wrote(ev.received_at)
            observed.append(("in", ws, channel, ms))
        elif isinstance(ev, MessageSent):
            channel = ev.channel.value
            volume.add((ws, hour_of(ev.sent_at), channel, ev.account, "out"))
            conv = convs.get((ws, _conversation(ws, ev.channel.value, ev.account, ev.chat.id)))
            if conv is not None and conv.business_wrote(ev.sent_at) and conv.first_in_at:
                observed.append(("first", ws, channel, millis(conv.first_in_at, ev.sent_at)))
            observed.append(("out", ws, channel, 0.0))
    await volume.write(conn)
    await count_events(STREAM, new).write(conn)
    await save_samples(conn, "e2e", samples)
    await _save_conversations(conn, convs)
    if ctx.observe:
        for what, ws, channel, ms in observed:
            if what == "first":
                metrics.FIRST_RESPONSE.labels(channel).observe(ms / 1000)
                continue
            metrics.MESSAGES.labels(ws, channel, what).inc()
            if what == "in":
                metrics.E2E_LATENCY.labels(channel).observe(ms / 1000)


async def _conversations(conn: Conn, items: list[Item]) -> dict[tuple[str, str], Conversation]:
    """The state of every conversation the batch touches (new ones start empty)."""
    keys: dict[tuple[str, str], tuple[str, str]] = {}
    for item in items:
        ev = item.model
        # Only one-to-one chats are conversations someone answers; channel posts and
        # groups (MTProto reads them) would count as never answered.
        if isinstance(ev, MessageReceived | MessageSent) and ev.chat.type is ChatType.PRIVATE:
            key = (
                item.workspace,
                _conversation(item.workspace, ev.channel.value, ev.account, ev.chat.id),
            )
            keys.setdefault(key, (ev.channel.value, ev.account))
    if not keys:
        return {}
    rows = await rows_for(conn, "conversations", "conversation", keys)
    found = {
        (r["workspace_id"], r["conversation"]): Conversation(
            r["channel"],
            r["account"],
            r["first_in_at"],
            r["first_reply_at"],
            r["inbound"],
            r["outbound"],
        )
        for r in rows
    }
    return {key: found.get(key) or Conversation(*where) for key, where in keys.items()}


async def _save_conversations(conn: Conn, convs: dict[tuple[str, str], Conversation]) -> None:
    if not convs:
        return
    rows = [
        (ws, key, c.channel, c.account, c.first_in_at, c.first_reply_at, c.inbound, c.outbound)
        for (ws, key), c in convs.items()
    ]
    await conn.execute(
        """INSERT INTO conversations AS c (workspace_id, conversation, channel, account,
               first_in_at, first_reply_at, inbound, outbound)
           SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[],
                                $5::timestamptz[], $6::timestamptz[], $7::bigint[], $8::bigint[])
           ON CONFLICT (workspace_id, conversation) DO UPDATE SET
               first_in_at = EXCLUDED.first_in_at, first_reply_at = EXCLUDED.first_reply_at,
               inbound = EXCLUDED.inbound, outbound = EXCLUDED.outbound""",
        *[list(col) for col in zip(*rows, strict=True)],
    )
