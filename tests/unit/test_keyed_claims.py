"""Claim keys and contact ids keyed with the identity pepper, and the order a claim lookup
tries the keyed and the legacy key, without NATS."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator

import pytest

from switchboard.crm import keys
from switchboard.runtime import claims, identity


def unkeyed(*parts: str) -> str:
    """What anyone computes from a phone number: SHA-256 of the parts, no secret."""
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


@pytest.fixture
def peppered() -> Iterator[Callable[[str], None]]:
    yield identity.configure
    identity.configure(identity.DEV_PEPPER)


@pytest.mark.parametrize(
    ("name", "derive", "plain"),
    [
        ("claim key", claims.claim_key, unkeyed("claim", "w", "phone:4917612345678")),
        (
            "contact id",
            keys.new_contact_id,
            "ct_" + unkeyed("contact", "w", "phone:4917612345678")[:24],
        ),
    ],
)
def test_new_names_reveal_nothing_computable_without_the_pepper(
    peppered: Callable[[str], None], name: str, derive: Callable[[str, str], str], plain: str
) -> None:
    peppered("pepper-one-0123456789")
    one = derive("w", "phone:4917612345678")
    peppered("pepper-two-0123456789")
    two = derive("w", "phone:4917612345678")
    assert one != two, name
    assert plain not in (one, two), name


def test_legacy_names_are_the_ones_made_before_keying() -> None:
    # claims and contacts made then are found and kept under exactly these
    assert keys.legacy_claim_key("w", "telegram:1") == unkeyed("claim", "w", "telegram:1")
    assert (
        keys.legacy_contact_id("w", "telegram:1")
        == "ct_" + unkeyed("contact", "w", "telegram:1")[:24]
    )
    assert claims.lookup_keys("w", "telegram:1") == (
        claims.claim_key("w", "telegram:1"),
        keys.legacy_claim_key("w", "telegram:1"),
    )


@pytest.mark.parametrize(
    ("stored", "found"),
    [
        ({"keyed": "ct_new"}, ("keyed", "ct_new")),
        ({"legacy": "ct_old"}, ("legacy", "ct_old")),
        ({"keyed": "ct_new", "legacy": "ct_old"}, ("keyed", "ct_new")),
        ({}, ("keyed", None)),
    ],
)
async def test_a_lookup_prefers_the_keyed_claim_and_falls_back_to_the_legacy_one(
    stored: dict[str, str], found: tuple[str, str | None]
) -> None:
    keyed, legacy = claims.lookup_keys("w", "phone:4917612345678")
    by_key = {{"keyed": keyed, "legacy": legacy}[k]: v for k, v in stored.items()}

    async def last(claim: str) -> str | None:
        return by_key.get(claim)

    claim, owner = await claims.last_claim("w", "phone:4917612345678", last)
    assert (claim, owner) == ({"keyed": keyed, "legacy": legacy}[found[0]], found[1])
