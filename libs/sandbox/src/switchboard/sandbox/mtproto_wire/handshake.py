"""The server side of MTProto's three-step key exchange (req_pq_multi, req_DH_params,
set_client_DH_params), over unencrypted messages.

Telethon encrypts the inner data of step 2 with the old scheme (SHA1(data) + data +
random padding, textbook RSA), so that is what this accepts. The result is the auth key
both sides now share; the caller registers it.
"""

from __future__ import annotations

import os
import secrets
import time
from dataclasses import dataclass

from telethon.crypto import AES
from telethon.crypto.authkey import AuthKey as TelethonAuthKey
from telethon.extensions import BinaryReader
from telethon.tl import TLObject
from telethon.tl.functions import ReqDHParamsRequest, ReqPqMultiRequest, SetClientDHParamsRequest
from telethon.tl.types import (
    ClientDHInnerData,
    DhGenOk,
    PQInnerData,
    PQInnerDataDc,
    PQInnerDataTempDc,
    ResPQ,
    ServerDHInnerData,
    ServerDHParamsOk,
)

from switchboard.sandbox.errors import SandboxError
from switchboard.sandbox.mtproto_wire.crypto import (
    DH_G,
    DH_PRIME,
    ServerKey,
    int_bytes,
    sha1,
    tmp_aes,
)

# pq is the product of two primes the client must factor to prove it did some work.
# Telegram uses about 64 bits. Telethon's Pollard-Brent needs ~250 ms for the
# documentation's example but fails to split a small pq now and then (15-bit primes: 1 in
# 170 connects); 27-bit primes cost ~6 ms and split in 2500 of 2500 tries. pq stays below
# 2**55 so its top byte is < 0x80: Telethon reads pq as a signed big-endian int.
_P, _Q = 134117707, 134217689
_SAFETY = 2 ** (2048 - 64)


class HandshakeError(SandboxError):
    """A key-exchange message that is out of order or does not verify."""


@dataclass(frozen=True)
class NewKey:
    """The outcome of a key exchange: the key as the client holds it and the first salt.

    Telethon keeps the shared secret without leading zero bytes (about 1 handshake in 200
    has one), so `key` is that form; `full_key` is the 256-byte form a strict client uses.
    """

    key: bytes
    full_key: bytes
    salt: int


class Handshake:
    """One connection's key exchange; `answer` takes each plain request in turn."""

    def __init__(self, server_key: ServerKey) -> None:
        self.server_key = server_key
        self.nonce: int | None = None
        self.server_nonce = int.from_bytes(os.urandom(16), "little", signed=True)
        self.new_nonce: int | None = None
        self._a = 0
        self.result: NewKey | None = None

    def answer(self, request: TLObject) -> TLObject:
        """The plain response to one key-exchange request (HandshakeError if invalid)."""
        if isinstance(request, ReqPqMultiRequest):
            return self._res_pq(request)
        if isinstance(request, ReqDHParamsRequest):
            return self._dh_params(request)
        if isinstance(request, SetClientDHParamsRequest):
            return self._dh_gen(request)
        raise HandshakeError(f"unexpected plain message {type(request).__name__}")

    def _check_nonces(self, nonce: int, server_nonce: int) -> None:
        if nonce != self.nonce or server_nonce != self.server_nonce:
            raise HandshakeError("nonce mismatch")

    def _res_pq(self, request: ReqPqMultiRequest) -> ResPQ:
        self.nonce = request.nonce
        return ResPQ(
            nonce=request.nonce,
            server_nonce=self.server_nonce,
            pq=int_bytes(_P * _Q),
            server_public_key_fingerprints=[self.server_key.fingerprint],
        )

    def _dh_params(self, request: ReqDHParamsRequest) -> ServerDHParamsOk:
        self._check_nonces(request.nonce, request.server_nonce)
        if request.public_key_fingerprint != self.server_key.fingerprint:
            raise HandshakeError("unknown RSA key fingerprint")
        plain = self.server_key.decrypt_raw(request.encrypted_data)[1:]  # 255 bytes sent
        with BinaryReader(plain[20:]) as reader:
            inner = reader.tgread_object()
        if not isinstance(inner, PQInnerData | PQInnerDataDc | PQInnerDataTempDc):
            raise HandshakeError("encrypted data is not p_q_inner_data")
        if sha1(bytes(inner)) != plain[:20]:
            raise HandshakeError("p_q_inner_data hash mismatch")
        self._check_nonces(inner.nonce, inner.server_nonce)
        if {int.from_bytes(inner.p, "big"), int.from_bytes(inner.q, "big")} != {_P, _Q}:
            raise HandshakeError("wrong factorization of pq")
        self.new_nonce = inner.new_nonce
        while True:
            self._a = secrets.randbits(2048) % DH_PRIME
            g_a = pow(DH_G, self._a, DH_PRIME)
            if _SAFETY <= g_a <= DH_PRIME - _SAFETY:
                break
        answer = bytes(
            ServerDHInnerData(
                nonce=self.nonce,
                server_nonce=self.server_nonce,
                g=DH_G,
                dh_prime=int_bytes(DH_PRIME),
                g_a=int_bytes(g_a),
                server_time=int(time.time()),
            )
        )
        data = sha1(answer) + answer
        data += os.urandom(-len(data) % 16)
        key, iv = tmp_aes(self.server_nonce, self.new_nonce)
        return ServerDHParamsOk(
            nonce=self.nonce,
            server_nonce=self.server_nonce,
            encrypted_answer=AES.encrypt_ige(data, key, iv),
        )

    def _dh_gen(self, request: SetClientDHParamsRequest) -> DhGenOk:
        self._check_nonces(request.nonce, request.server_nonce)
        if self.new_nonce is None:
            raise HandshakeError("set_client_DH_params before req_DH_params")
        key, iv = tmp_aes(self.server_nonce, self.new_nonce)
        plain = AES.decrypt_ige(request.encrypted_data, key, iv)
        with BinaryReader(plain[20:]) as reader:
            inner = reader.tgread_object()
        if not isinstance(inner, ClientDHInnerData):
            raise HandshakeError("encrypted data is not client_DH_inner_data")
        if sha1(bytes(inner)) != plain[:20]:
            raise HandshakeError("client_DH_inner_data hash mismatch")
        g_b = int.from_bytes(inner.g_b, "big")
        if not _SAFETY <= g_b <= DH_PRIME - _SAFETY:
            raise HandshakeError("g_b out of the safe range")
        shared = pow(g_b, self._a, DH_PRIME)
        client_key = TelethonAuthKey(int_bytes(shared))
        new = self.new_nonce.to_bytes(32, "little", signed=True)
        server = self.server_nonce.to_bytes(16, "little", signed=True)
        salt = int.from_bytes(
            bytes(a ^ b for a, b in zip(new[:8], server[:8], strict=True)), "little", signed=True
        )
        self.result = NewKey(key=client_key.key, full_key=shared.to_bytes(256, "big"), salt=salt)
        return DhGenOk(
            nonce=self.nonce,
            server_nonce=self.server_nonce,
            new_nonce_hash1=client_key.calc_new_nonce_hash(self.new_nonce, 1),
        )
