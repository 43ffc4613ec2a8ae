"""Deleting an erased person's kept files. Downloads are kept in the object store
(``objects.persist_downloads``, on by default; a user account's files always pass through
it); the erasure (``crm_projector``) notes the files of the person's messages in
``erased_files``, and every CRM instance sweeps that ledger: the objects go, then their rows,
in one transaction per batch, so a store away a moment leaves the rows for the next round
and two instances never delete the same batch."""

from __future__ import annotations

import json
from typing import Any

from switchboard.crm.attachments import attachments_of, object_key
from switchboard.runtime.db import Conn
from switchboard.runtime.objectstore import ObjectStore

BATCH = 500


def files_of(message_ids: list[str | None], content: Any) -> list[tuple[str, int]]:
    """(id kept under, index) of every file a message's ``content`` (a JSON object, or its
    text) names, for each id the message is known by. Pure."""
    found = json.loads(content) if isinstance(content, str) else content
    indices = [a.index for a in attachments_of(found)] if isinstance(found, dict) else []
    return [(mid, i) for mid in message_ids if mid for i in indices]


async def note(conn: Conn, workspace: str, files: list[tuple[str, int]]) -> None:
    """Add files to the ledger (a replayed erasure notes them again: no harm)."""
    await conn.executemany(
        "INSERT INTO erased_files VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        [(workspace, mid, index) for mid, index in files],
    )


async def sweep(pool: Any, objects: ObjectStore) -> int:
    """Delete one batch of noted files from the store, then their rows; how many."""
    async with pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(
            """DELETE FROM erased_files WHERE (workspace_id, message_id, file_index) IN (
                   SELECT workspace_id, message_id, file_index FROM erased_files
                   LIMIT $1 FOR UPDATE SKIP LOCKED)
               RETURNING workspace_id, message_id, file_index""",
            BATCH,
        )
        for row in rows:  # a failure rolls the batch back into the ledger
            key = object_key(row["workspace_id"], row["message_id"], row["file_index"])
            await objects.delete(key)
    return len(rows)
