"""Auth keys the fake cloud issued and what each may do (the server side of a session)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from switchboard.sandbox.mtproto.errors import RpcError
from switchboard.sandbox.mtproto.sessions import KEY_SIZE, decode_session, encode_session, key_id_of


class KeyState(StrEnum):
    NEW = "new"  # made by a client, not signed in yet
    PASSWORD = "password"  # noqa: S105  (a state name: code accepted, password pending)
    AUTHORIZED = "authorized"
    LOGGED_OUT = "logged_out"
    REVOKED = "revoked"  # terminated from another device
    DUPLICATED = "duplicated"  # used from two connections at once: destroyed for good


@dataclass
class AuthKey:
    """One authorization: the session string a client holds and its state at Telegram."""

    key_id: str
    session: str
    state: KeyState = KeyState.NEW
    user_id: int | None = None
    created_at: float = 0.0

    def check_alive(self) -> None:
        """Raise what any call on a destroyed key gets."""
        if self.state is KeyState.DUPLICATED:
            raise RpcError("AUTH_KEY_DUPLICATED")
        if self.state is KeyState.REVOKED:
            raise RpcError("SESSION_REVOKED")

    def summary(self) -> dict[str, Any]:
        return {
            "key_id": self.key_id,
            "user_id": self.user_id,
            "state": self.state.value,
            "created_at": self.created_at,
        }


class KeyRing:
    """Every key by id; unknown but well-formed strings become new unauthorized keys."""

    def __init__(self) -> None:
        self.keys: dict[str, AuthKey] = {}

    def issue(self, now: float, user_id: int | None = None) -> AuthKey:
        """A fresh random 256-byte key (authorized for `user_id` when given)."""
        # Truly random, unlike the fake's seeded ids: a reset (or a second sandbox) must never
        # hand out a key that an old client may still hold.
        raw = secrets.token_bytes(KEY_SIZE)
        key = AuthKey(key_id=key_id_of(raw), session=encode_session(raw), created_at=now)
        if user_id is not None:
            key.state, key.user_id = KeyState.AUTHORIZED, user_id
        self.keys[key.key_id] = key
        return key

    def lookup(self, session: str, now: float) -> AuthKey:
        """The key of a session string; "" makes a new key as a fresh Telethon client does."""
        if not session:
            return self.issue(now)
        try:
            _, _, _, raw = decode_session(session)
        except ValueError as exc:
            raise RpcError("AUTH_KEY_INVALID") from exc
        key_id = key_id_of(raw)
        found = self.keys.get(key_id)
        if found is None:
            # Telegram does not know the key: it is as good as a new, unauthorized one.
            found = AuthKey(key_id=key_id, session=session, created_at=now)
            self.keys[key_id] = found
        return found

    def of_user(self, user_id: int) -> list[AuthKey]:
        return [k for k in self.keys.values() if k.user_id == user_id]
