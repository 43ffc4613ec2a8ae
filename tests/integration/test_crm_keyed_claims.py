"""Keyed contact ids and claim keys on real NATS: a new contact's id and its claims name no
one without the identity pepper, and a contact claimed under the legacy (unkeyed) keys before
keeps its identities: a new message of that identity, or of another identity sharing its
phone, resolves to it (never to a second contact), and flows finds it under both keys."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from tests.support.conv import received, received_envelope

from switchboard.crm import keys
from switchboard.crm.resolver import Resolver
from switchboard.crm.settings import CrmSettings
from switchboard.crm.store import EventStore
from switchboard.events.catalog.common import Channel
from switchboard.events.catalog.crm import ContactCreated, Identity, IdentityClaimed, LeadCreated
from switchboard.events.catalog.flows import FlowConversation
from switchboard.flows.effects import Effects
from switchboard.runtime import identity, pii
from switchboard.runtime.bus import Bus

PEPPER = "keyed-claims-test-pepper-0123"
PHONE = "4917655500011"
SETTINGS = CrmSettings.model_construct(
    lead_rule="first_message_from_new_contact", stages=("new", "won")
)


cause = received_envelope  # the message each resolution is for


@pytest.fixture
async def store(nats_url: str) -> AsyncIterator[EventStore]:
    """The CRM event store on the real bus, with a deployment's own identity pepper."""
    bus = await Bus.connect(nats_url, name="keyed-claims-test")
    identity.configure(PEPPER)
    try:
        await bus.provision()
        yield EventStore(bus, pii.PiiKeys(await bus.kv(pii.BUCKET)))
    finally:
        identity.configure(identity.DEV_PEPPER)
        await bus.close()


async def test_a_new_contact_and_its_claims_are_keyed(store: EventStore) -> None:
    ws = "keyed"
    ikey, pkey = keys.identity_key("whatsapp", PHONE), keys.phone_key(PHONE)
    contact = await Resolver(store, SETTINGS).resolve(
        received(Channel.WHATSAPP, "wa1", PHONE, "hi", 1, phone=PHONE), cause(1, ws)
    )
    # the id is the keyed one: under the dev pepper (anyone's) or unkeyed it would differ
    assert contact == keys.new_contact_id(ws, ikey)
    assert contact != keys.legacy_contact_id(ws, ikey)
    identity.configure(identity.DEV_PEPPER)
    assert contact != keys.new_contact_id(ws, ikey)
    identity.configure(PEPPER)
    for key in (ikey, pkey):
        claim = await store.last(keys.claim_key(ws, key))
        assert isinstance(claim.model if claim else None, IdentityClaimed)
        assert await store.last(keys.legacy_claim_key(ws, key)) is None  # nothing computable
    assert (await store.first(contact)) is not None
    assert (await store.first(keys.first_lead_id(contact))) is not None


async def _founded_before_keying(store: EventStore, ws: str, sender: str, phone: str) -> str:
    """What the resolver appended for a new WhatsApp sender before claim keys and contact
    ids were keyed: the phone claim, the identity claim, the contact and its first lead."""
    ikey = keys.identity_key("whatsapp", sender)
    contact = keys.legacy_contact_id(ws, ikey)
    env = cause(0, ws)
    for key in (keys.phone_key(phone), ikey):
        ck = keys.legacy_claim_key(ws, key)
        claimed = IdentityClaimed(claim_key=ck, key=key, contact_id=contact)
        await store.append(claimed, ck, 0, cause=env)
    who = Identity(channel=Channel.WHATSAPP, external_id=sender, account="wa1", phone=phone)
    created = ContactCreated(
        contact_id=contact, phone=phone, identities=(who,), source_channel=Channel.WHATSAPP
    )
    await store.append(created, contact, 0, cause=env)
    lead = keys.first_lead_id(contact)
    first = LeadCreated(lead_id=lead, contact_id=contact, stage="new")
    await store.append(first, lead, 0, cause=env)
    return contact


async def _types(store: EventStore, contact: str) -> list[str]:
    return [type(e.model).__name__ for e in (await store.load(contact)).events]


async def test_a_contact_claimed_under_legacy_keys_keeps_its_identities(
    store: EventStore,
) -> None:
    ws = "legacy"
    contact = await _founded_before_keying(store, ws, PHONE, PHONE)
    # a fresh resolver each time: what it finds is in the stream, not in its caches
    again = await Resolver(store, SETTINGS).resolve(
        received(Channel.WHATSAPP, "wa1", PHONE, "again", 1, phone=PHONE), cause(1, ws)
    )
    assert again == contact
    ikey, pkey = keys.identity_key("whatsapp", PHONE), keys.phone_key(PHONE)
    for key in (ikey, pkey):  # claimed under the legacy key: never claimed again
        assert await store.last(keys.claim_key(ws, key)) is None
    # another identity with the same phone joins the same contact, claimed under a keyed key
    other = await Resolver(store, SETTINGS).resolve(
        received(Channel.GENERIC, "web", "u-7", "me too", 2, phone=f"+{PHONE}"), cause(2, ws)
    )
    assert other == contact
    gkey = keys.identity_key("generic", "u-7")
    claimed = await store.last(keys.claim_key(ws, gkey))
    assert claimed is not None
    assert isinstance(claimed.model, IdentityClaimed)
    assert claimed.model.contact_id == contact
    async with pii.using(store.bus):
        assert await _types(store, contact) == ["ContactCreated", "ContactIdentityLinked"]
    # flows finds the contact of both identities, under the legacy and the keyed claim key
    # (as flows runs: with its key store, the claims' keys are sealed)
    effects = Effects(store.bus)
    try:
        async with pii.using(store.bus):
            for channel, sender in ((Channel.WHATSAPP, PHONE), (Channel.GENERIC, "u-7")):
                conv = FlowConversation(
                    channel=channel, account="a", chat_id=sender, sender_id=sender
                )
                assert await effects.contact_of(conv, ws) == contact
    finally:
        await effects.http.aclose()


async def test_a_bsuid_claimed_under_its_legacy_key_takes_the_phone_beside_it(
    store: EventStore,
) -> None:
    """A BSUID-only sender from before keying, now writing with a phone: the phone joins its
    contact (claimed under the keyed key), and an old phone-only message is the same person."""
    ws, bsuid = "legacy-bsuid", "US.555000111"
    ikey = keys.identity_key("whatsapp", bsuid)
    contact = keys.legacy_contact_id(ws, ikey)
    ck = keys.legacy_claim_key(ws, ikey)
    await store.append(
        IdentityClaimed(claim_key=ck, key=ikey, contact_id=contact), ck, 0, cause=cause(0, ws)
    )
    who = Identity(channel=Channel.WHATSAPP, external_id=bsuid, account="wa1")
    await store.append(
        ContactCreated(contact_id=contact, identities=(who,), source_channel=Channel.WHATSAPP),
        contact,
        0,
        cause=cause(0, ws),
    )
    with_phone = received(Channel.WHATSAPP, "wa1", bsuid, "now", 1, phone=PHONE)
    assert await Resolver(store, SETTINGS).resolve(with_phone, cause(1, ws)) == contact
    assert await Resolver(store, SETTINGS).owner(ws, keys.phone_key(PHONE)) == contact
    phone_only = received(Channel.WHATSAPP, "wa1", PHONE, "old", 2, phone=PHONE)
    assert await Resolver(store, SETTINGS).resolve(phone_only, cause(2, ws)) == contact


async def test_a_founding_interrupted_before_keying_is_completed_under_its_legacy_id(
    store: EventStore,
) -> None:
    """The old resolver claimed the identity and crashed before creating the contact; the
    redelivery, on the new code, creates that contact (its legacy id) and its first lead."""
    ws = "legacy-crash"
    ikey = keys.identity_key("telegram", "42")
    contact = keys.legacy_contact_id(ws, ikey)
    ck = keys.legacy_claim_key(ws, ikey)
    env = cause(1, ws)
    claimed = IdentityClaimed(claim_key=ck, key=ikey, contact_id=contact)
    await store.append(claimed, ck, 0, cause=env)
    resolved = await Resolver(store, SETTINGS).resolve(
        received(Channel.TELEGRAM, "bot", "42", "hello", 1), env
    )
    assert resolved == contact
    assert (await store.first(contact)) is not None
    assert (await store.first(keys.first_lead_id(contact))) is not None
    assert await store.first(keys.new_contact_id(ws, ikey)) is None


async def test_a_deployment_born_with_keyed_claims_reads_no_legacy_key(
    store: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every legacy claim precedes every keyed one: once the first claim is keyed, looking up
    legacy keys (two more reads for each new sender) can find nothing, and is not done."""
    ws = "born-keyed"
    await Resolver(store, SETTINGS).resolve(
        received(Channel.WHATSAPP, "wa1", PHONE, "first", 1, phone=PHONE), cause(1, ws)
    )
    reads: list[str] = []
    real_last = store.last

    async def counted(aggregate_id: str) -> Any:
        reads.append(aggregate_id)
        return await real_last(aggregate_id)

    monkeypatch.setattr(store, "last", counted)
    phone = "4917655500022"
    new = received(Channel.WHATSAPP, "wa1", phone, "hi", 2, phone=phone)
    contact = await Resolver(store, SETTINGS).resolve(new, cause(2, ws))
    assert contact == keys.new_contact_id(ws, keys.identity_key("whatsapp", phone))
    assert reads  # it looked its claims up, under keyed keys only
    legacy = {keys.legacy_claim_key(ws, k) for k in (f"whatsapp:{phone}", f"phone:{phone}")}
    assert not legacy & set(reads)
