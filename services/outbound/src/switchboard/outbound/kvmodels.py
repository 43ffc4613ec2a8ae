"""Pydantic records in a JetStream KV bucket, one key each: read with the key's revision and
written with compare-and-set. The send records, the schedule changes and the calendar's
posts and templates are all kept this way; each store only says how it names its keys."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Generic, TypeVar

import orjson
from nats.js.errors import KeyWrongLastSequenceError
from nats.js.kv import KeyValue
from pydantic import BaseModel

from switchboard.runtime.kv import current

M = TypeVar("M", bound=BaseModel)


def scoped(*parts: str) -> str:
    """A KV- and subject-safe token of ``parts`` (a workspace and an id of the caller's: any
    characters), the same for the same parts; every store names its keys with it."""
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:40]


@dataclass(frozen=True)
class KvModels(Generic[M]):
    """Records of ``model`` in ``kv``; ``exclude_none`` drops unset fields when writing."""

    kv: KeyValue
    model: type[M]
    exclude_none: bool = False

    def dump(self, record: M) -> bytes:
        return record.model_dump_json(exclude_none=self.exclude_none).encode()

    async def read(self, key: str) -> tuple[M, int] | None:
        """The record with its KV revision (for :meth:`replace`); None when there is none."""
        entry = await current(self.kv, key)
        if entry is None:
            return None
        return self.model.model_validate(orjson.loads(entry.value)), entry.revision

    async def get(self, key: str) -> M | None:
        found = await self.read(key)
        return None if found is None else found[0]

    async def put(self, key: str, record: M) -> None:
        await self.kv.put(key, self.dump(record))

    async def replace(self, key: str, record: M, revision: int) -> bool:
        """Write ``record`` only if ``key`` is still at ``revision`` (0: has no value yet);
        False when another writer came first."""
        try:
            await self.kv.update(key, self.dump(record), last=revision)
        except KeyWrongLastSequenceError:
            return False
        return True

    async def create(self, key: str, record: M) -> bool:
        """Write ``record`` only if ``key`` holds none (a deleted one counts as none)."""
        try:
            await self.kv.create(key, self.dump(record))
        except KeyWrongLastSequenceError:
            return False
        return True
