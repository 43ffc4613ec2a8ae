"""Deterministic ids of CRM aggregates and claims: the same input always names the same
aggregate, so a redelivered message can never create a second contact or lead."""

from __future__ import annotations

# The names other services look up live in the catalog and the runtime (one place, flows
# looks claims up too); re-exported here.
from switchboard.events.catalog.crm import first_lead_id as first_lead_id
from switchboard.events.catalog.crm import identity_key as identity_key
from switchboard.events.catalog.crm import legacy_claim_key as legacy_claim_key
from switchboard.events.ids import stable_hash
from switchboard.runtime import pii
from switchboard.runtime.claims import claim_key as claim_key
from switchboard.runtime.claims import last_claim as last_claim
from switchboard.runtime.db import Conn
from switchboard.runtime.identity import keyed_hash
from switchboard.runtime.pii import identity_hash


def phone_key(phone: str) -> str:
    return f"phone:{phone}"


def new_contact_id(workspace_id: str, key: str) -> str:
    """The contact an identity founds: keyed, because contact ids are in every API answer,
    URL and CRM event, and the identity is often a phone number."""
    return "ct_" + keyed_hash("contact", workspace_id, key)[:24]


def legacy_contact_id(workspace_id: str, key: str) -> str:
    """The contact an identity founded before contact ids were keyed (ids are opaque: those
    contacts keep theirs); never for a new contact."""
    return "ct_" + stable_hash("contact", workspace_id, key)[:24]


def erased_identity_hash(workspace_id: str, channel: str, external_id: str) -> str:
    """The keyed hash kept of an erased identity (``switchboard.runtime.identity``); an
    identity that decodes as erased carries it (``pii.identity_hash``)."""
    return identity_hash(workspace_id, channel, external_id)


# Erasing a person and inserting their rows meet here. The erasure blanks the rows already
# committed and records the person in erased_identities; the inserts blank a person found
# there. Each statement sees what committed before it began (READ COMMITTED), so with both
# transactions in flight neither saw the other's rows: a rebuild (which replays the streams
# concurrently) left an erased person's conversation in the clear. The erasure takes this
# lock exclusively before its first read; the projections that blank on insert take it
# shared before theirs, so one of the two commits before the other looks.
_ERASURE_LOCK = "SELECT pg_advisory_xact_lock{}(hashtext(current_schema() || '.erasure'))"


async def erasure_barrier(conn: Conn, *, erasing: bool = False) -> None:
    """Wait for an erasure in flight to commit (``erasing``: for the inserts in flight)."""
    await conn.execute(_ERASURE_LOCK.format("" if erasing else "_shared"))


async def note_shredded(conn: Conn, identity_hashes: set[str]) -> None:
    """Record as erased the identities that arrived decoded as erased (a replay after their
    keys were shredded): exactly what the erasure records, whichever projection replays
    first, so the rows are blanked on insert as live ones were by the erasure."""
    if identity_hashes:
        await conn.execute(
            "INSERT INTO erased_identities SELECT unnest($1::text[]) ON CONFLICT DO NOTHING",
            sorted(identity_hashes),
        )


def erased_event_id(event_id: str) -> str:
    """The id an erased person's message row takes: event ids of messages name the chat
    (``whatsapp:<account>:<phone>/...``). Keyed, so a replay of the event finds its row."""
    return pii.ERASED_MARK + keyed_hash("event", event_id)


def erased_marker(identity_hash: str) -> str:
    """What an erased person's chat id or recipient reads as (``pii.erased_marker``)."""
    return pii.erased_marker(identity_hash)


def normalize_phone(phone: str | None) -> str | None:
    """Digits only (E.164 without '+'), or None when too short to identify anyone."""
    if not phone:
        return None
    digits = "".join(c for c in phone if c.isdigit()).lstrip("0")
    return digits if len(digits) >= 7 else None
