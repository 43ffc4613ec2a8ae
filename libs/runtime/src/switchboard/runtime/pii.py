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
process; ``follow`` watches the bucket so a purge reaches every cache at once.
"""

from __future__ import annotations

import asyncio
import base64
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from nats.js.errors import KeyWrongLastSequenceError, NotFoundError
from nats.js.kv import KeyValue

from switchboard.runtime.identity import keyed_hash

BUCKET = "pii_keys"
PREFIX = "pii1:"
ERASED = "[erased]"  # what a field sealed with a purged key decodes as

Key = tuple[int, bytes]  # (generation, AES-256 key)


def subject_id(workspace: str, channel: str, identity: str) -> str:
    """The data subject of an identity (keyed hash: the key name says nothing of it). The
    hash is the one ``crm.contact_erased`` lists in ``identity_hashes``, so whoever handles
    an erasure finds the keys to purge (``subject_of_hash``) without the identities."""
    return subject_of_hash(keyed_hash("erased", workspace, channel, identity))


def subject_of_hash(identity_hash: str) -> str:
    return "s" + identity_hash


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


class PiiKeys:
    """The key store: creates a subject's key on first use, opens values, shreds keys."""

    def __init__(self, kv: KeyValue) -> None:
        self.kv = kv
        self._keys: dict[str, Key | None] = {}  # None: shredded

    async def key(self, subject: str) -> Key:
        """The subject's key for sealing, created on first use (two producers racing to
        create it both end with the one that won)."""
        found = self._keys.get(subject)
        if found is not None:
            return found
        while True:
            current = await self._fetch(subject)
            if current is not None:
                return current
            fresh = AESGCM.generate_key(bit_length=256)
            try:
                # a purged subject gets a new key: data sealed after the erasure is new data
                revision = await self.kv.create(subject, fresh)
            except KeyWrongLastSequenceError:
                continue  # created meanwhile: use that one
            key = self._keys[subject] = (revision, fresh)
            return key

    async def seal(self, workspace: str, channel: str, identity: str, plaintext: str) -> str:
        subject = subject_id(workspace, channel, identity)
        return seal(await self.key(subject), subject, plaintext)

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
        self._keys[subject] = None

    async def _fetch(self, subject: str) -> Key | None:
        try:
            entry = await self.kv.get(subject)
        except NotFoundError:  # never created, or deleted / purged
            self._keys[subject] = None
            return None
        if not entry.value or entry.revision is None:
            self._keys[subject] = None
            return None
        key = self._keys[subject] = (entry.revision, entry.value)
        return key

    async def follow(self, stop: asyncio.Event) -> None:
        """Forget keys as they are purged anywhere (run for the life of the process)."""
        watcher = await self.kv.watchall(include_history=False)
        try:
            while not stop.is_set():
                try:
                    entry = await watcher.updates(timeout=1.0)  # type: ignore[no-untyped-call]
                except TimeoutError:
                    continue
                if entry is None:  # the initial values are all seen
                    continue
                if entry.operation in ("DEL", "PURGE"):
                    self._keys[entry.key] = None
                elif entry.value and entry.revision is not None:
                    self._keys[entry.key] = (entry.revision, entry.value)
        finally:
            await watcher.stop()  # type: ignore[no-untyped-call]
