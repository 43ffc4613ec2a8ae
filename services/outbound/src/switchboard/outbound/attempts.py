"""Attempt records in the ``sends`` KV bucket: what happened to each ``message_id``.

This is what makes a redelivered command safe: a send known to have completed (sent or
failed) is never made again. The guarantee is at-least-once: a command whose provider
call was in flight when its instance crashed is sent again by the next instance, so a
duplicate is possible only for sends in flight at the moment of a crash.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any, Literal

import orjson
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue
from pydantic import BaseModel, Field

Status = Literal["queued", "in_flight", "retrying", "sent", "failed"]


class Step(BaseModel):
    status: Status
    at: datetime
    attempt: int = 0
    reason: str | None = None


class Attempt(BaseModel):
    """The record of one message."""

    message_id: str
    workspace_id: str
    channel: str
    account: str
    recipient: str
    status: Status = "queued"
    attempts: int = 0
    provider_message_id: str | None = None
    reason: str | None = None
    campaign_id: str | None = None
    error_code: str | None = None
    history: list[Step] = Field(default_factory=list)

    @property
    def done(self) -> bool:
        return self.status in ("sent", "failed")

    def step(
        self,
        status: Status,
        reason: str | None = None,
        at: datetime | None = None,
        **changes: Any,
    ) -> Attempt:
        attempts = changes.get("attempts", self.attempts)
        step = Step(status=status, at=at or datetime.now(UTC), attempt=attempts, reason=reason)
        history = [*self.history, step]
        return self.model_copy(
            update={"status": status, "reason": reason, "history": history[-50:], **changes}
        )


def record_key(message_id: str) -> str:
    return "send." + hashlib.sha256(message_id.encode()).hexdigest()[:40]


class Attempts:
    """The records, one KV key per message_id (hashed: ids may hold any character)."""

    def __init__(self, kv: KeyValue) -> None:
        self.kv = kv

    async def begin(self, record: Attempt) -> tuple[Attempt, bool]:
        """Store ``record`` if the id has none yet: (record, True); else (existing, False).
        One round trip for a new message, where a read and a write would take two."""
        try:
            await self.kv.update(record_key(record.message_id), _dump(record), last=0)
        except KeyWrongLastSequenceError:
            existing = await self.get(record.message_id)
            if existing is not None:
                return existing, False
            await self.put(record)  # the key was deleted meanwhile: it is ours now
        return record, True

    async def get(self, message_id: str) -> Attempt | None:
        try:
            entry = await self.kv.get(record_key(message_id))
        except KeyNotFoundError:
            return None
        if not entry.value:
            return None
        return Attempt.model_validate(orjson.loads(entry.value))

    async def put(self, record: Attempt) -> None:
        await self.kv.put(record_key(record.message_id), _dump(record))


def _dump(record: Attempt) -> bytes:
    return record.model_dump_json(exclude_none=True).encode()
