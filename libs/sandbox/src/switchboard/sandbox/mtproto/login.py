"""The login desk: codes sent by "SMS", sign-in with code and two-step password, and the
per-phone flood limits Telegram applies to them."""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from switchboard.sandbox.clock import Clock
from switchboard.sandbox.mtproto.config import MtprotoConfig
from switchboard.sandbox.mtproto.errors import RpcError, flood_wait
from switchboard.sandbox.mtproto.keys import AuthKey, KeyRing, KeyState
from switchboard.sandbox.mtproto.world import FakeUser, World, normalize_phone


@dataclass
class CodeRecord:
    """One code the fake "sent"; tests read it through the control API."""

    phone: str
    code: str
    phone_code_hash: str
    type: str
    sent_at: float
    expires_at: float  # wall time
    expires_mono: float
    used: bool = False
    attempts: int = 0

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("expires_mono")
        return out


class LoginDesk:
    """auth.sendCode / auth.signIn / auth.checkPassword."""

    def __init__(self, config: MtprotoConfig, clock: Clock, rng: random.Random) -> None:
        self.config = config
        self.clock = clock
        self.rng = rng
        self.codes: dict[str, CodeRecord] = {}
        self.sent: list[CodeRecord] = []
        self._sends: dict[str, deque[float]] = {}
        self._failures: dict[str, deque[float]] = {}

    def _window(self, table: dict[str, deque[float]], phone: str) -> deque[float]:
        now = self.clock.monotonic()
        times = table.setdefault(phone, deque())
        while times and times[0] <= now - self.config.code_flood_window:
            times.popleft()
        return times

    def _check_flood(self, table: dict[str, deque[float]], phone: str) -> None:
        times = self._window(table, phone)
        if len(times) >= self.config.code_flood_limit:
            wait = times[0] + self.config.code_flood_window - self.clock.monotonic()
            raise flood_wait(math.ceil(wait))

    def _fail(self, phone: str, name: str) -> RpcError:
        self._window(self._failures, phone).append(self.clock.monotonic())
        return RpcError(name)

    def send_code(self, world: World, keys: KeyRing, phone: str) -> dict[str, Any]:
        digits = normalize_phone(phone)
        user = world.by_phone.get(digits)
        if user is not None and user.banned:
            raise RpcError("PHONE_NUMBER_BANNED")
        self._check_flood(self._sends, digits)
        self._window(self._sends, digits).append(self.clock.monotonic())
        has_app = user is not None and any(
            k.state is KeyState.AUTHORIZED for k in keys.of_user(user.id)
        )
        now = self.clock.time()
        record = CodeRecord(
            phone=digits,
            code=(user.login_code if user is not None and user.login_code else None)
            or f"{self.rng.randrange(100_000):05d}",
            phone_code_hash=f"{self.rng.getrandbits(64):016x}",
            type="app" if has_app else "sms",
            sent_at=now,
            expires_at=now + self.config.code_ttl,
            expires_mono=self.clock.monotonic() + self.config.code_ttl,
        )
        self.codes[digits] = record  # a new code replaces the previous hash
        self.sent.append(record)
        return {
            "phone_code_hash": record.phone_code_hash,
            "type": record.type,
            "timeout": None if has_app else 60,
        }

    def sign_in(
        self, world: World, key: AuthKey, phone: str, code: str, phone_code_hash: str
    ) -> FakeUser:
        digits = normalize_phone(phone)
        self._check_flood(self._failures, digits)
        if not code:
            raise RpcError("PHONE_CODE_EMPTY")
        if not phone_code_hash:
            raise RpcError("PHONE_CODE_HASH_EMPTY")
        record = self.codes.get(digits)
        if (
            record is None
            or record.phone_code_hash != phone_code_hash
            or record.used
            or record.attempts >= self.config.max_code_attempts
            or self.clock.monotonic() >= record.expires_mono
        ):
            raise self._fail(digits, "PHONE_CODE_EXPIRED")
        if str(code).strip() != record.code:
            record.attempts += 1
            raise self._fail(digits, "PHONE_CODE_INVALID")
        record.used = True
        user = world.by_phone.get(digits)
        if user is None:
            raise RpcError("PHONE_NUMBER_UNOCCUPIED")
        if user.banned:
            raise RpcError("PHONE_NUMBER_BANNED")
        key.user_id = user.id
        if user.password:
            key.state = KeyState.PASSWORD
            raise RpcError("SESSION_PASSWORD_NEEDED")
        key.state = KeyState.AUTHORIZED
        return user

    def check_password(
        self,
        world: World,
        key: AuthKey,
        proof: Callable[[FakeUser], bool],
    ) -> FakeUser:
        """Finish a 2FA login: `proof` checks the client's SRP answer against the user's
        password."""
        if key.state is not KeyState.PASSWORD or key.user_id is None:
            raise RpcError("AUTH_KEY_UNREGISTERED")
        user = world.users[key.user_id]
        self._check_flood(self._failures, user.phone)
        if not proof(user):
            raise self._fail(user.phone, "PASSWORD_HASH_INVALID")
        key.state = KeyState.AUTHORIZED
        return user

    def latest(self, phone: str) -> CodeRecord | None:
        try:
            return self.codes.get(normalize_phone(phone))
        except RpcError:
            return None

    def reset(self) -> None:
        self.codes.clear()
        self.sent.clear()
        self._sends.clear()
        self._failures.clear()
