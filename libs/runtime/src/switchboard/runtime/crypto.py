"""Secrets at rest: AES-256-GCM with key ids, so keys rotate without downtime (new writes use
the active key; reads accept any key still in the ring until everything is re-encrypted)."""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from switchboard.runtime.errors import SwitchboardRuntimeError


class DecryptError(SwitchboardRuntimeError, ValueError):
    """Ciphertext from an unknown key, or tampered with / moved to another record."""


@dataclass(frozen=True)
class Keyring:
    """Key id -> 32-byte key; ``active`` encrypts, all of them decrypt."""

    keys: dict[str, bytes]
    active: str

    def __post_init__(self) -> None:
        if self.active not in self.keys:
            raise ValueError(f"active key {self.active!r} is not in the keyring")

    @classmethod
    def from_mapping(cls, keys: dict[str, bytes]) -> Keyring:
        """The first key of the mapping is the active one (settings order)."""
        if not keys:
            raise ValueError("the keyring is empty")
        return cls(keys=dict(keys), active=next(iter(keys)))

    @staticmethod
    def generate_key() -> str:
        """A fresh key as base64, for ``id:key`` settings."""
        return base64.b64encode(AESGCM.generate_key(bit_length=256)).decode()

    def encrypt(self, plaintext: bytes, aad: bytes) -> str:
        """``<kid>:<nonce b64>:<ciphertext b64>``; ``aad`` binds it to its record."""
        nonce = os.urandom(12)
        ct = AESGCM(self.keys[self.active]).encrypt(nonce, plaintext, aad)
        b64 = base64.urlsafe_b64encode
        return f"{self.active}:{b64(nonce).decode()}:{b64(ct).decode()}"

    def decrypt(self, token: str, aad: bytes) -> bytes:
        kid, nonce, ct = self._split(token)
        key = self.keys.get(kid)
        if key is None:
            raise DecryptError(f"secret was encrypted with key {kid!r}, which is not configured")
        try:
            return AESGCM(key).decrypt(nonce, ct, aad)
        except InvalidTag:
            raise DecryptError("secret does not authenticate (wrong key or record)") from None

    def key_id(self, token: str) -> str:
        return self._split(token)[0]

    @staticmethod
    def _split(token: str) -> tuple[str, bytes, bytes]:
        try:
            kid, nonce, ct = token.split(":")
            return kid, base64.urlsafe_b64decode(nonce), base64.urlsafe_b64decode(ct)
        except ValueError:
            raise DecryptError("not an encrypted secret") from None
