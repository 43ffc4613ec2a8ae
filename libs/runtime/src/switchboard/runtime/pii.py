"""Crypto-shredding: personal fields of events sealed with a per-data-subject key.

A data subject is one identity on one channel of one workspace (``subject_id``): the
producer of an event (the ingest normalizer, outbound's delivery events, the CRM) knows it at
publish time from the event itself, with no CRM lookup, and a contact with identities on
three channels has three keys, all purged when it is erased. Keys are random AES-256-GCM
keys in the ``pii_keys`` KV bucket (history 1); ``shred`` purges a key with its history, so
whatever was sealed with it, in any stream or backup of one, no longer opens: ``open``
returns ``ERASED`` for it, and replays and rebuilds decode it as erased.

A sealed value is ``pii1:<subject>:<generation>:<base64(nonce | ciphertext)>``; the
generation is the KV revision that created the key (data sealed after an erasure gets a
new key, and must not make the old values look corrupt), and subject and generation are
the associated data (a value moved to another subject does not open). Keys are cached per
process, at most ``KEYS_KEPT`` of them (the most recently stored: a key is fetched again
when needed); ``follow`` watches the bucket's changes so a purge reaches every cache at once.

Events: a producer publishes a conversation or delivery event through ``publish_sealed``,
which seals its personal fields (the person's ids, names, texts, media references,
recipients: ``seal_body``) under the subject of the person they belong to, and publishes it
under an id and a ``ce-subject`` that name no one. A consumer calls ``open_messages`` on a
batch before decoding: every sealed value in the bodies is replaced by its plaintext (JSON
stays JSON, so decoding is unchanged), or, its key shredded, by ``ERASED``; an identity
field (``id``, ``recipient``) by ``erased_identity(<its keyed hash>)``, so a projection still
finds the same conversation and the same erased marker it wrote live (``identity_hash``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import re
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from nats.aio.msg import Msg
from nats.js.api import PubAck
from nats.js.kv import KeyValue
from pydantic import BaseModel

from switchboard.events import Envelope, Message
from switchboard.events.envelope import DEFAULT_WORKSPACE, H_SUBJECT
from switchboard.runtime import kvwatch
from switchboard.runtime.identity import keyed_hash
from switchboard.runtime.kv import create, current
from switchboard.runtime.lru import remember

if TYPE_CHECKING:
    from switchboard.runtime.bus import Bus
    from switchboard.runtime.service import Runtime

BUCKET = "pii_keys"
PREFIX = "pii1:"
ERASED = "[erased]"  # what a field sealed with a purged key decodes as
ERASED_ID = "erased-id:"  # what an identity sealed with a purged key decodes as (+ its hash)
ERASED_MARK = "erased:"  # what an erased person's chat id or recipient reads as (+ hash)

Key = tuple[int, bytes]  # (generation, AES-256 key)


def subject_id(workspace: str, channel: str, identity: str) -> str:
    """The data subject of an identity (keyed hash: the key name says nothing of it). The
    hash is the one ``crm.contact_erased`` lists in ``identity_hashes``, so whoever handles
    an erasure finds the keys to purge (``subject_of_hash``) without the identities."""
    return subject_of_hash(keyed_hash("erased", workspace, channel, identity))


def subject_of_hash(identity_hash: str) -> str:
    return "s" + identity_hash


def contact_subject(workspace: str, contact_id: str) -> str:
    """The subject of what a CRM contact holds beyond its identities (name, phone, notes,
    attributes): shredded with the identities' subjects when the contact is erased."""
    return subject_of_hash(keyed_hash("contact", workspace, contact_id))


def erased_identity(identity_hash: str) -> str:
    """What an identity whose key was shredded decodes as: no one's id, but its keyed hash,
    so whoever keys rows on the identity (conversation ids, erased markers) still can."""
    return ERASED_ID + identity_hash


def identity_hash(workspace: str, channel: str, identity: str) -> str:
    """The keyed hash of an identity (what ``crm.contact_erased`` lists): of the identity
    itself, or the one an erased identity carries."""
    if identity.startswith(ERASED_ID):
        return identity[len(ERASED_ID) :]
    return keyed_hash("erased", workspace, channel, identity)


def erased_marker(identity_hash: str) -> str:
    """What an erased person's chat id or recipient reads as wherever it stood: unique per
    identity (tables key on it), and saying nothing about the person."""
    return ERASED_MARK + identity_hash[:20]


def is_erased(value: str | None) -> bool:
    """Whether ``value`` is what a shredded field decodes as."""
    return value is not None and (value == ERASED or value.startswith(ERASED_ID))


def seal(key: Key, subject: str, plaintext: str) -> str:
    """``plaintext`` encrypted for ``subject`` (a fresh 96-bit nonce per value)."""
    generation, secret = key
    nonce = os.urandom(12)
    sealed = AESGCM(secret).encrypt(nonce, plaintext.encode(), f"{subject}:{generation}".encode())
    return f"{PREFIX}{subject}:{generation}:{base64.urlsafe_b64encode(nonce + sealed).decode()}"


def parse(value: str) -> tuple[str, int] | None:
    """(subject, generation) of a sealed value; None when ``value`` is not sealed."""
    if not value.startswith(PREFIX):
        return None
    parts = value[len(PREFIX) :].split(":")
    if len(parts) != 3 or not parts[1].isdigit():
        return None
    return parts[0], int(parts[1])


def subject_of(value: str) -> str | None:
    """The subject a sealed value belongs to; None when ``value`` is not sealed."""
    found = parse(value)
    return None if found is None else found[0]


def unseal(key: Key, value: str) -> str:
    """The plaintext of a sealed value; ValueError when it is not one or does not open."""
    found = parse(value)
    if found is None:
        raise ValueError("not a sealed value")
    subject, generation = found
    blob = base64.urlsafe_b64decode(value.rpartition(":")[2])
    try:
        aad = f"{subject}:{generation}".encode()
        return AESGCM(key[1]).decrypt(blob[:12], blob[12:], aad).decode()
    except InvalidTag:
        raise ValueError(f"sealed value of {subject} does not open with its key") from None


# Keys a process keeps: ~50 MB at the ~500 bytes a cached key costs. Before, every process
# loaded the whole bucket at start and kept it: memory and start-up grew with the people the
# deployment had ever met (142 MB and 6 s for 300k keys, in every service).
KEYS_KEPT = 100_000


class PiiKeys:
    """The key store: creates a subject's key on first use, opens values, shreds keys."""

    def __init__(self, kv: KeyValue, capacity: int = KEYS_KEPT) -> None:
        self.kv = kv
        self.capacity = capacity
        self._keys: OrderedDict[str, Key | None] = OrderedDict()  # None: shredded
        self.loaded = asyncio.Event()  # the watch of the bucket's changes is in place

    def _keep(self, subject: str, key: Key | None) -> None:
        remember(self._keys, subject, key, self.capacity)

    async def key(self, subject: str) -> Key:
        """The subject's key for sealing, created on first use (two producers racing to
        create it both end with the one that won)."""
        found = self._keys.get(subject)
        if found is not None:
            return found
        # A subject this process has not seen is mostly new (``follow`` brings each key
        # created since the start), so creating comes before looking: one round trip for a
        # new sender instead of two, in ingest's and the resolver's path; one the cache has
        # forgotten costs the refused create once.
        look = subject in self._keys  # known shredded: a new key is made after a look
        while True:
            if look:
                existing = await self._fetch(subject)
                if existing is not None:
                    return existing
            look = True
            fresh = AESGCM.generate_key(bit_length=256)
            # a purged subject gets a new key: data sealed after the erasure is new data
            revision = await create(self.kv, subject, fresh)
            if revision is None:
                continue  # created meanwhile: use that one
            key = (revision, fresh)
            self._keep(subject, key)
            return key

    async def seal(self, workspace: str, channel: str, identity: str, plaintext: str) -> str:
        subject = subject_of_hash(identity_hash(workspace, channel, identity))
        return seal(await self.key(subject), subject, plaintext)

    async def seal_for(self, subject: str, plaintext: str) -> str:
        return seal(await self.key(subject), subject, plaintext)

    async def prefetch(self, bodies: Iterable[bytes]) -> dict[str, Key | None]:
        """The keys the sealed values in ``bodies`` need, fetched where the cache has not
        the right one (``open_body`` with them is then pure). Returned, not only cached: a
        batch with more subjects than the cache keeps must still find them all."""
        wanted: dict[str, int] = {}
        for body in bodies:
            if _PREFIX_B in body:
                for m in _SEALED.finditer(body):
                    wanted[m.group(3).decode()] = int(m.group(4))
        found = {subject: self._keys.get(subject) for subject in wanted}
        missing = [
            subject
            for subject, generation in wanted.items()
            if (key := found[subject]) is None or key[0] != generation
        ]
        # At once, not one after another: a batch's new senders whose keys the watch has
        # not brought yet each cost a round trip, and a projection's batch waits for all.
        for at in range(0, len(missing), 256):  # a cold replay's batch: in slices
            some = missing[at : at + 256]
            fetched = await asyncio.gather(*(self._fetch(subject) for subject in some))
            found.update(zip(some, fetched, strict=True))
        return found

    def open_body(self, body: bytes, keys: dict[str, Key | None]) -> bytes:
        """``body`` with every sealed value replaced by its plaintext, or by ``ERASED``
        (``erased_identity`` for an ``id`` or ``recipient``) when its key is gone. ``keys``:
        what ``prefetch`` gave for it; a value that does not open with its key raises
        ValueError."""
        if _PREFIX_B not in body:
            return body

        def opened(m: re.Match[bytes]) -> bytes:
            field, value = m.group(1) or b"", m.group(2).decode()
            subject, generation = m.group(3).decode(), int(m.group(4))
            key = keys.get(subject)
            if key is not None and key[0] == generation:
                plain = unseal(key, value)
            elif field:
                plain = erased_identity(subject[1:])
            else:
                plain = ERASED
            return field + json.dumps(plain).encode()

        return _SEALED.sub(opened, body)

    async def open(self, value: str) -> str:
        """The plaintext of a sealed value, ``ERASED`` when its key was shredded, and an
        unsealed value as it is (events written before sealing)."""
        found = parse(value)
        if found is None:
            return value
        subject, generation = found
        key = self._keys.get(subject)
        if key is None or key[0] != generation:
            # sealing created the key first: a generation that is not there was shredded
            key = await self._fetch(subject)
        if key is None or key[0] != generation:
            return ERASED
        return unseal(key, value)

    async def shred(self, subject: str) -> None:
        """Purge the subject's key and its history: nothing sealed with it opens again."""
        await self.kv.purge(subject)
        self._keep(subject, None)

    async def _fetch(self, subject: str) -> Key | None:
        found = await current(self.kv, subject)  # None: never created, or shredded
        key = None if found is None else (found.revision, found.value)
        self._keep(subject, key)
        return key

    async def follow(self, stop: asyncio.Event) -> None:
        """Learn keys as they are created and forget them as they are purged anywhere, from
        the start of the process on (run for its life); the keys that were there before are
        fetched when needed."""
        await kvwatch.follow_changes(self.kv, self._learn, self.loaded, stop)

    def _learn(self, entry: KeyValue.Entry) -> None:
        if entry.operation in ("DEL", "PURGE"):
            self._keep(entry.key, None)
        elif entry.value and entry.revision is not None:
            self._keep(entry.key, (entry.revision, entry.value))


# A sealed value in a JSON body (pydantic writes no spaces), with the field name when it is an
# identity: ids of chats and senders, recipients.
_PREFIX_B = PREFIX.encode()
_SEALED = re.compile(
    rb'("(?:id|recipient|external_id)":)?"(pii1:([A-Za-z0-9]+):([0-9]+):[A-Za-z0-9_=-]+)"'
)

# The key stores of the services running in this process (tests run several in one): the
# latest one still running opens what any of them consumes (they share one bucket).
_installed: list[PiiKeys] = []


async def start(rt: Runtime) -> PiiKeys:
    """The service's key store, following the bucket for its life (at start-up, before any
    consumer runs); ``open_messages`` uses it."""
    keys = PiiKeys(await rt.bus.kv(BUCKET))
    _installed.append(keys)

    async def follow() -> None:
        try:
            await keys.follow(rt.stop)
        finally:
            if rt.stop.is_set() and keys in _installed:
                _installed.remove(keys)

    rt.spawn("pii-keys", follow)
    return keys


@contextlib.asynccontextmanager
async def using(bus: Bus) -> AsyncIterator[PiiKeys]:
    """A key store for the length of a job without a runtime (a rebuild)."""
    keys = PiiKeys(await bus.kv(BUCKET))
    _installed.append(keys)
    try:
        yield keys
    finally:
        _installed.remove(keys)


def installed() -> PiiKeys:
    if not _installed:
        raise RuntimeError("sealed personal data but no pii key store (pii.start at start-up)")
    return _installed[-1]


async def open_messages(msgs: Sequence[Msg]) -> None:
    """Open the sealed values of ``msgs`` in place (their ``data``), before decoding: the
    one step every consumer of CONV and DELIVERY takes. Bodies without any cost a byte
    search."""
    sealed = [m for m in msgs if _PREFIX_B in m.data]
    if not sealed:
        return
    keys = installed()
    found = await keys.prefetch(m.data for m in sealed)
    for m in sealed:
        m.data = keys.open_body(m.data, found)


async def open_data(data: bytes | None, keys: PiiKeys | None = None) -> bytes:
    """One stored body (a direct read from a stream) with its sealed values opened, with
    ``keys`` (default: the process's key store)."""
    body = data or b""
    if _PREFIX_B not in body:
        return body
    keys = keys or installed()
    return keys.open_body(body, await keys.prefetch([body]))


# -- sealing ---------------------------------------------------------------------------------

# Personal fields, by the object that holds them. A person (sender, author, member) seals
# under their own subject; a one-to-one chat under the person it is with; what someone wrote
# or sent (content, texts, media references) under its author, or the private chat's person.
_PERSON = ("username", "first_name", "last_name", "display_name", "phone")
_CHAT = ("title", "username")
_CONTENT = (
    "text", "caption", "title", "performer", "address", "phone", "first_name", "last_name",
    "user_id", "vcard",
)  # fmt: skip
_FILE = ("file_id", "file_unique_id", "file_name", "url")
_TEXTS = ("text", "data", "new_id", "new_user_id")  # on the event itself

M = TypeVar("M", bound=BaseModel)


class _Sealer:
    def __init__(self, keys: PiiKeys, workspace: str, channel: str) -> None:
        self.keys, self.workspace, self.channel = keys, workspace, channel

    async def value(self, owner: str, value: object) -> object:
        if not isinstance(value, str) or value.startswith(PREFIX) or is_erased(value):
            return value
        return await self.keys.seal(self.workspace, self.channel, owner, value)

    async def fields(self, obj: dict[str, Any], owner: str, names: Iterable[str]) -> None:
        for name in names:
            if obj.get(name) is not None:
                obj[name] = await self.value(owner, obj[name])

    async def person(self, obj: dict[str, Any]) -> str:
        who = str(obj["id"])
        await self.fields(obj, who, _PERSON)
        obj["id"] = await self.value(who, who)
        return who

    async def content(self, obj: dict[str, Any], owner: str) -> None:
        await self.fields(obj, owner, _CONTENT)
        for f in (obj.get("file"), *obj.get("sizes", ())):
            if isinstance(f, dict):
                await self.fields(f, owner, _FILE)


async def seal_body(keys: PiiKeys, workspace: str, model: BaseModel) -> dict[str, Any]:
    """A conversation or delivery event's JSON (``model`` dumped) with its personal fields
    sealed."""
    d: dict[str, Any] = model.model_dump(mode="json", exclude_none=True)
    conversation = d.get("conversation")
    if isinstance(conversation, dict) and isinstance(conversation.get("sender_id"), str):
        await _seal_run(keys, workspace, d, conversation)
        return d
    channel = d.get("channel")
    if not isinstance(channel, str):
        if isinstance(d.get("contact_id"), str):
            await _seal_contact(keys, workspace, d)
        return d
    chat = d.get("chat")
    if isinstance(chat, dict) and chat.get("type") == "channel":
        return d  # a broadcast channel's posts are published by the channel, to anyone
    s = _Sealer(keys, workspace, channel)
    owner: str | None = None
    if isinstance(chat, dict) and chat.get("type", "private") == "private":
        owner = str(chat["id"])
        await s.fields(chat, owner, _CHAT)
        chat["id"] = await s.value(owner, owner)
    for name in ("sender", "by"):
        if isinstance(d.get(name), dict):
            who = await s.person(d[name])
            owner = who if name == "sender" else owner
    for member in d.get("members", ()):
        await s.person(member)
    if isinstance(d.get("recipient"), str):
        owner = d["recipient"]
        d["recipient"] = await s.value(owner, owner)
    if owner is not None:
        if isinstance(d.get("content"), dict):
            await s.content(d["content"], owner)
        await s.fields(d, owner, _TEXTS)
    return d


async def _seal_run(
    keys: PiiKeys, workspace: str, d: dict[str, Any], conversation: dict[str, Any]
) -> None:
    """A flow run's record (``flows.run_recorded``), under the customer's subject: their
    ids and names, and every string of what the run holds of what they said or were sent
    (variables, the steps' details, the effects' data). The chat's id too, whatever the
    chat: a WhatsApp chat is the person's phone number even when their id is a BSUID, and a
    record does not say which chats are groups (a group's run is its customer's)."""
    s = _Sealer(keys, workspace, str(conversation["channel"]))
    who = conversation["sender_id"]
    await s.fields(conversation, who, ("first_name", "username", "chat_id"))
    conversation["sender_id"] = await s.value(who, who)
    d["variables"] = await _seal_strings(s, who, d.get("variables", {}))
    for step in d.get("steps", ()):
        step["detail"] = await _seal_strings(s, who, step.get("detail", {}))
    for effect in d.get("effects", ()):
        effect["data"] = await _seal_strings(s, who, effect.get("data", {}))


async def _seal_strings(s: _Sealer, owner: str, value: Any) -> Any:
    """``value`` with every string in it sealed (dict keys stay: a flow names them)."""
    if isinstance(value, dict):
        return {k: await _seal_strings(s, owner, v) for k, v in value.items()}
    if isinstance(value, list):
        return [await _seal_strings(s, owner, v) for v in value]
    return await s.value(owner, value)


# A CRM contact's own fields (and an identity claim's key, which may be a phone number).
_CONTACT = ("display_name", "phone", "note", "key")


async def _seal_contact(keys: PiiKeys, workspace: str, d: dict[str, Any]) -> None:
    """A CRM event: each identity under its own subject (an erased one decodes to its hash,
    as in the conversation events), the rest under the contact's subject."""
    for identity in (*d.get("identities", ()), d.get("identity")):
        if isinstance(identity, dict):
            s, who = _Sealer(keys, workspace, identity["channel"]), identity["external_id"]
            await s.fields(identity, who, ("username", "phone"))
            identity["external_id"] = await s.value(who, who)
    contact = contact_subject(workspace, d["contact_id"])

    async def sealed(value: object) -> object:
        if not isinstance(value, str) or value.startswith(PREFIX) or is_erased(value):
            return value
        return await keys.seal_for(contact, value)

    for name in _CONTACT:
        if d.get(name) is not None:
            d[name] = await sealed(d[name])
    attributes = d.get("attributes")
    if isinstance(attributes, dict):
        for name, value in attributes.items():
            attributes[name] = await sealed(value)


async def seal_model(keys: PiiKeys, workspace: str, model: M) -> M:
    """``model`` with its personal fields sealed (same class: sealed values are strings)."""
    return type(model).model_validate(await seal_body(keys, workspace, model))


def sealed_subject(workspace: str, ce_subject: str) -> str:
    """The ``ce-subject`` header of a sealed event (the natural one names the chat)."""
    return "p1:" + keyed_hash("ce-subject", workspace, ce_subject)


def event_id(workspace: str, deterministic_id: str) -> str:
    """An id that names no one for an event whose natural id names a chat (provider events'
    ids carry the chat id, a phone number on WhatsApp): keyed, so still deterministic."""
    return "p1:" + keyed_hash("event-id", workspace, deterministic_id)


def _json(body: dict[str, Any]) -> bytes:
    """``body`` as JSON (as pydantic writes it: compact, UTF-8); orjson refuses integers
    beyond 64 bits, which a caller's free-form field may hold, and json does not."""
    try:
        return orjson.dumps(body)
    except TypeError:
        return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


async def publish_sealed(
    bus: Bus,
    model: Message,
    *,
    cause: Envelope | None = None,
    workspace: str | None = None,
    keys: PiiKeys | None = None,
    headers: dict[str, str] | None = None,
) -> PubAck:
    """Publish ``model`` sealed, under an id (``event_id``) and a ``ce-subject`` that name
    no one (ids that follow a caller's key, like a send's ``message_id``, stay as they are).
    ``workspace`` defaults to the cause's."""
    ws = workspace or (cause.workspace_id if cause is not None else DEFAULT_WORKSPACE)
    natural, subject = model.deterministic_id(), model.ce_subject()
    # The sealed JSON is the body as it is: validated into a model and dumped again it cost
    # the normalizer ~10 % of its CPU per event (py-spy). The NATS subject and type come
    # from ``model``: routing tokens are never sealed (channel, account, our own ids), and
    # the CloudEvents subject, which names the chat, is replaced by the sealed one below.
    sealed = _json(await seal_body(keys or installed(), ws, model))
    envelope: dict[str, Any] = {} if cause is not None else {"workspace_id": ws}
    if natural is not None and not model.caller_keyed:
        envelope["id"] = event_id(ws, natural)
    extra = {H_SUBJECT: sealed_subject(ws, subject)} if subject else {}
    extra.update(headers or {})
    return await bus.publish(model, cause=cause, headers=extra, body=sealed, **envelope)
