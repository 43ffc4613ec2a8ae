"""A stock Telethon client against the wire-level MTProto fake: connecting, logging in with
a code and with 2FA, the login errors, sessions saved and reused, revoked and duplicated."""

from __future__ import annotations

import asyncio
import struct

import pytest
from telethon import errors
from telethon.crypto import AuthKey
from telethon.tl import functions

from .mtproto_wire_support import WAIT, WireEnv, wire

__all__ = ["wire"]
PHONE = "15550001111"
PASSWORD = "correct horse battery staple"


async def test_a_fresh_client_connects_and_is_not_signed_in(wire: WireEnv) -> None:
    client = wire.client()
    await asyncio.wait_for(client.connect(), WAIT)
    assert client.is_connected()
    assert await client.is_user_authorized() is False
    assert await client.get_me() is None
    with pytest.raises(errors.AuthKeyUnregisteredError):
        await client(functions.updates.GetStateRequest())
    log = wire.sandbox.mtproto.connection_log()
    assert log["active"] == 1
    assert log["duplicates"] == 0


async def test_login_with_a_code(wire: WireEnv) -> None:
    user, _ = wire.sandbox.mtproto.add_user(PHONE, first_name="Alice", username="alice_w")
    client = wire.client()
    await asyncio.wait_for(client.connect(), WAIT)
    sent = await client.send_code_request(PHONE)
    record = wire.sandbox.mtproto.code(PHONE)
    assert record is not None
    assert sent.phone_code_hash == record.phone_code_hash
    signed = await client.sign_in(PHONE, record.code, phone_code_hash=sent.phone_code_hash)
    assert signed.id == user.id
    me = await client.get_me()
    assert (me.id, me.phone, me.username, me.is_self) == (user.id, PHONE, "alice_w", True)
    assert await client.is_user_authorized() is True


async def test_login_with_code_and_two_step_password(wire: WireEnv) -> None:
    user, _ = wire.sandbox.mtproto.add_user(PHONE, password=PASSWORD)
    client = wire.client()
    await asyncio.wait_for(client.connect(), WAIT)
    sent = await client.send_code_request(PHONE)
    code = wire.sandbox.mtproto.code(PHONE)
    assert code is not None
    with pytest.raises(errors.SessionPasswordNeededError):
        await client.sign_in(PHONE, code.code, phone_code_hash=sent.phone_code_hash)
    with pytest.raises(errors.PasswordHashInvalidError):
        await client.sign_in(password="wrong horse")
    with pytest.raises(errors.SessionPasswordNeededError):
        await client(functions.updates.GetStateRequest())  # still only half signed in
    signed = await client.sign_in(password=PASSWORD)
    assert signed.id == user.id
    assert (await client.get_me()).id == user.id


async def test_a_wrong_code_and_an_expired_code_are_refused(wire: WireEnv) -> None:
    wire.sandbox.mtproto.add_user(PHONE)
    client = wire.client()
    await asyncio.wait_for(client.connect(), WAIT)
    first = await client.send_code_request(PHONE)
    code = wire.sandbox.mtproto.code(PHONE)
    assert code is not None
    wrong = "00000" if code.code != "00000" else "11111"
    with pytest.raises(errors.PhoneCodeInvalidError):
        await client.sign_in(PHONE, wrong, phone_code_hash=first.phone_code_hash)
    # A new code replaces the first: the first hash is expired, as at Telegram.
    second = await client.send_code_request(PHONE)  # Telethon resends: auth.resendCode
    assert second.phone_code_hash != first.phone_code_hash
    with pytest.raises(errors.PhoneCodeExpiredError):
        await client.sign_in(PHONE, code.code, phone_code_hash=first.phone_code_hash)
    assert await client.is_user_authorized() is False


async def test_a_fixed_login_code_from_the_control_api(wire: WireEnv) -> None:
    user, _ = wire.sandbox.mtproto.add_user(PHONE, code="24680")
    client = wire.client()
    await asyncio.wait_for(client.connect(), WAIT)
    sent = await client.send_code_request(PHONE)
    assert (
        await client.sign_in(PHONE, "24680", phone_code_hash=sent.phone_code_hash)
    ).id == user.id


async def test_a_saved_string_session_signs_in_a_new_client(wire: WireEnv) -> None:
    user, _ = wire.sandbox.mtproto.add_user(PHONE, code="13579")
    first = wire.client()
    await asyncio.wait_for(first.connect(), WAIT)
    sent = await first.send_code_request(PHONE)
    await first.sign_in(PHONE, "13579", phone_code_hash=sent.phone_code_hash)
    # Telethon keeps a key with a leading zero byte (1 in 256) without it, and StringSession
    # pads a short key at the end: saved so, it is another key, which the server refuses
    # (-404; services/mtproto's save_session, tested there). Saved as MTProto defines the key.
    first.session.auth_key = AuthKey(first.session.auth_key.key.rjust(256, b"\0"))
    saved = first.session.save()
    await first.disconnect()

    second = wire.client(saved)
    await asyncio.wait_for(second.connect(), WAIT)
    assert (await second.get_me()).id == user.id
    log = wire.sandbox.mtproto.connection_log(user=user)
    assert log["duplicates"] == 0
    assert log["max_concurrent"] == 1


async def test_one_key_on_two_connections_is_auth_key_duplicated(wire: WireEnv) -> None:
    user, _ = wire.sandbox.mtproto.add_user(PHONE)
    issued = wire.sandbox.mtproto_wire.issue_session(user)
    first = wire.client(issued["session"])
    await asyncio.wait_for(first.connect(), WAIT)
    assert (await first.get_me()).id == user.id
    second = wire.client(issued["session"])
    with pytest.raises(errors.AuthKeyDuplicatedError):
        await asyncio.wait_for(second.connect(), WAIT)
    key = wire.sandbox.mtproto.session(issued["key_id"])
    assert key.state.value == "duplicated"  # destroyed for good, as Telegram does
    assert wire.sandbox.mtproto.connection_log(key_id=issued["key_id"])["duplicates"] == 1
    third = wire.client(issued["session"])
    with pytest.raises(errors.AuthKeyDuplicatedError):
        await asyncio.wait_for(third.connect(), WAIT)


async def test_a_revoked_session_gets_session_revoked(wire: WireEnv) -> None:
    user, _ = wire.sandbox.mtproto.add_user(PHONE)
    client = await wire.signed_in(user)
    assert (await client.get_me()).id == user.id
    key_id = wire.sandbox.mtproto.connection_log(user=user)["keys"][0]["key_id"]
    wire.sandbox.mtproto.revoke(key_id)
    with pytest.raises(errors.SessionRevokedError):
        await client(functions.updates.GetStateRequest())


async def test_log_out_unregisters_the_key(wire: WireEnv) -> None:
    user, _ = wire.sandbox.mtproto.add_user(PHONE)
    issued = wire.sandbox.mtproto_wire.issue_session(user)
    client = wire.client(issued["session"])
    await asyncio.wait_for(client.connect(), WAIT)
    assert await client.log_out() is True
    assert wire.sandbox.mtproto.session(issued["key_id"]).state.value == "logged_out"


async def test_an_unknown_auth_key_makes_the_client_start_over(wire: WireEnv) -> None:
    user, _ = wire.sandbox.mtproto.add_user(PHONE)
    client = await wire.signed_in(user)
    saved = client.session.save()
    await client.disconnect()
    await wire.sandbox.reset()  # the fake forgets every key, as after a key destruction
    stale = wire.client(saved)
    with pytest.raises(errors.AuthKeyNotFound):  # the server answered transport error -404
        await asyncio.wait_for(stale.connect(), WAIT)
    # Telethon also fails its `disconnected` future with it; retrieve it, or a garbage
    # collection that logs "exception never retrieved" at a bad moment trips a CPython 3.11
    # bug ("AST constructor recursion depth mismatch") in a later ast.parse.
    with pytest.raises(errors.AuthKeyNotFound):
        await stale.disconnected


async def test_garbage_on_one_connection_closes_only_that_connection(wire: WireEnv) -> None:
    from switchboard.sandbox.mtproto_wire.framing import FullCodec

    descriptor = wire.descriptor
    reader, writer = await asyncio.open_connection(descriptor["host"], descriptor["port"])
    plain = struct.pack("<qqi", 0, 1, 8) + b"\xde\xad\xbe\xef" * 2  # an unknown constructor
    writer.write(FullCodec().encode(plain))
    await writer.drain()
    assert await asyncio.wait_for(reader.read(), WAIT) == b""  # the server hung up
    writer.close()
    client = wire.client()
    await asyncio.wait_for(client.connect(), WAIT)
    assert await client.is_user_authorized() is False


async def test_a_client_with_a_wrong_clock_is_corrected_by_bad_msg_notification(
    wire: WireEnv,
) -> None:
    user, _ = wire.sandbox.mtproto.add_user(PHONE)
    client = wire.client(wire.sandbox.mtproto_wire.issue_session(user)["session"])
    client._sender._state.time_offset = -3600  # the client's clock runs an hour late
    await asyncio.wait_for(client.connect(), WAIT)  # refused (16), corrected, resent
    assert (await client.get_me()).id == user.id
    assert abs(client._sender._state.time_offset) < 60


async def test_ping_delay_disconnect_closes_a_connection_that_stops_pinging(
    wire: WireEnv,
) -> None:
    user, _ = wire.sandbox.mtproto.add_user(PHONE)
    issued = wire.sandbox.mtproto_wire.issue_session(user)
    client = wire.client(issued["session"], auto_reconnect=False)
    await asyncio.wait_for(client.connect(), WAIT)
    pong = await client(functions.PingDelayDisconnectRequest(ping_id=7, disconnect_delay=1))
    assert pong.ping_id == 7
    # No further ping: the server hangs up, so a frozen client cannot hold the key forever.
    gone = asyncio.ensure_future(client.disconnected)
    done, _ = await asyncio.wait({gone}, timeout=WAIT)
    assert gone in done
    assert isinstance(gone.exception(), asyncio.IncompleteReadError)  # the server hung up
    log = wire.sandbox.mtproto.connection_log(key_id=issued["key_id"])
    assert log["active"] == 0
    again = wire.client(issued["session"])
    await asyncio.wait_for(again.connect(), WAIT)  # a new connection is not a duplicate
    assert (await again.get_me()).id == user.id
