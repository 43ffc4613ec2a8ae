"""Erasure of attempt records: when the CRM erases a contact (``crm.contact_erased`` with
the keyed hashes of its identities), every record in the ``sends`` bucket sent to one of
them loses the recipient (replaced by the same marker the CRM shows) and the provider's
reasons, which can quote the recipient. Counts, statuses and times stay.

Records live 8 days (the bucket's TTL), so a scan of the bucket per erasure is bounded; an
erasure is rare. Each record is rewritten with compare-and-set, so a send updating its
record at the same moment is never overwritten: the scan retries that record.
"""

from __future__ import annotations

import orjson
from nats.js.errors import KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from switchboard.outbound.attempts import Attempt, Step
from switchboard.runtime.identity import keyed_hash
from switchboard.runtime.kv import current, entries_of

RECORDS = "send.>"  # the attempt records (the bucket also holds campaigns and keys)


def identity_hash(workspace: str, channel: str, recipient: str) -> str:
    """The keyed hash the CRM puts in ``ContactErased.identity_hashes`` for an identity."""
    return keyed_hash("erased", workspace, channel, recipient)


def marker(hash_: str) -> str:
    """What an erased recipient reads as (as in the CRM's tables)."""
    return "erased:" + hash_[:20]


def scrub(record: Attempt, workspace: str, hashes: frozenset[str]) -> Attempt | None:
    """The record without the person when its recipient is one of ``hashes`` (in
    ``workspace``); None when it is someone else's or already scrubbed."""
    if record.workspace_id != workspace or record.recipient.startswith("erased:"):
        return None
    h = identity_hash(workspace, record.channel, record.recipient)
    if h not in hashes:
        return None
    history = [Step(status=s.status, at=s.at, attempt=s.attempt) for s in record.history]
    return record.model_copy(update={"recipient": marker(h), "reason": None, "history": history})


async def forget(kv: KeyValue, workspace: str, hashes: frozenset[str]) -> int:
    """Scrub every record of ``workspace`` sent to one of ``hashes``; returns how many."""
    if not hashes:
        return 0
    done = 0
    for entry in await entries_of(kv, RECORDS):  # every record (a watch could end early)
        if await _scrub_one(kv, entry.key, entry.value, entry.revision, workspace, hashes):
            done += 1
    return done


async def _scrub_one(
    kv: KeyValue, key: str, value: bytes, revision: int | None, workspace: str,
    hashes: frozenset[str],
) -> bool:  # fmt: skip
    while True:
        fixed = scrub(Attempt.model_validate(orjson.loads(value)), workspace, hashes)
        if fixed is None or revision is None:
            return False
        try:
            await kv.update(key, fixed.model_dump_json(exclude_none=True).encode(), last=revision)
            return True
        except KeyWrongLastSequenceError:
            entry = await current(kv, key)  # changed meanwhile: scrub what it holds now
            if entry is None:  # deleted meanwhile
                return False
            value, revision = entry.value, entry.revision
