"""A campaign's records in the ``sends`` KV bucket, and the compare-and-swap updates on them.

Records are keyed by the campaign's key (:func:`campaign_key`): campaign ids are the caller's,
unique within its workspace only, so the store, the view, the leader's lease and the failure
counts all work on ``<workspace>/<campaign_id>`` (the bare id in the default workspace)."""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Literal

import orjson
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue
from pydantic import BaseModel, Field

from switchboard.events.catalog.outbound import CampaignRecipient, StartCampaign
from switchboard.events.codec import scoped_id
from switchboard.events.ids import stable_hash
from switchboard.runtime.fingerprint import canonical_hash
from switchboard.runtime.kv import entries_of, replace

Status = Literal["pending", "running", "paused", "cancelled", "completed"]


def campaign_key(workspace: str, campaign_id: str) -> str:
    """The key of a workspace's campaign: another workspace's same id is another campaign."""
    return scoped_id(workspace, campaign_id)


ACTIVE: frozenset[str] = frozenset({"running", "paused", "cancelled"})


class CampaignState(BaseModel):
    """The campaign as commands left it. ``pending``: batches arrived before the start."""

    campaign_id: str
    workspace_id: str
    status: Status = "pending"
    status_seq: int = Field(0, description="stream sequence of the last control applied")
    reason: str | None = None
    definition: dict[str, Any] | None = Field(None, description="the start, minus recipients")
    batches: dict[int, int] = Field(default_factory=dict, description="batch -> recipients")
    final_batch: int | None = None
    created_at: datetime
    started_at: datetime | None = None
    completed_at: datetime | None = None
    outcome: dict[str, Any] | None = None

    @property
    def key(self) -> str:
        return campaign_key(self.workspace_id, self.campaign_id)

    @property
    def received(self) -> int:
        return sum(self.batches.values())

    @property
    def total(self) -> int | None:
        """All recipients, once the final batch and every batch before it arrived."""
        if self.final_batch is None:
            return None
        if any(n not in self.batches for n in range(self.final_batch + 1)):
            return None
        return sum(v for n, v in self.batches.items() if n <= self.final_batch)

    def start(self) -> StartCampaign | None:
        return None if self.definition is None else StartCampaign.model_validate(self.definition)


# What a campaign says to its recipients. A start under a taken campaign id must say the
# same: a retry may bring a fresher recipient list or account pool, never another message.
MESSAGE_FIELDS = ("channel", "content", "keyboard", "priority", "not_before", "expires_at")


def definition_fingerprint(start: StartCampaign) -> str:
    """What two starts of one campaign must share (``MESSAGE_FIELDS``), as one hash: the
    idempotency key of a start is its campaign id with this as its body."""
    return canonical_hash(start.model_dump(mode="json", include=set(MESSAGE_FIELDS)))


def start_conflict(state: CampaignState | None, start: StartCampaign) -> str | None:
    """Why ``start`` cannot be a retry of the campaign's start (None: it can, or the
    campaign has not started)."""
    if state is None or state.definition is None:
        return None
    new = start.model_dump(mode="json", exclude={"recipients"})
    differ = [f for f in MESSAGE_FIELDS if state.definition.get(f) != new.get(f)]
    if not differ:
        return None
    return f"campaign {start.campaign_id!r} was started with another {', '.join(differ)}"


class Cursor(BaseModel):
    """How far the fan-out got: the next recipient is ``pos`` of ``batch``."""

    batch: int = 0
    pos: int = 0
    fanned: int = 0
    by_account: dict[str, int] = Field(default_factory=dict)


def _base(key: str) -> str:
    return "cmp." + stable_hash(key)


def state_key(key: str) -> str:
    return _base(key) + ".state"


STATE_KEYS = "cmp.*.state"


class CampaignStore:
    """Reads and compare-and-swap writes of the campaign records; every ``campaign_id``
    argument is a campaign's key (:func:`campaign_key`)."""

    def __init__(self, kv: KeyValue) -> None:
        self.kv = kv

    async def _get(self, key: str) -> tuple[bytes | None, int]:
        try:
            entry = await self.kv.get(key)
        except KeyNotFoundError:
            return None, 0
        return entry.value or None, entry.revision or 0

    async def _cas(self, key: str, value: bytes, revision: int) -> int | None:
        return await replace(self.kv, key, value, revision)

    async def state(self, campaign_id: str) -> CampaignState | None:
        raw, _ = await self._get(state_key(campaign_id))
        return None if raw is None else CampaignState.model_validate_json(raw)

    async def update(
        self,
        campaign_id: str,
        change: Callable[[CampaignState | None], CampaignState | None],
    ) -> tuple[CampaignState | None, CampaignState | None]:
        """Apply ``change`` (None: leave as is) with compare-and-swap; (before, after)."""
        key = state_key(campaign_id)
        for _ in range(50):
            raw, revision = await self._get(key)
            before = None if raw is None else CampaignState.model_validate_json(raw)
            after = change(None if before is None else before.model_copy(deep=True))
            if after is None:
                return before, before
            if await self._cas(key, after.model_dump_json().encode(), revision) is not None:
                return before, after
        raise RuntimeError(f"campaign {campaign_id}: too much contention on its state")

    async def put_batch(
        self, campaign_id: str, batch: int, recipients: Sequence[CampaignRecipient]
    ) -> int:
        """Store a recipient batch once: a batch sent again (a producer retrying, maybe with
        a fresher expansion of its segment) keeps the first, whose positions may already
        have been sent to. Returns how many recipients the stored batch has."""
        rows = [[r.recipient, r.account] for r in recipients]
        if await self._cas(f"{_base(campaign_id)}.b.{batch}", orjson.dumps(rows), 0) is not None:
            return len(rows)
        return len(await self.batch(campaign_id, batch))

    async def rewrite_batch(
        self,
        campaign_id: str,
        batch: int,
        change: Callable[[list[list[Any]]], list[list[Any]] | None],
    ) -> bool:
        """Apply ``change`` to a stored batch's rows (None: leave as is) with compare-and-set,
        keeping its length (positions may have been sent to); whether it was rewritten."""
        key = f"{_base(campaign_id)}.b.{batch}"
        for _ in range(50):
            raw, revision = await self._get(key)
            rows = orjson.loads(raw) if raw else []
            changed = change(rows)
            if changed is None:
                return False
            assert len(changed) == len(rows), "a batch keeps its positions"
            if await self._cas(key, orjson.dumps(changed), revision) is not None:
                return True
        raise RuntimeError(f"campaign {campaign_id}: too much contention on batch {batch}")

    async def batch(self, campaign_id: str, batch: int) -> list[CampaignRecipient]:
        raw, _ = await self._get(f"{_base(campaign_id)}.b.{batch}")
        rows = orjson.loads(raw) if raw else []
        return [CampaignRecipient(recipient=r, account=a) for r, a in rows]

    async def renew(self, campaign_id: str) -> int:
        """Write the campaign's records again as they are, but its cursor (the leader's to
        write): the ``sends`` bucket forgets a key 8 days after its last write, and a
        campaign may wait for its start, or run, longer. Compare-and-set: a record written
        meanwhile is new anyway. How many were written."""
        written = 0
        cursor = f"{_base(campaign_id)}.cursor"
        for entry in await entries_of(self.kv, _base(campaign_id) + ".>"):
            if entry.key != cursor and await self._cas(entry.key, entry.value, entry.revision):
                written += 1
        return written

    async def cursor(self, campaign_id: str) -> tuple[Cursor, int]:
        raw, revision = await self._get(f"{_base(campaign_id)}.cursor")
        return (Cursor.model_validate_json(raw) if raw else Cursor()), revision

    async def save_cursor(self, campaign_id: str, cursor: Cursor, revision: int) -> int | None:
        """The new revision, or None when someone else wrote it (leadership was lost)."""
        data = cursor.model_dump_json().encode()
        return await self._cas(f"{_base(campaign_id)}.cursor", data, revision)

    async def failures(self, campaign_id: str) -> dict[str, str]:
        """Every failed send of the campaign: message_id -> error code."""
        shards = await asyncio.gather(
            *(self._get(_failed_key(campaign_id, n)) for n in range(FAILURE_SHARDS))
        )
        failed: dict[str, str] = {}
        for raw, _ in shards:
            if raw:
                failed.update(orjson.loads(raw))
        return failed

    async def add_failure(self, campaign_id: str, message_id: str, code: str) -> None:
        """Count a failed send once, whoever records it and however often. Spread over a few
        keys: a cancel fails the queued sends of every instance at once."""
        key = _failed_key(campaign_id, zlib.crc32(message_id.encode()) % FAILURE_SHARDS)
        for _ in range(100):
            raw, revision = await self._get(key)
            failed: dict[str, str] = orjson.loads(raw) if raw else {}
            if message_id in failed:
                return
            failed[message_id] = code
            if await self._cas(key, orjson.dumps(failed), revision) is not None:
                return
        raise RuntimeError(f"campaign {campaign_id}: too much contention on its failures")


FAILURE_SHARDS = 8


def _failed_key(campaign_id: str, shard: int) -> str:
    return f"{_base(campaign_id)}.failed.{shard}"
