"""Turns inbound messages into contacts and leads.

The identity (channel, sender id) is claimed for a contact with an append that only
succeeds on an empty subject, so concurrent resolvers, redeliveries and replays agree on
one contact per identity. A phone number is claimed the same way, which is how a WhatsApp
number and a Telegram user sharing it land on one contact.

WhatsApp keys a person by their business-scoped user id (BSUID) and gives the phone beside
it when the user has not withheld it: a message with both links the phone to the contact
the BSUID already belongs to, so a BSUID-only message, a later phone+BSUID one and an old
phone-only one are one contact. A reported number change (``conv.contact_number_changed``)
links the new phone and BSUID to the contact of the old ones.

Claim keys and the ids of new contacts are keyed with the deployment's identity pepper
(``runtime.claims``, ``keys.new_contact_id``). An identity or phone claimed before they were
keyed stays claimed under its legacy key by its contact (ids are opaque: it keeps its id):
every lookup tries the keyed key and the legacy one, and a key claimed under its legacy key is
never claimed again under the keyed one (that would make the person two contacts). No new
claim is ever legacy, so what a legacy key holds never changes and is cached, and a deployment
whose first claim is keyed has no legacy claims at all: it reads no legacy key.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict

from switchboard.crm import keys
from switchboard.crm.settings import CrmSettings
from switchboard.crm.state import fold_contact
from switchboard.crm.store import ConflictError, EventStore
from switchboard.events import Decoded, Envelope
from switchboard.events.catalog.common import ChatType
from switchboard.events.catalog.conv import (
    ContactNumberChanged,
    ContactStatus,
    ContactStatusChanged,
    MessageReceived,
)
from switchboard.events.catalog.crm import (
    ContactCreated,
    ContactIdentityLinked,
    Identity,
    IdentityClaimed,
    LeadCreated,
)
from switchboard.runtime import pii
from switchboard.runtime.lru import remember

# Chats where a first message opens a lead under ``first_private_message`` (a chat whose
# type the provider does not say is taken as one-to-one, as the normalizers mean it).
_ONE_TO_ONE = (ChatType.PRIVATE, ChatType.UNKNOWN)

# Entries of each of the resolver's caches (contacts known, phone claims settled, senders
# resolved): far more than one instance sees in a burst.
_CAPACITY = 100_000


class Resolver:
    """Resolves senders to contacts; remembers contacts already known to exist."""

    def __init__(self, store: EventStore, settings: CrmSettings) -> None:
        self.store = store
        self.settings = settings
        # Creation is permanent, so a bounded cache of "already exists" is always right.
        self._known: OrderedDict[str, None] = OrderedDict()
        # Phone claims known to be settled (claimed by someone): never asked again.
        self._phones: OrderedDict[str, None] = OrderedDict()
        # Senders (workspace, identity, phone) resolved to the end: resolving one again
        # changes nothing (claims are only ever made, never taken back, and each step is
        # idempotent), so their next messages skip the claim lookup, which was most of the
        # resolver's work on a busy workspace (14 % of the CRM's CPU at 500 messages/s,
        # py-spy on bench_crm's e2e run).
        self._settled: OrderedDict[tuple[str, str, str | None], str] = OrderedDict()
        # What each legacy claim key read holds (None: never claimed): nothing is claimed
        # under one any more, so an entry stays true.
        self._legacy: OrderedDict[str, Decoded | None] = OrderedDict()
        self._any_legacy: bool | None = None  # None: not looked at yet
        # Contacts whose first lead is known to exist (or never to be made: merged ones).
        self._leads: OrderedDict[str, None] = OrderedDict()

    async def claim(self, workspace: str, key: str, contact_id: str, cause: Envelope) -> str:
        """Claim ``key`` for ``contact_id``; returns whoever owns it now."""
        return (await self._claim_seq(workspace, key, contact_id, cause))[0]

    async def _claim_seq(
        self, workspace: str, key: str, contact_id: str, cause: Envelope
    ) -> tuple[str, int | None]:
        """Like :meth:`claim`, with the sequence of the claim when this call made it. A key
        claimed under its legacy key keeps that owner (no claim is made under the keyed key)."""
        legacy_owner, _ = _claimed(await self._last_legacy(keys.legacy_claim_key(workspace, key)))
        if legacy_owner is not None:
            return legacy_owner, None
        ck = keys.claim_key(workspace, key)
        try:
            seq = await self.store.append(
                IdentityClaimed(claim_key=ck, key=key, contact_id=contact_id), ck, 0, cause=cause
            )
            return contact_id, seq
        except ConflictError:
            return await self.owner(workspace, key) or contact_id, None

    async def _repoint(
        self, workspace: str, key: str, contact_id: str, expected: int, cause: Envelope
    ) -> None:
        """Move a claim this message made to ``contact_id`` unless it changed since."""
        ck = keys.claim_key(workspace, key)
        with contextlib.suppress(ConflictError):
            await self.store.append(
                IdentityClaimed(claim_key=ck, key=key, contact_id=contact_id),
                ck,
                expected,
                cause=cause,
            )

    async def owner(self, workspace: str, key: str) -> str | None:
        return (await self._claim_of(workspace, key))[0]

    async def _claim_of(self, workspace: str, key: str) -> tuple[str | None, str | None]:
        """Who owns ``key`` and the id of the message that claimed it (None, None: nobody)."""
        return _claimed((await self._last_claim(workspace, key))[1])

    async def _last_claim(self, workspace: str, key: str) -> tuple[str, Decoded | None]:
        """The claim key ``key`` is claimed under and its claim (keyed key, None: nobody's)."""
        return await keys.last_claim(workspace, key, self.store.last, self._last_legacy)

    async def _last_legacy(self, legacy_claim: str) -> Decoded | None:
        """The claim under a legacy claim key (None: never claimed), read once."""
        if not await self._legacy_claims():
            return None
        if legacy_claim in self._legacy:
            return self._legacy[legacy_claim]
        found = await self.store.last(legacy_claim)
        remember(self._legacy, legacy_claim, found, _CAPACITY)
        return found

    async def _legacy_claims(self) -> bool:
        """Whether any claim may be under a legacy key. Every legacy claim precedes every
        keyed one, so there is none when the first claim in the stream is keyed, or when
        there is no claim yet (decided once: a new claim is never legacy)."""
        if self._any_legacy is None:
            first = await self.store.first_claim()
            self._any_legacy = first is not None and not _keyed(first)
        return self._any_legacy

    async def _link_identity(
        self, claim: str, contact_id: str, identity: Identity, name: str | None, cause: Envelope
    ) -> None:
        """Record once that the identity claimed under ``claim`` joined ``contact_id`` by
        its phone."""
        await self._append_once(
            ContactIdentityLinked(
                contact_id=contact_id, identity=identity, matched_by="phone", display_name=name
            ),
            contact_id,
            cause,
            f"link:{claim}",
        )

    async def opened(self, event: ContactStatusChanged, cause: Envelope) -> str | None:
        """A conversation opened from a deep link (Viber ``conversation_started`` with its
        ``context``) is where a lead comes from, even before the person writes: resolve them
        now, so the first lead carries the referral. Other status changes make nobody."""
        if event.status is not ContactStatus.CONVERSATION_STARTED or event.referral is None:
            return None
        return await self.resolve(event, cause)

    async def resolve(self, event: MessageReceived | ContactStatusChanged, cause: Envelope) -> str:
        """The contact of the sender, created (with its first lead) if new."""
        ws = cause.workspace_id
        ikey = keys.identity_key(event.channel.value, event.sender.id)
        phone = keys.normalize_phone(event.sender.phone)
        settled = (ws, ikey, phone)
        contact = self._settled.get(settled)
        if contact is None:
            contact = await self._resolve(event, cause, ws, ikey, phone)
        remember(self._settled, settled, contact, _CAPACITY)
        if contact not in self._leads and self._opens_lead(event):
            await self._late_lead(contact, event, cause)
        return contact

    def _opens_lead(self, event: MessageReceived | ContactStatusChanged) -> bool:
        """Whether a message from a contact without a lead opens one under the lead rule:
        ``first_private_message`` counts only one-to-one chats (a Viber conversation opened
        from a deep link is one), so reading a channel or a group makes no leads of its
        authors and members; ``first_message_from_new_contact`` counts any chat."""
        rule = self.settings.lead_rule
        if rule == "first_message_from_new_contact":
            return True
        if rule != "first_private_message":
            return False
        chat = getattr(event, "chat", None)
        return chat is None or chat.type in _ONE_TO_ONE

    async def _late_lead(
        self, contact: str, event: MessageReceived | ContactStatusChanged, cause: Envelope
    ) -> None:
        """The first lead of a contact first met where no lead opens (a group, a channel),
        now writing one-to-one; nothing when it has that lead, or when it absorbed other
        contacts by a merge (their leads are its leads: a new one would be a second)."""
        if self.settings.lead_rule == "first_private_message":
            lead_id = keys.first_lead_id(contact)
            if await self.store.last(lead_id) is None:
                state = fold_contact(await self.store.load(contact))
                if state is not None and not state.merged and not state.erased:
                    await self._create(self._first_lead(lead_id, contact, event), lead_id, cause)
        remember(self._leads, contact, None, _CAPACITY)

    def _first_lead(
        self, lead_id: str, contact: str, event: MessageReceived | ContactStatusChanged
    ) -> LeadCreated:
        return LeadCreated(
            lead_id=lead_id,
            contact_id=contact,
            stage=self.settings.stages[0],
            source_channel=event.channel,
            referral=event.referral,
        )

    async def _resolve(
        self,
        event: MessageReceived | ContactStatusChanged,
        cause: Envelope,
        ws: str,
        ikey: str,
        phone: str | None,
    ) -> str:
        identity = Identity(
            channel=event.channel,
            external_id=event.sender.id,
            account=event.account,
            username=event.sender.username,
            phone=phone,
        )
        name = event.sender.display_name
        own_id = keys.new_contact_id(ws, ikey)
        if phone:  # the phone's legacy claim is read with the identity's (one round trip)
            (claim, last), _ = await asyncio.gather(
                self._last_claim(ws, ikey),
                self._last_legacy(keys.legacy_claim_key(ws, keys.phone_key(phone))),
            )
        else:
            claim, last = await self._last_claim(ws, ikey)
        owner, claimed_by = _claimed(last)
        if owner is not None and owner == keys.legacy_contact_id(ws, ikey):
            own_id = owner  # the identity founded its contact before contact ids were keyed
        if owner is not None and owner != own_id and claimed_by == cause.id:
            # This very message matched the phone and claimed the identity, and did not get
            # to link it (a crash, or the contact was not created yet): link it now.
            await self._link_identity(claim, owner, identity, name, cause)
            return owner
        if owner is not None and phone and event.sender.id != phone:
            # A BSUID already known, now with a phone beside it: the phone leads here too.
            await self._link(ws, keys.phone_key(phone), owner, identity, name, "bsuid", cause)
        if owner is None and phone:
            # The phone is claimed before the identity: two new identities with one phone
            # resolved at the same time (the resolver runs messages concurrently, across
            # instances too) then meet on the phone claim. Looking the phone up first and
            # claiming it after founding let both pass the lookup and found two contacts.
            by_phone, phone_seq = await self._claim_seq(ws, keys.phone_key(phone), own_id, cause)
            if by_phone != own_id:
                owner = await self.claim(ws, ikey, by_phone, cause)
                if owner == by_phone:
                    await self._link_identity(claim, by_phone, identity, name, cause)
                return owner
            owner = await self.claim(ws, ikey, own_id, cause)
            if owner != own_id and phone_seq is not None:
                # The identity went to another contact meanwhile (a number change or another
                # phone's match): the phone this message just claimed follows it, instead of
                # naming a contact that will never be created.
                await self._repoint(ws, keys.phone_key(phone), owner, phone_seq, cause)
        if owner is None:
            owner = await self.claim(ws, ikey, own_id, cause)
        if owner != own_id:
            return owner  # claimed by another contact (phone match or a merge)
        if own_id in self._known:
            return own_id
        # This identity founded its contact: make sure the contact and its first lead exist
        # (after a crash between the claim and these appends, the redelivery completes them).
        if phone:
            await self.claim(ws, keys.phone_key(phone), own_id, cause)
        created = await self._create(
            ContactCreated(
                contact_id=own_id,
                display_name=event.sender.display_name,
                phone=phone,
                identities=(identity,),
                source_channel=event.channel,
            ),
            own_id,
            cause,
        )
        if created and self._opens_lead(event):
            lead_id = keys.first_lead_id(own_id)
            await self._create(self._first_lead(lead_id, own_id, event), lead_id, cause)
            remember(self._leads, own_id, None, _CAPACITY)
        remember(self._known, own_id, None, _CAPACITY)
        return own_id

    async def number_changed(self, event: ContactNumberChanged, cause: Envelope) -> str | None:
        """Link the new phone and BSUID of a person who changed number to their contact (the
        owner of the old identity or phone); None when nobody knew the old one."""
        ws = cause.workspace_id
        channel = event.channel.value
        old_phone = keys.normalize_phone(event.sender.phone)
        owner = await self.owner(ws, keys.identity_key(channel, event.sender.id))
        if owner is None and old_phone:
            owner = await self.owner(ws, keys.phone_key(old_phone))
        if owner is None:
            return None
        phone = keys.normalize_phone(event.new_id)
        name = event.sender.display_name
        for external_id in (event.new_user_id, event.new_id):
            if not external_id:
                continue
            identity = Identity(
                channel=event.channel,
                external_id=external_id,
                account=event.account,
                username=event.sender.username,
                phone=phone,
            )
            ikey = keys.identity_key(channel, external_id)
            await self._link(ws, ikey, owner, identity, name, "number_change", cause)
        if phone:
            identity = Identity(
                channel=event.channel,
                external_id=event.new_user_id or event.new_id or phone,
                account=event.account,
                phone=phone,
            )
            await self._link(
                ws, keys.phone_key(phone), owner, identity, name, "number_change", cause
            )
        return owner

    async def _link(
        self,
        ws: str,
        key: str,
        owner: str,
        identity: Identity,
        name: str | None,
        matched_by: str,
        cause: Envelope,
    ) -> None:
        """Claim ``key`` for ``owner`` unless someone has it, and record the link once. A
        claim this very message made (now, or on a delivery that crashed before the link)
        gets its link; a key someone already held gets none."""
        settled = keys.claim_key(ws, key)  # per workspace: one phone may be two people's
        if settled in self._phones:
            return
        claim, last = await self._last_claim(ws, key)
        if last is None:
            mine = await self.claim(ws, key, owner, cause) == owner
        else:
            claimed = last.model
            mine = (
                isinstance(claimed, IdentityClaimed)
                and claimed.contact_id == owner
                and last.envelope.causation_id == cause.id
            )
        if mine:
            await self._append_once(
                ContactIdentityLinked(
                    contact_id=owner, identity=identity, matched_by=matched_by, display_name=name
                ),
                owner,
                cause,
                f"link:{claim}",
            )
        remember(self._phones, settled, None, _CAPACITY)

    async def _create(self, model: ContactCreated | LeadCreated, agg: str, cause: Envelope) -> bool:
        """Append the creating event. True when this message created it, now or on an
        earlier delivery that crashed before finishing (the lead may still be missing)."""
        try:
            await self.store.append(model, agg, 0, cause=cause)
            return True
        except ConflictError:
            first = await self.store.first(agg)
            return first is not None and first.envelope.causation_id == cause.id

    async def _append_once(
        self, model: ContactIdentityLinked, agg: str, cause: Envelope, event_id: str
    ) -> None:
        # Deterministic id: a redelivery publishes the same id, which JetStream drops.
        await self.store.append_to_existing(model, agg, cause=cause, id=event_id)


def _claimed(last: Decoded | None) -> tuple[str | None, str | None]:
    """Who owns a claim key and the id of the message that claimed it (None, None: nobody)."""
    if last is None or not isinstance(last.model, IdentityClaimed):
        return None, None
    return last.model.contact_id, last.envelope.causation_id


def _keyed(claim: Decoded) -> bool:
    """Whether a claim is under its keyed claim key (a claim whose key was erased cannot
    tell, and counts as legacy)."""
    model = claim.model
    return (
        isinstance(model, IdentityClaimed)
        and not pii.is_erased(model.key)
        and model.claim_key == keys.claim_key(claim.envelope.workspace_id, model.key)
    )
