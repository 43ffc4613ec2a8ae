"""The encrypted session store (Postgres, schema ``mtproto``).

A Telethon ``StringSession`` is the account: whoever holds it reads and writes as the user.
It is sealed with the runtime's keyring (AES-256-GCM, key ids, the accounts registry's
scheme) together with the app hash and the proxy's password/secret, and bound to its session
id, so a sealed value copied onto another row does not decrypt. Plaintext exists only in
memory, just before connecting. Keys rotate: new writes use the active key, ``reencrypt``
rewrites every row with it, then the old key can leave the ring.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import asyncpg

from switchboard.events.catalog.mtproto import DeviceInfo, ProxyInfo
from switchboard.mtproto.ports import Device, Proxy, SessionConfig
from switchboard.mtproto.ttl import DEMAND
from switchboard.runtime.crypto import Keyring
from switchboard.runtime.db import Conn, from_row
from switchboard.runtime.failures import stored_for_sure
from switchboard.runtime.logging import register_secret


@dataclass(frozen=True)
class Secrets:
    """What is sealed: everything that would let someone act as the account."""

    session: str = ""
    api_hash: str = ""
    phone_code_hash: str | None = None
    proxy_password: str | None = None
    proxy_secret: str | None = None

    def to_json(self) -> bytes:
        data = {k: v for k, v in self.__dict__.items() if v is not None}
        return json.dumps(data, sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Secrets:
        return cls(**json.loads(raw))


@dataclass(frozen=True)
class SessionRecord:
    """One stored session; ``secrets`` are plaintext in memory only (``repr`` hides them)."""

    session_id: str
    workspace_id: str
    status: str  # active | logging_out | revoked
    api_id: int
    device: DeviceInfo
    proxy: ProxyInfo | None
    secrets: Secrets = field(repr=False)
    phone: str | None = None
    user_id: int | None = None
    username: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    revoked_reason: str | None = None
    send_paused_until: datetime | None = None
    updated_at: datetime | None = None

    def config(self) -> SessionConfig:
        """The port's connection settings (the only place the session string goes)."""
        return session_config(
            self.session_id,
            self.api_id,
            self.secrets,
            self.device,
            self.proxy,
        )

    def public(self) -> dict[str, Any]:
        """What the API shows: never the session, the app hash or the proxy's secrets."""
        return {
            "session_id": self.session_id,
            "workspace_id": self.workspace_id,
            "status": self.status,
            "phone": self.phone,
            "user_id": str(self.user_id) if self.user_id is not None else None,
            "username": self.username,
            "first_name": self.first_name,
            "last_name": self.last_name,
            "api_id": self.api_id,
            "device": self.device.model_dump(),
            "proxy": public_proxy(self.proxy),
            "revoked_reason": self.revoked_reason,
            "send_paused_until": self.send_paused_until.isoformat()
            if self.send_paused_until
            else None,
        }


@dataclass(frozen=True)
class LoginRecord:
    """A login waiting for its next step (``code`` or ``password``)."""

    session_id: str
    workspace_id: str
    phone: str
    step: str
    api_id: int
    device: DeviceInfo
    proxy: ProxyInfo | None
    secrets: Secrets = field(repr=False)
    code_type: str | None
    expires_at: datetime

    def config(self) -> SessionConfig:
        return session_config(self.session_id, self.api_id, self.secrets, self.device, self.proxy)


def session_config(
    session_id: str, api_id: int, secrets: Secrets, device: DeviceInfo, proxy: ProxyInfo | None
) -> SessionConfig:
    return SessionConfig(
        session_id=session_id,
        api_id=api_id,
        api_hash=secrets.api_hash,
        session=secrets.session,
        device=Device(**device.model_dump()),
        proxy=Proxy(
            type=proxy.type,
            host=proxy.host,
            port=proxy.port,
            username=proxy.username,
            password=secrets.proxy_password,
            secret=secrets.proxy_secret,
        )
        if proxy
        else None,
    )


def public_proxy(proxy: ProxyInfo | None) -> dict[str, Any] | None:
    """A proxy without its password and secret (those are sealed)."""
    if proxy is None:
        return None
    return proxy.model_dump(exclude={"password", "secret"})


def _aad(kind: str, session_id: str) -> bytes:
    return f"mtproto/{kind}/{session_id}".encode()


# A session's row, written whole: after a login as it comes; by an import only on conditions
# (``import_session``).
_UPSERT_SESSION = """INSERT INTO sessions (session_id, workspace_id, status, phone, user_id,
        username, first_name, last_name, api_id, device, proxy, sealed, revoked_reason)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
    ON CONFLICT (session_id) DO UPDATE SET
        workspace_id = EXCLUDED.workspace_id, status = EXCLUDED.status,
        phone = EXCLUDED.phone, user_id = EXCLUDED.user_id,
        username = EXCLUDED.username, first_name = EXCLUDED.first_name,
        last_name = EXCLUDED.last_name, api_id = EXCLUDED.api_id,
        device = EXCLUDED.device, proxy = EXCLUDED.proxy, sealed = EXCLUDED.sealed,
        revoked_reason = EXCLUDED.revoked_reason, send_paused_until = NULL,
        parked_at = NULL, updated_at = now()"""


class SessionStore:
    """Sessions and logins in Postgres, secrets sealed with the keyring."""

    def __init__(self, pool: asyncpg.Pool, keyring: Keyring) -> None:
        self.pool = pool
        self.keyring = keyring

    # ------------------------------------------------------------------ sealing

    def seal(self, kind: str, session_id: str, secrets: Secrets) -> str:
        return self.keyring.encrypt(secrets.to_json(), _aad(kind, session_id))

    def open(self, kind: str, session_id: str, sealed: str) -> Secrets:
        secrets = Secrets.from_json(self.keyring.decrypt(sealed, _aad(kind, session_id)))
        for value in (secrets.session, secrets.api_hash, secrets.proxy_password):
            register_secret(value)  # never logged, even by accident
        return secrets

    # ------------------------------------------------------------------ sessions

    async def put_session(self, record: SessionRecord, conn: Conn | None = None) -> None:
        """Insert or replace a session (after a login). A new key may be another account's:
        the update state stored for the old one is dropped."""
        db = conn or self.pool
        await db.execute("DELETE FROM update_states WHERE session_id = $1", record.session_id)
        await db.execute(_UPSERT_SESSION, *self._session_row(record))

    async def import_session(self, record: SessionRecord) -> bool:
        """Store an imported session unless its id holds an active (or logging out) session
        or another workspace's: decided by the one statement that writes, so of two imports
        at once one is stored and the other refused. A check before a plain upsert let the
        second replace the first, another workspace's session too, and answer the first
        201 with the second's record."""
        async with self.pool.acquire() as conn, conn.transaction():
            won = await conn.fetchval(
                _UPSERT_SESSION
                + """ WHERE sessions.workspace_id = EXCLUDED.workspace_id
                        AND sessions.status NOT IN ('active', 'logging_out')
                      RETURNING session_id""",
                *self._session_row(record),
            )
            if won is None:
                return False
            await conn.execute("DELETE FROM update_states WHERE session_id = $1", record.session_id)
        return True

    def _session_row(self, record: SessionRecord) -> tuple[object, ...]:
        """The parameters of ``_UPSERT_SESSION`` (secrets sealed)."""
        return (
            record.session_id,
            record.workspace_id,
            record.status,
            record.phone,
            record.user_id,
            record.username,
            record.first_name,
            record.last_name,
            record.api_id,
            *self._storing("session", record),
            record.revoked_reason,
        )

    async def get_session(self, session_id: str) -> SessionRecord | None:
        row = await self.pool.fetchrow("SELECT * FROM sessions WHERE session_id = $1", session_id)
        return self._session(row) if row else None

    async def list_sessions(self, workspace_id: str | None = None) -> list[SessionRecord]:
        """Every session (decrypted: the caller decides what to show)."""
        rows = await self.pool.fetch(
            "SELECT * FROM sessions WHERE $1::text IS NULL OR workspace_id = $1 ORDER BY 1",
            workspace_id,
        )
        return [self._session(r) for r in rows]

    async def claimable(self) -> list[str]:
        """Ids of the sessions some instance should hold: active ones, and those with a
        logout to finish (it needs a connection)."""
        # A parked session (ttl.py) only when it has something to do again.
        rows = await self.pool.fetch(
            f"""SELECT session_id FROM sessions WHERE status IN ('active', 'logging_out')
                  AND (parked_at IS NULL OR status = 'logging_out' OR {DEMAND})"""
        )
        return [r["session_id"] for r in rows]

    async def status(self, session_id: str) -> str | None:
        value = await self.pool.fetchval(
            "SELECT status FROM sessions WHERE session_id = $1", session_id
        )
        return str(value) if value is not None else None

    async def update_secret(self, session_id: str, session: str) -> None:
        """Store a changed StringSession (Telethon may move the account to another DC)."""
        current = await self.get_session(session_id)
        if current is None or current.secrets.session == session:
            return
        sealed = self.seal("session", session_id, replace(current.secrets, session=session))
        await self.pool.execute(
            "UPDATE sessions SET sealed = $2, updated_at = now() WHERE session_id = $1",
            session_id,
            sealed,
        )

    async def request_logout(self, session_id: str) -> bool:
        """Mark a session for logout (the instance holding it logs it out); False if unknown."""
        done = await self.pool.execute(
            """UPDATE sessions SET status = 'logging_out', updated_at = now()
               WHERE session_id = $1 AND status <> 'revoked'""",
            session_id,
        )
        if done.endswith(" 1"):
            return True
        return await self.delete_session(session_id)

    async def revoke(self, session_id: str, reason: str) -> None:
        """The session is dead at Telegram: wipe its secret, keep the row for the record."""
        current = await self.get_session(session_id)
        if current is None:
            return
        sealed = self.seal("session", session_id, replace(current.secrets, session=""))
        await self.pool.execute(
            """UPDATE sessions SET status = 'revoked', revoked_reason = $2, sealed = $3,
                   updated_at = now() WHERE session_id = $1""",
            session_id,
            reason,
            sealed,
        )

    async def delete_session(self, session_id: str) -> bool:
        """Delete a session and everything kept for it."""
        async with self.pool.acquire() as conn, conn.transaction():
            done = await conn.execute("DELETE FROM sessions WHERE session_id = $1", session_id)
            for table in (
                "logins", "subscriptions", "leaves", "backfills", "message_chats", "update_states"
            ):  # fmt: skip
                await conn.execute(f"DELETE FROM {table} WHERE session_id = $1", session_id)
        return done.endswith(" 1")

    async def pause_sends(self, session_id: str, until: datetime) -> None:
        await self.pool.execute(
            "UPDATE sessions SET send_paused_until = $2 WHERE session_id = $1", session_id, until
        )

    def _session(self, row: asyncpg.Record) -> SessionRecord:
        return from_row(SessionRecord, row, **self._stored(row, "session"))

    def _stored(self, row: asyncpg.Record, kind: str) -> dict[str, Any]:
        """The fields a session's or a login's row keeps as JSON or sealed."""
        return {
            "device": DeviceInfo.model_validate_json(row["device"]),
            "proxy": ProxyInfo.model_validate_json(row["proxy"]) if row["proxy"] else None,
            "secrets": self.open(kind, row["session_id"], row["sealed"]),
        }

    def _storing(
        self, kind: str, record: SessionRecord | LoginRecord
    ) -> tuple[str, str | None, str]:
        """The device, proxy and sealed columns of a session's or a login's row, as
        ``_stored`` reads them back (the proxy without its secrets: those are sealed)."""
        return (
            json.dumps(record.device.model_dump()),
            json.dumps(public_proxy(record.proxy)) if record.proxy else None,
            self.seal(kind, record.session_id, record.secrets),
        )

    # ------------------------------------------------------------------ logins

    async def put_login(self, login: LoginRecord) -> None:
        """Store a login in progress: written after Telegram sent the code (or took it), so
        the database away a moment is waited out here (``stored_for_sure``); lost, the code
        hash and the temporary session would be gone and the person asked for a new code."""
        await stored_for_sure(lambda: self._put_login(login))

    async def _put_login(self, login: LoginRecord) -> None:
        await self.pool.execute(
            """INSERT INTO logins (session_id, workspace_id, phone, step, api_id, device, proxy,
                   sealed, code_type, expires_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
               ON CONFLICT (session_id) DO UPDATE SET
                   workspace_id = EXCLUDED.workspace_id, phone = EXCLUDED.phone,
                   step = EXCLUDED.step, api_id = EXCLUDED.api_id, device = EXCLUDED.device,
                   proxy = EXCLUDED.proxy, sealed = EXCLUDED.sealed,
                   code_type = EXCLUDED.code_type, expires_at = EXCLUDED.expires_at,
                   updated_at = now()""",
            login.session_id,
            login.workspace_id,
            login.phone,
            login.step,
            login.api_id,
            *self._storing("login", login),
            login.code_type,
            login.expires_at,
        )

    async def owner(self, session_id: str) -> str | None:
        """The workspace of a session, or of a login in progress under its id (None: free)."""
        record = await self.get_session(session_id)
        if record is not None:
            return record.workspace_id
        pending = await self.get_login(session_id)
        return pending.workspace_id if pending is not None else None

    async def get_login(self, session_id: str) -> LoginRecord | None:
        row = await self.pool.fetchrow("SELECT * FROM logins WHERE session_id = $1", session_id)
        if row is None:
            return None
        return from_row(LoginRecord, row, **self._stored(row, "login"))

    async def delete_login(self, session_id: str) -> None:
        await self.pool.execute("DELETE FROM logins WHERE session_id = $1", session_id)

    async def finish_login(self, record: SessionRecord) -> None:
        """Store the authorized session and drop the login, in one transaction. Telegram
        has just authorized the key, and this is its only copy: the database away a moment
        is waited out here (``stored_for_sure``), or the account would need a new login."""

        async def finish() -> None:
            async with self.pool.acquire() as conn, conn.transaction():
                await conn.execute("DELETE FROM logins WHERE session_id = $1", record.session_id)
                await self.put_session(record, conn)

        await stored_for_sure(finish)

    # ------------------------------------------------------------------ rotation

    async def reencrypt(self) -> int:
        """Rewrite every sealed value with the active key (the last step of a rotation).
        Compare-and-set on the old value, so a concurrent write is never overwritten."""
        count = 0
        for table, kind in (("sessions", "session"), ("logins", "login")):
            rows = await self.pool.fetch(f"SELECT session_id, sealed FROM {table}")
            for row in rows:
                if self.keyring.key_id(row["sealed"]) == self.keyring.active:
                    continue
                secrets = self.open(kind, row["session_id"], row["sealed"])
                done = await self.pool.execute(
                    f"UPDATE {table} SET sealed = $3 WHERE session_id = $1 AND sealed = $2",
                    row["session_id"],
                    row["sealed"],
                    self.seal(kind, row["session_id"], secrets),
                )
                count += done.endswith(" 1")
        return count
