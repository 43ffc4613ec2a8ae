"""Live connections per auth key, the AUTH_KEY_DUPLICATED rule and the connection log.

A connection is alive exactly while its TCP socket to the wire server is open (a killed
client process closes it at once). Opening a second live connection of one key destroys the key for
good, as Telegram does; the log keeps every connect, disconnect and duplicate incident so
tests can prove that no session was ever connected twice.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from switchboard.sandbox.clock import Clock
from switchboard.sandbox.mtproto.config import MtprotoConfig
from switchboard.sandbox.mtproto.errors import RpcError
from switchboard.sandbox.mtproto.keys import AuthKey, KeyState

_KEEP_CLOSED = 10_000  # closed connections remembered, so late calls get the right error


@dataclass
class Connection:
    """One client connection of one key; `outbox` feeds its update stream (None = end)."""

    id: str
    key: AuthKey
    opened_at: float
    client: dict[str, Any]
    outbox: asyncio.Queue[dict[str, Any] | None] = field(default_factory=asyncio.Queue)
    closed: bool = False
    reason: str | None = None
    error: RpcError | None = None


@dataclass
class KeyLog:
    """The history of one key's connections."""

    key_id: str
    user_id: int | None
    connects: int = 0
    max_concurrent: int = 0
    active: set[str] = field(default_factory=set)
    duplicates: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "key_id": self.key_id,
            "user_id": self.user_id,
            "active": len(self.active),
            "connects": self.connects,
            "max_concurrent": self.max_concurrent,
            "duplicates": list(self.duplicates),
            "events": list(self.events),
        }


class Connections:
    """Every connection of the fake, by id and by key."""

    def __init__(self, config: MtprotoConfig, clock: Clock) -> None:
        self.config = config
        self.clock = clock
        self.live: dict[str, Connection] = {}
        self.closed: OrderedDict[str, Connection] = OrderedDict()
        self.logs: dict[str, KeyLog] = {}
        self._serial = itertools.count(1)  # never reset: a stale id must not hit a new one

    def _log(self, key: AuthKey) -> KeyLog:
        log = self.logs.get(key.key_id)
        if log is None:
            log = self.logs[key.key_id] = KeyLog(key.key_id, key.user_id)
        log.user_id = key.user_id if key.user_id is not None else log.user_id
        return log

    def _event(self, log: KeyLog, event: str, connection: str, **extra: Any) -> None:
        log.events.append(
            {"event": event, "connection": connection, "at": self.clock.time(), **extra}
        )

    def open(self, key: AuthKey, client: dict[str, Any]) -> Connection:
        """A new live connection, or AUTH_KEY_DUPLICATED (destroying the key) if one is live."""
        log = self._log(key)
        cid = f"c{next(self._serial)}"
        if key.state is KeyState.DUPLICATED:
            self._event(log, "refused", cid, reason="AUTH_KEY_DUPLICATED")
            raise RpcError("AUTH_KEY_DUPLICATED")
        if log.active:
            others = sorted(log.active)
            log.max_concurrent = max(log.max_concurrent, len(others) + 1)
            incident = {"at": self.clock.time(), "connections": [*others, cid]}
            log.duplicates.append(incident)
            self._event(log, "duplicate", cid, others=others)
            key.state = KeyState.DUPLICATED
            error = RpcError("AUTH_KEY_DUPLICATED")
            for other in others:
                self.close(self.live[other], "duplicate", error)
            raise error
        conn = Connection(
            id=cid,
            key=key,
            opened_at=self.clock.time(),
            client=dict(client),
        )
        self.live[cid] = conn
        log.active.add(cid)
        log.connects += 1
        log.max_concurrent = max(log.max_concurrent, len(log.active))
        self._event(log, "connect", cid, client=conn.client)
        return conn

    def get(self, cid: str) -> Connection | None:
        return self.live.get(cid) or self.closed.get(cid)

    def close(self, conn: Connection, reason: str, error: RpcError | None = None) -> bool:
        """End a connection (its stream sends `closed` and stops); False if already closed."""
        if conn.closed:
            return False
        conn.closed, conn.reason, conn.error = True, reason, error
        self.live.pop(conn.id, None)
        self.closed[conn.id] = conn
        while len(self.closed) > _KEEP_CLOSED:
            self.closed.popitem(last=False)
        log = self._log(conn.key)
        log.active.discard(conn.id)
        self._event(
            log,
            "disconnect",
            conn.id,
            reason=reason,
            error=None if error is None else error.name,
            duration=round(self.clock.time() - conn.opened_at, 3),
        )
        conn.outbox.put_nowait(None)
        return True

    def deliver(self, user_id: int, update: dict[str, Any], skip: str | None = None) -> None:
        """Queue an update on every live, authorized connection of the user's keys."""
        for conn in list(self.live.values()):
            key = conn.key
            if (
                conn.id != skip
                and key.user_id == user_id
                and key.state is KeyState.AUTHORIZED
                and not conn.closed
            ):
                conn.outbox.put_nowait(update)

    def force(
        self,
        *,
        user_id: int | None = None,
        key_id: str | None = None,
        connection: str | None = None,
        reason: str = "forced",
    ) -> int:
        """Drop matching live connections (all when nothing is given); how many dropped."""
        count = 0
        for conn in list(self.live.values()):
            if user_id is not None and conn.key.user_id != user_id:
                continue
            if key_id is not None and conn.key.key_id != key_id:
                continue
            if connection is not None and conn.id != connection:
                continue
            count += self.close(conn, reason)
        return count

    def report(
        self,
        *,
        user_id: int | None = None,
        key_id: str | None = None,
        active: bool | None = None,
    ) -> dict[str, Any]:
        """The connection log, filtered; totals cover the listed keys."""
        logs = [
            log
            for log in self.logs.values()
            if (user_id is None or log.user_id == user_id)
            and (key_id is None or log.key_id == key_id)
            and (active is None or bool(log.active) == active)
        ]
        return {
            "keys": [log.to_json() for log in logs],
            "max_concurrent": max((log.max_concurrent for log in logs), default=0),
            "duplicates": sum(len(log.duplicates) for log in logs),
            "active": sum(len(log.active) for log in logs),
        }

    def reset(self) -> None:
        for conn in list(self.live.values()):
            self.close(conn, "reset")
        self.closed.clear()
        self.logs.clear()
