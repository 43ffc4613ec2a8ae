"""The login flow over the bus: ``cmd.mtproto.login_*`` commands answered by login events,
the password step and each error included. Codes, passwords and app hashes travel sealed for
the gateway (v2); one in the clear (v1) or one that does not open is refused with a reason
and erased, never dead-lettered with its body; handled commands are erased from the stream,
and no secret is readable in any stream afterwards. Other session commands that cannot
apply are rejected with a reason."""

from __future__ import annotations

from switchboard.events.catalog.mtproto import (
    Logout,
    StartLogin,
    SubmitLoginCode,
    SubmitLoginCodeV1,
    SubmitLoginPassword,
    Subscribe,
)
from switchboard.runtime.bus import Bus
from switchboard.runtime.crypto import Keyring
from switchboard.runtime.dlq import list_dead_letters
from switchboard.runtime.sealing import seal
from switchboard.runtime.testing import eventually

from .mtproto_support import API_HASH, API_ID, raw_messages, sealed, stream, wait_for_event, world

PHONE = "+15552340001"
WS = {"workspace_id": "demo"}


def code(sid: str, value: str) -> SubmitLoginCode:
    return SubmitLoginCode(
        session_id=sid, sealed_code=sealed("mtproto.login_submit_code", sid, "code", value)
    )


def password(sid: str, value: str) -> SubmitLoginPassword:
    return SubmitLoginPassword(
        session_id=sid,
        sealed_password=sealed("mtproto.login_submit_password", sid, "password", value),
    )


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

            await bus.publish(StartLogin(session_id="banned", phone="+15552340002"), **WS)
            await failed("banned", "phone_number_banned")
            await bus.publish(StartLogin(session_id="bad", phone="+12345"), **WS)
            await failed("bad", "phone_number_invalid")
            await bus.publish(code("nobody", "12345"), **WS)
            await failed("nobody", "no_login_in_progress")

            w.fake.add_fault(method="auth.sendCode", error="FLOOD_WAIT", seconds=9, times=1)
            await bus.publish(StartLogin(session_id="linus", phone=PHONE), **WS)
            flood = await wait_for_event(
                nats_url, "mtproto.login_failed", session_id="linus", reason="flood_wait"
            )
            assert flood.model.retry_after_s == 9  # type: ignore[attr-defined]

            hashed = StartLogin(session_id="linus", phone=PHONE, api_id=API_ID,
                                sealed_api_hash=sealed("mtproto.login_start", "linus",
                                                       "api_hash", API_HASH))  # fmt: skip
            await bus.publish(hashed, **WS)
            sent = await wait_for_event(nats_url, "mtproto.login_code_sent", session_id="linus")
            assert sent.envelope.workspace_id == "demo"
            the_code = w.fake.code(PHONE).code
            # Another workspace cannot submit to this login: refused, nothing is tried.
            await bus.publish(code("linus", the_code), workspace_id="other")
            refused = await wait_for_event(nats_url, "mtproto.command_rejected",
                                           session_id="linus")  # fmt: skip
            assert "no session" in refused.model.reason  # type: ignore[attr-defined]
            # A code in the clear (v1) is refused and erased, never used nor dead-lettered.
            await bus.publish(SubmitLoginCodeV1(session_id="linus", code=the_code), **WS)
            await eventually(lambda: _rejected(nats_url, "in the clear"), message="plaintext")
            # Sealed with a key the gateway does not hold, or for another field: refused.
            stranger = Keyring.from_mapping({"x1": bytes(32)})
            foreign = seal(stranger, "mtproto.login_submit_code", "linus", "code", the_code)
            await bus.publish(SubmitLoginCode(session_id="linus", sealed_code=foreign), **WS)
            await eventually(lambda: _rejected(nats_url, "does not open"), message="stranger")
            moved = sealed("mtproto.login_submit_password", "linus", "password", the_code)
            await bus.publish(SubmitLoginCode(session_id="linus", sealed_code=moved), **WS)
            await eventually(lambda: _rejected(nats_url, "does not open", 2), message="moved")

            await bus.publish(password("linus", "early"), **WS)
            await failed("linus", "wrong_step")
            wrong = "00000" if the_code != "00000" else "11111"
            await bus.publish(code("linus", wrong), **WS)
            await failed("linus", "phone_code_invalid")
            await bus.publish(code("linus", the_code), **WS)
            await wait_for_event(nats_url, "mtproto.login_password_needed", session_id="linus")
            await bus.publish(password("linus", "wrong22"), **WS)
            await failed("linus", "password_invalid")
            await bus.publish(password("linus", "hunter22"), **WS)
            ok = await wait_for_event(nats_url, "mtproto.login_succeeded", session_id="linus")
            assert ok.model.user_id == str(user.id)  # type: ignore[attr-defined]
            await wait_for_event(nats_url, "mtproto.session_connected", session_id="linus")

            await bus.publish(StartLogin(session_id="linus", phone=PHONE), **WS)
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
        # And no code, password or app hash is readable in any stream, the DLQ included.
        for name in ("MTPROTO", "DLQ"):
            raw = b"".join(d + str(h).encode() for _, h, d in await raw_messages(nats_url, name))
            # (the code quoted, as a JSON body would hold it: five digits alone may well
            # appear inside a timestamp)
            for secret in (f'"{the_code}"', "hunter22", "wrong22", "s3cret-but-broken", API_HASH):
                assert secret.encode() not in raw, (name, secret)


async def _rejected(nats_url: str, reason: str, at_least: int = 1) -> bool:
    found = [
        d
        for d in await stream(nats_url, "MTPROTO", "mtproto.command_rejected.>")
        if reason in d.model.reason  # type: ignore[attr-defined]
    ]
    return len(found) >= at_least
