"""Account status events: the pure decision, and the gateway running the real Telethon
adapter against the wire fake announcing active, restricted (PEER_FLOOD), flood-limited
and banned accounts as ``mtproto.account_status_changed``, once per change."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from switchboard.events.catalog.common import Channel
from switchboard.events.catalog.delivery import DeliveryFailed, DeliverySent
from switchboard.events.catalog.mtproto import (
    AccountStatus,
    FloodWaited,
    RevokeReason,
    SessionConnected,
    SessionRevoked,
)
from switchboard.mtproto.status import status_after
from switchboard.runtime.testing import eventually

from .mtproto_support import stream, world

AT = datetime(2026, 1, 1, tzinfo=UTC)


def revoked(reason: RevokeReason) -> SessionRevoked:
    return SessionRevoked(session_id="s", at=AT, reason=reason, error_code="X")


def failed(code: str) -> DeliveryFailed:
    return DeliveryFailed(
        message_id="m", channel=Channel.MTPROTO, account="s", recipient="r", at=AT,
        reason="refused", error_code=code, permanent=True, attempts=1,
    )  # fmt: skip


def test_what_each_event_says_about_the_account() -> None:
    banned = status_after(revoked(RevokeReason.USER_DEACTIVATED), None)
    assert banned is not None
    assert banned.status is AccountStatus.BANNED
    gone = status_after(revoked(RevokeReason.AUTH_KEY_UNREGISTERED), AccountStatus.ACTIVE)
    assert gone is not None
    assert gone.status is AccountStatus.SESSION_REVOKED
    assert status_after(revoked(RevokeReason.LOGOUT), AccountStatus.ACTIVE) is None
    limited = status_after(
        FloodWaited(session_id="s", at=AT, operation="send_message", seconds=600,
                    action="deferred", resume_at=AT + timedelta(seconds=600)),
        AccountStatus.ACTIVE,
    )  # fmt: skip
    assert limited is not None
    assert (limited.status, limited.until) == (
        AccountStatus.FLOOD_LIMITED,
        AT + timedelta(seconds=600),
    )
    held = FloodWaited(session_id="s", at=AT, operation="get_history", seconds=3,
                       action="wait", resume_at=AT)  # fmt: skip
    assert status_after(held, AccountStatus.ACTIVE) is None  # a short wait limits nothing
    restricted = status_after(failed("PEER_FLOOD"), AccountStatus.ACTIVE)
    assert restricted is not None
    assert restricted.status is AccountStatus.RESTRICTED
    assert status_after(failed("CHAT_WRITE_FORBIDDEN"), AccountStatus.ACTIVE) is None
    connected = SessionConnected(session_id="s", at=AT, instance="i")
    assert status_after(connected, AccountStatus.RESTRICTED) is None
    holding = AT + timedelta(seconds=1)
    assert status_after(connected, AccountStatus.FLOOD_LIMITED, holding) is None
    back = status_after(connected, AccountStatus.FLOOD_LIMITED, AT)
    assert back is not None
    assert back.status is AccountStatus.ACTIVE
    sent = DeliverySent(message_id="m", channel=Channel.MTPROTO, account="s", recipient="r",
                        at=AT, provider_message_id="1", attempt=1)  # fmt: skip
    cleared = status_after(sent, AccountStatus.RESTRICTED)
    assert cleared is not None
    assert cleared.status is AccountStatus.ACTIVE


async def _statuses(nats_url: str, session: str) -> list[tuple[str, str | None]]:
    return [
        (d.model.status.value, d.model.error_code)  # type: ignore[attr-defined]
        for d in await stream(nats_url, "MTPROTO")
        if d.model.name == "mtproto.account_status_changed" and d.model.session_id == session  # type: ignore[attr-defined]
    ]


async def test_the_gateway_announces_each_status_change_once(
    nats_url: str, postgres_url: str
) -> None:
    async with world(nats_url, postgres_url) as w:
        fake = w.fake
        seller, _ = fake.add_user("15550303030")
        fake.add_user("15550303031", username="buyer_status")
        issued = w.box.mtproto_wire.issue_session(seller)
        base = await w.gateway(adapter="telethon", instance_id="status", flood_hold_max_s=5)
        await w.import_session(base, "seller", issued["session"])

        async def statuses(n: int) -> list[tuple[str, str | None]] | None:
            found = await _statuses(nats_url, "seller")
            return found if len(found) >= n else None

        async def reached(n: int) -> list[tuple[str, str | None]]:
            async def check() -> list[tuple[str, str | None]] | None:
                return await statuses(n)

            return await eventually(check, timeout=30, message=f"{n} status events")

        assert await reached(1) == [("active", None)]
        async with w.http(base) as http:

            async def send(message_id: str) -> None:
                body = {"message_id": message_id, "peer": "@buyer_status", "text": "offer"}
                r = await http.post("/v1/sessions/seller/messages", json=body)
                assert r.status_code == 202, r.text

            fake.add_fault(method="messages.sendMessage", error="PEER_FLOOD", code=400, times=1)
            await send("m1")
            assert (await reached(2))[1] == ("restricted", "PEER_FLOOD")
            await send("m2")  # delivered: the restriction is over
            assert (await reached(3))[2] == ("active", None)
            fake.add_fault(method="messages.sendMessage", seconds=3600, times=1)
            await send("m3")
            assert (await reached(4))[3] == ("flood_limited", "FLOOD_WAIT_3600")
        fake.ban(seller)
        w.box.mtproto_wire.drop_all()  # the reconnect meets USER_DEACTIVATED_BAN
        assert (await reached(5))[4] == ("banned", "USER_DEACTIVATED_BAN")
        assert len(await _statuses(nats_url, "seller")) == 5  # one event per change
