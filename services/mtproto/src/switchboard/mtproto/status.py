"""Account status events: what the gateway's own events say about the Telegram account
behind a session (revoked, banned, restricted, flood-limited, active again), announced as
``mtproto.account_status_changed`` once per change for the CRM and analytics to show.

:func:`status_after` is the pure decision (event in, status out); :class:`StatusTracker`
remembers the last announced status in ``sessions.account_status`` and announces only a
change, with a compare-and-set so two instances never announce one change twice.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg

from switchboard.events import Event
from switchboard.events.catalog.delivery import DeliveryFailed, DeliverySent
from switchboard.events.catalog.mtproto import (
    AccountStatus,
    AccountStatusChanged,
    BackfillProgressed,
    FloodWaited,
    RevokeReason,
    SessionConnected,
    SessionRevoked,
)
from switchboard.mtproto.ports import (
    AuthKeyUnregisteredError,
    MtprotoClient,
    MtprotoError,
)


async def unauthorized_reason(client: MtprotoClient) -> MtprotoError:
    """Why a connected client is not authorized: ``is_authorized`` says only no, and a
    banned account (USER_DEACTIVATED_BAN) must not be reported as a revoked session."""
    try:
        await client.get_me()
    except MtprotoError as exc:
        # Banned, revoked, duplicated, or a dropped connection (retried, never read as a
        # revocation: a connection lost during the check says nothing of the key).
        return exc
    return AuthKeyUnregisteredError("the session is not authorized")


# Telegram's answers that mean the account itself is limited (spam block, restrictions),
# not the one chat it wrote to.
RESTRICTING = frozenset({"PEER_FLOOD", "USER_RESTRICTED", "USER_BANNED_IN_CHANNEL"})


@dataclass(frozen=True, slots=True)
class Status:
    status: AccountStatus
    reason: str | None = None
    error_code: str | None = None
    until: datetime | None = None


def status_after(
    event: Event, current: AccountStatus | None, until: datetime | None = None
) -> Status | None:
    """The account's status that ``event`` reveals (None: it says nothing new about it);
    ``until`` is when the current flood limit ends."""
    if isinstance(event, SessionRevoked):
        if event.reason is RevokeReason.LOGOUT:
            return None  # the workspace's own doing, not Telegram's verdict
        if event.reason is RevokeReason.USER_DEACTIVATED:
            return Status(AccountStatus.BANNED, "Telegram deactivated or banned the account",
                          event.error_code)  # fmt: skip
        return Status(AccountStatus.SESSION_REVOKED,
                      f"the session was revoked ({event.reason.value}); log in again",
                      event.error_code)  # fmt: skip
    if isinstance(event, FloodWaited) and event.action == "deferred":
        return Status(
            AccountStatus.FLOOD_LIMITED,
            f"Telegram asks to wait {event.seconds} s on {event.operation}",
            f"FLOOD_WAIT_{event.seconds}",
            event.resume_at,
        )
    if isinstance(event, DeliveryFailed) and event.error_code in RESTRICTING:
        return Status(AccountStatus.RESTRICTED, event.reason, event.error_code)
    if isinstance(event, SessionConnected):
        if current is AccountStatus.RESTRICTED:
            return None  # a reconnect does not lift a restriction; a delivered send does
        if current is AccountStatus.FLOOD_LIMITED and until is not None and event.at < until:
            return None  # nor a flood wait that still holds
        return Status(AccountStatus.ACTIVE)
    if isinstance(event, DeliverySent):
        return Status(AccountStatus.ACTIVE)
    if isinstance(event, BackfillProgressed) and current is AccountStatus.FLOOD_LIMITED:
        return Status(AccountStatus.ACTIVE)  # the deferred work goes on again
    return None


Emit = Callable[[Event], Awaitable[object]]


class StatusTracker:
    """Announces one session's status changes."""

    def __init__(self, pool: asyncpg.Pool, session_id: str, emit: Emit) -> None:
        self.pool = pool
        self.session_id = session_id
        self.emit = emit
        self.current: AccountStatus | None = None
        self.until: datetime | None = None  # when the current flood limit ends
        self.loaded = False

    async def observe(self, event: Event) -> None:
        """Look at an event the session's runner published; announce a change it reveals."""
        if not self.loaded:
            value = await self.pool.fetchval(
                "SELECT account_status FROM sessions WHERE session_id = $1", self.session_id
            )
            self.current = AccountStatus(value) if value else None
            self.loaded = True
        found = status_after(event, self.current, self.until)
        if found is None or found.status is self.current:
            return
        changed = await self.pool.fetchval(
            """UPDATE sessions SET account_status = $2 WHERE session_id = $1
                   AND account_status IS DISTINCT FROM $2 RETURNING true""",
            self.session_id,
            found.status.value,
        )
        self.current, self.until = found.status, found.until
        if not changed:
            return
        at = getattr(event, "at", None)
        await self.emit(
            AccountStatusChanged(
                session_id=self.session_id,
                at=at if isinstance(at, datetime) else datetime.now(UTC),
                status=found.status,
                reason=found.reason,
                error_code=found.error_code,
                until=found.until,
            )
        )
