"""The login flow over the bus: ``cmd.mtproto.login_*`` commands answered by login events,
the password step and each error included; commands holding a code or a password are erased
from the stream once handled; other session commands that cannot apply are rejected with a
reason."""

from __future__ import annotations

from switchboard.events.catalog.mtproto import (
    Logout,
    StartLogin,
    SubmitLoginCode,
    SubmitLoginPassword,
    Subscribe,
)
from switchboard.runtime.bus import Bus
from switchboard.runtime.dlq import list_dead_letters
from switchboard.runtime.testing import eventually

from .mtproto_support import stream, wait_for_event, world

PHONE = "+15552340001"


DEMO = {"workspace_id": "demo"}


async def test_login_over_the_bus_with_each_error(nats_url: str, postgres_url: str) -> None:
    async with world(nats_url, postgres_url) as w:
        user, _ = w.fake.add_user(PHONE, first_name="Linus", password="hunter22")
        banned, _ = w.fake.add_user("+15552340002")
        w.fake.ban(banned)
        await w.gateway(instance_id="g1")
        bus = await Bus.connect(nats_url, name="caller")
        try:

            async def failed(sid: str, reason: str) -> None:
                await wait_for_event(
                    nats_url, "mtproto.login_failed", session_id=sid, reason=reason
                )

            await bus.publish(StartLogin(session_id="banned", phone="+15552340002"))
            await failed("banned", "phone_number_banned")
            await bus.publish(StartLogin(session_id="bad", phone="+12345"))
            await failed("bad", "phone_number_invalid")
            await bus.publish(SubmitLoginCode(session_id="nobody", code="12345"))
            await failed("nobody", "no_login_in_progress")

            w.fake.add_fault(method="auth.sendCode", error="FLOOD_WAIT", seconds=9, times=1)
            await bus.publish(StartLogin(session_id="linus", phone=PHONE))
            flood = await wait_for_event(
                nats_url, "mtproto.login_failed", session_id="linus", reason="flood_wait"
            )
            assert flood.model.retry_after_s == 9  # type: ignore[attr-defined]

            await bus.publish(StartLogin(session_id="linus", phone=PHONE), workspace_id="demo")
            sent = await wait_for_event(nats_url, "mtproto.login_code_sent", session_id="linus")
            assert sent.envelope.workspace_id == "demo"
            code = w.fake.code(PHONE).code
            await bus.publish(SubmitLoginPassword(session_id="linus", password="early"), **DEMO)
            await failed("linus", "wrong_step")
            wrong = "00000" if code != "00000" else "11111"
            await bus.publish(SubmitLoginCode(session_id="linus", code=wrong), **DEMO)
            await failed("linus", "phone_code_invalid")
            await bus.publish(SubmitLoginCode(session_id="linus", code=code), **DEMO)
            await wait_for_event(nats_url, "mtproto.login_password_needed", session_id="linus")
            await bus.publish(SubmitLoginPassword(session_id="linus", password="wrong22"), **DEMO)
            await failed("linus", "password_invalid")
            await bus.publish(SubmitLoginPassword(session_id="linus", password="hunter22"), **DEMO)
            ok = await wait_for_event(nats_url, "mtproto.login_succeeded", session_id="linus")
            assert ok.model.user_id == str(user.id)  # type: ignore[attr-defined]
            await wait_for_event(nats_url, "mtproto.session_connected", session_id="linus")

            await bus.publish(StartLogin(session_id="linus", phone=PHONE), **DEMO)
            await failed("linus", "already_authorized")

            # Another workspace's session does not exist for a command: rejected with 404,
            # nothing done (the session stays connected and subscribed to nothing).
            for cmd in (
                Subscribe(session_id="linus", peer="@somewhere"),
                Logout(session_id="linus"),
                StartLogin(session_id="linus", phone=PHONE),
            ):
                await bus.publish(cmd, workspace_id="other")
                refused = await wait_for_event(
                    nats_url, "mtproto.command_rejected", session_id="linus", command=cmd.name
                )
                assert refused.model.status == 404  # type: ignore[attr-defined]
                assert refused.envelope.workspace_id == "other"
            # ... nor may a command open a session in another workspace than its own
            await bus.publish(
                StartLogin(session_id="intruder", phone=PHONE, workspace_id="demo"),
                workspace_id="other",
            )
            await wait_for_event(nats_url, "mtproto.command_rejected", session_id="intruder")

            # A command for a session that does not exist is rejected with the reason.
            await bus.publish(Subscribe(session_id="ghost", peer="@somewhere"))
            rejected = await wait_for_event(
                nats_url, "mtproto.command_rejected", session_id="ghost"
            )
            assert rejected.model.status == 404  # type: ignore[attr-defined]

            # Logout over the bus revokes the session at Telegram and deletes it.
            await bus.publish(Logout(session_id="linus"), **DEMO)
            await wait_for_event(nats_url, "mtproto.session_revoked", session_id="linus")
        finally:
            await bus.close()

        # A login command that does not decode is dead-lettered without its body.
        bus = await Bus.connect(nats_url, name="caller")
        try:
            headers = {
                "ce-id": "bad-1",
                "ce-type": "switchboard.mtproto.login_submit_password.v1",
                "ce-source": "tests",
                "ce-specversion": "1.0",
                "Nats-Msg-Id": "bad-1",
            }
            body = b'{"session_id": "linus", "password": "s3cret-but-broken", "extra": 1}'
            await bus.js.publish("cmd.mtproto.login_submit_password.v1.linus", body,
                                 headers=headers)  # fmt: skip
            letters = await eventually(lambda: list_dead_letters(bus, 10), message="dead letter")
            assert "body removed" in letters[0].reason
            assert letters[0].body == b""
        finally:
            await bus.close()

        # Every handled login command was erased from the stream: no code, no password.
        async def erased() -> bool:
            kept = [d.model.name for d in await stream(nats_url, "MTPROTO", "cmd.mtproto.>")]
            return not any(n.startswith("mtproto.login_") for n in kept)

        await eventually(erased, message="login commands erased")
