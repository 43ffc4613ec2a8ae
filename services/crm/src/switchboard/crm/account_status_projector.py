"""The user-account projection (stream ``MTPROTO``): the latest status of each MTProto
session per workspace, so the CRM shows which Telegram accounts are banned, revoked or
flood-limited (``GET /v1/user-accounts``)."""

from __future__ import annotations

from collections.abc import Sequence

from nats.aio.msg import Msg

from switchboard.crm.decoding import decode_event
from switchboard.events.catalog.mtproto import AccountStatusChanged
from switchboard.runtime import pii
from switchboard.runtime.db import Conn

PROJECTION = "user_accounts"
STREAM = "MTPROTO"
SUBJECTS = ("mtproto.account_status_changed.>",)

# Stream order is the order the gateway announced the changes: the later one wins.
UPSERT_SQL = """
INSERT INTO user_accounts VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (workspace_id, session_id) DO UPDATE SET
    status = EXCLUDED.status, reason = EXCLUDED.reason, error_code = EXCLUDED.error_code,
    until = EXCLUDED.until, since = EXCLUDED.since"""


def rows(events: Sequence[tuple[str, AccountStatusChanged]]) -> list[tuple[object, ...]]:
    """One upsert row per (workspace, event), in the order given."""
    return [
        (ws, ev.session_id, ev.status.value, ev.reason, ev.error_code, ev.until, ev.at)
        for ws, ev in events
    ]


async def apply_batch(conn: Conn, msgs: Sequence[Msg]) -> None:
    """Upsert each session's status in stream order (one pipelined round trip)."""
    await pii.open_messages(msgs)  # nothing here is sealed today; stays correct if it ever is
    events = []
    for msg in msgs:
        d = decode_event(msg)
        if isinstance(d.model, AccountStatusChanged):
            events.append((d.workspace_id, d.model))
    if events:
        await conn.executemany(UPSERT_SQL, rows(events))
