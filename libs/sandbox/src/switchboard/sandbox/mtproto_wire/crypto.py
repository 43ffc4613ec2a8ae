"""The server's cryptography: its RSA key, Telegram's DH prime, and MTProto 2.0 message
encryption (AES-256-IGE keyed from the auth key and the message key)."""

from __future__ import annotations

import hashlib
import os
import struct
from dataclasses import dataclass
from hashlib import sha256

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from telethon.crypto import AES
from telethon.tl.tlobject import TLObject

from switchboard.sandbox.errors import SandboxError

# Telegram's standard 2048-bit safe prime (the one clients accept for key exchange and 2FA
# without a slow primality check); g = 3 is a generator of the right subgroup for it.
DH_PRIME = int(
    "C71CAEB9C6B1C9048E6C522F70F13F73980D40238E3E21C14934D037563D930F"
    "48198A0AA7C14058229493D22530F4DBFA336F6E0AC925139543AED44CCE7C37"
    "20FD51F69458705AC68CD4FE6B6B13ABDC9746512969328454F18FAF8C595F64"
    "2477FE96BB2A941D5BCD1D4AC8CC49880708FA9B378E3C4F3A9060BEE67CF9A4"
    "A4A695811051907E162753B56B0F6B410DBA74D8A84B2A14B3144E0EF1284754"
    "FD17ED950D5965B4B9DD46582DB1178D169C6BC465B0D6FF9CA3928FEF5B9AE4"
    "E418FC15E83EBEA0F87FA9FF5EED70050DED2849F47BF959D956850CE929851F"
    "0D8115F635B105EE2E4E15D04B2454BF6F4FADF034B10403119CD8E3B92FCC5B",
    16,
)
DH_G = 3


def sha1(data: bytes) -> bytes:
    """SHA-1, which MTProto's key exchange and key ids are defined with (not our choice)."""
    return hashlib.sha1(data, usedforsecurity=False).digest()


def int_bytes(value: int) -> bytes:
    """Big-endian bytes without leading zeros, as MTProto writes big numbers."""
    return value.to_bytes((value.bit_length() + 7) // 8, "big")


@dataclass(frozen=True)
class ServerKey:
    """The server's RSA key pair; clients learn the public half from the descriptor."""

    n: int
    e: int
    p: int
    q: int
    dp: int  # d mod (p - 1), d mod (q - 1) and q^-1 mod p: decryption by the CRT,
    dq: int  # about 3x faster than one 2048-bit exponentiation
    qinv: int

    @classmethod
    def generate(cls) -> ServerKey:
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        numbers = private.private_numbers()
        public = numbers.public_numbers
        return cls(
            public.n, public.e, numbers.p, numbers.q, numbers.dmp1, numbers.dmq1, numbers.iqmp
        )

    @property
    def fingerprint(self) -> int:
        """Telegram's fingerprint: the low 64 bits of SHA1(TL bytes n | TL bytes e)."""
        data = TLObject.serialize_bytes(int_bytes(self.n)) + TLObject.serialize_bytes(
            int_bytes(self.e)
        )
        return int(struct.unpack("<q", sha1(data)[-8:])[0])

    def public_pem(self) -> str:
        """The PKCS#1 "RSA PUBLIC KEY" PEM that `telethon.crypto.rsa.add_key` takes."""
        key = rsa.RSAPublicNumbers(self.e, self.n).public_key()
        pem = key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1)
        return pem.decode("ascii")

    def decrypt_raw(self, block: bytes) -> bytes:
        """Textbook RSA decryption of a 256-byte block (the old, unpadded client scheme)."""
        c = int.from_bytes(block, "big")
        m_p, m_q = pow(c, self.dp, self.p), pow(c, self.dq, self.q)
        value = m_q + self.q * (self.qinv * (m_p - m_q) % self.p)
        return value.to_bytes(256, "big")


def tmp_aes(server_nonce: int, new_nonce: int) -> tuple[bytes, bytes]:
    """The temporary AES key and IV of the key exchange, from the two nonces."""
    server = server_nonce.to_bytes(16, "little", signed=True)
    new = new_nonce.to_bytes(32, "little", signed=True)
    hash1 = sha1(new + server)
    hash2 = sha1(server + new)
    hash3 = sha1(new + new)
    return hash1 + hash2[:12], hash2[12:20] + hash3 + new[:4]


def auth_key_id(key: bytes) -> int:
    """The 64-bit id that prefixes every message encrypted with `key`."""
    return int(struct.unpack("<Q", sha1(key)[-8:])[0])


def _aes_key_iv(key: bytes, msg_key: bytes, x: int) -> tuple[bytes, bytes]:
    sha_a = sha256(msg_key + key[x : x + 36]).digest()
    sha_b = sha256(key[x + 40 : x + 76] + msg_key).digest()
    return sha_a[:8] + sha_b[8:24] + sha_a[24:32], sha_b[:8] + sha_a[8:24] + sha_b[24:32]


class CryptoError(SandboxError):
    """An encrypted message that does not decrypt or verify under its auth key."""


def decrypt_from_client(key: bytes, body: bytes) -> bytes:
    """The plaintext (salt | session | msg_id | seq | len | data | padding) of a client
    message; `body` starts after the 8-byte auth key id."""
    if len(body) < 16 + 32 or (len(body) - 16) % 16:
        raise CryptoError("encrypted message has a bad length")
    msg_key = body[:16]
    aes_key, aes_iv = _aes_key_iv(key, msg_key, 0)
    plain = AES.decrypt_ige(body[16:], aes_key, aes_iv)
    if sha256(key[88:120] + plain).digest()[8:24] != msg_key:
        raise CryptoError("msg_key does not match the plaintext")
    return bytes(plain)


def encrypt_to_client(key: bytes, plain: bytes) -> bytes:
    """auth_key_id | msg_key | AES-IGE(plain + padding), the server-to-client direction (x=8)."""
    padding = os.urandom(-(len(plain) + 12) % 16 + 12)
    data = plain + padding
    msg_key = sha256(key[96:128] + data).digest()[8:24]
    aes_key, aes_iv = _aes_key_iv(key, msg_key, 8)
    encrypted: bytes = AES.encrypt_ige(data, aes_key, aes_iv)
    return struct.pack("<Q", auth_key_id(key)) + msg_key + encrypted
