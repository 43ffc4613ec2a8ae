"""The server side of Telegram's 2FA check (SRP-2048 over the PBKDF2-SHA512 password hash).

The verifier v = g^x mod p, with x the 100,000-iteration password hash, costs about as much
as a client's login, so it is computed once per (password, salts) and cached.
"""

from __future__ import annotations

import functools
import hashlib
import os
import secrets
from dataclasses import dataclass

from telethon.tl.types import (
    InputCheckPasswordSRP,
)
from telethon.tl.types import (
    PasswordKdfAlgoSHA256SHA256PBKDF2HMACSHA512iter100000SHA256ModPow as KdfAlgo,
)

from switchboard.sandbox.mtproto_wire.crypto import DH_PRIME

SRP_G = 3
_P_BYTES = DH_PRIME.to_bytes(256, "big")


def _sha256(*parts: bytes) -> bytes:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part)
    return digest.digest()


def _num(value: int) -> bytes:
    return value.to_bytes(256, "big")


@functools.lru_cache(maxsize=256)
def verifier(password: str, salt1: bytes, salt2: bytes) -> int:
    """v = g^x mod p for the password hash x (PH2 of Telegram's SRP)."""
    hash1 = _sha256(salt1, password.encode("utf-8"), salt1)
    hash2 = _sha256(salt2, hash1, salt2)
    hash3 = hashlib.pbkdf2_hmac("sha512", hash2, salt1, 100_000)
    x = int.from_bytes(_sha256(salt2, hash3, salt2), "big")
    return pow(SRP_G, x, DH_PRIME)


def algo(salt1: bytes, salt2: bytes) -> KdfAlgo:
    return KdfAlgo(salt1=salt1, salt2=salt2, g=SRP_G, p=_P_BYTES)


@dataclass
class SrpChallenge:
    """One account.getPassword answer's secret half: b, B and the srp_id naming it."""

    srp_id: int
    b: int
    B: int
    v: int
    salt1: bytes
    salt2: bytes

    @classmethod
    def new(cls, v: int, salt1: bytes, salt2: bytes) -> SrpChallenge:
        k = int.from_bytes(_sha256(_P_BYTES, _num(SRP_G)), "big")
        b = secrets.randbits(2048) % DH_PRIME
        big_b = (k * v + pow(SRP_G, b, DH_PRIME)) % DH_PRIME
        srp_id = int.from_bytes(os.urandom(8), "little", signed=True)
        return cls(srp_id, b, big_b, v, salt1, salt2)

    def check(self, proof: InputCheckPasswordSRP) -> bool:
        """Whether the client's M1 proves it knows the password behind v."""
        if proof.srp_id != self.srp_id:
            return False
        a_bytes = bytes(proof.A).rjust(256, b"\0")
        big_a = int.from_bytes(a_bytes, "big")
        if not 0 < big_a < DH_PRIME:
            return False
        b_bytes = _num(self.B)
        u = int.from_bytes(_sha256(a_bytes, b_bytes), "big")
        s = pow(big_a * pow(self.v, u, DH_PRIME) % DH_PRIME, self.b, DH_PRIME)
        k_hash = _sha256(_num(s))
        expected = _sha256(
            bytes(x ^ y for x, y in zip(_sha256(_P_BYTES), _sha256(_num(SRP_G)), strict=True)),
            _sha256(self.salt1),
            _sha256(self.salt2),
            a_bytes,
            b_bytes,
            k_hash,
        )
        return secrets.compare_digest(expected, bytes(proof.M1))
