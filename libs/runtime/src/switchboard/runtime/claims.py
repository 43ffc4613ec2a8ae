"""Claim keys: who owns an identity (or a phone number) in a workspace is the last
``crm.identity_claimed.v1.<claim key>`` in ``CRM``; the CRM makes claims, flows looks them up.

A claim key is keyed (``identity.keyed_hash``, the deployment's identity pepper): it is a
subject token anyone reading the stream sees, and the identity is often a phone number, which
an unkeyed hash gives away to whoever enumerates phone numbers. Claims made before claim keys
were keyed stay under their legacy, unkeyed key (``catalog.crm.legacy_claim_key``) and keep
their contact: a lookup tries the keyed key, then the legacy one. New claims are made only
under the keyed key, so a legacy claim never changes again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from switchboard.events.catalog.crm import legacy_claim_key
from switchboard.runtime.identity import keyed_hash

T = TypeVar("T")


def claim_key(workspace_id: str, key: str) -> str:
    """The key a new claim of ``key`` ('<channel>:<external id>' or 'phone:<digits>') takes."""
    return keyed_hash("claim", workspace_id, key)


def lookup_keys(workspace_id: str, key: str) -> tuple[str, str]:
    """The claim keys ``key`` may be claimed under, in the order a lookup tries them."""
    return claim_key(workspace_id, key), legacy_claim_key(workspace_id, key)


def claim_subject(claim: str) -> str:
    """The subject of the claims under one claim key."""
    return f"crm.identity_claimed.v1.{claim}"


async def last_claim(
    workspace_id: str,
    key: str,
    last: Callable[[str], Awaitable[T | None]],
    last_legacy: Callable[[str], Awaitable[T | None]] | None = None,
) -> tuple[str, T | None]:
    """The claim key ``key`` is claimed under and what ``last`` reads there (the last event
    under a claim key): the keyed key's claim if any, else the legacy key's, else (keyed key,
    None). Both are read at once (a lookup costs one round trip, not two); ``last_legacy``
    reads the legacy key instead of ``last`` (a caller may cache it: it never changes)."""
    keyed, legacy = lookup_keys(workspace_id, key)
    found, found_legacy = await asyncio.gather(last(keyed), (last_legacy or last)(legacy))
    if found is None and found_legacy is not None:
        return legacy, found_legacy
    return keyed, found
