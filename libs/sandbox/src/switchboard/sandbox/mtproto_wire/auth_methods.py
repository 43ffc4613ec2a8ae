"""Connection set-up and login methods: help.getConfig, auth.*, account.getPassword,
users.getUsers / getFullUser, updates.getState."""

from __future__ import annotations

import hashlib
import os
import time
from typing import Any

from telethon.tl import functions, types

from switchboard.sandbox.mtproto.errors import RpcError
from switchboard.sandbox.mtproto.keys import KeyState
from switchboard.sandbox.mtproto.world import FakeUser
from switchboard.sandbox.mtproto_wire import srp
from switchboard.sandbox.mtproto_wire.convert import user_tl, when
from switchboard.sandbox.mtproto_wire.peers import resolve_user
from switchboard.sandbox.mtproto_wire.rpc import WireCall, handles

CODE_LENGTH = 5


@handles(functions.help.GetConfigRequest)
async def get_config(call: WireCall, request: Any) -> types.Config:
    """A single-DC config pointing at this server, so Telethon never migrates."""
    server = call.server
    now = time.time()
    return types.Config(
        date=when(now),
        expires=when(now + 3600),
        test_mode=False,
        this_dc=server.dc_id,
        dc_options=[types.DcOption(id=server.dc_id, ip_address=server.host, port=server.port)],
        dc_txt_domain_name="",
        chat_size_max=200,
        megagroup_size_max=200_000,
        forwarded_count_max=100,
        online_update_period_ms=210_000,
        offline_blur_timeout_ms=5_000,
        offline_idle_timeout_ms=30_000,
        online_cloud_timeout_ms=300_000,
        notify_cloud_delay_ms=30_000,
        notify_default_delay_ms=1_500,
        push_chat_period_ms=60_000,
        push_chat_limit=2,
        edit_time_limit=172_800,
        revoke_time_limit=2_147_483_647,
        revoke_pm_time_limit=2_147_483_647,
        rating_e_decay=2_419_200,
        stickers_recent_limit=200,
        channels_read_media_period=604_800,
        call_receive_timeout_ms=20_000,
        call_ring_timeout_ms=90_000,
        call_connect_timeout_ms=30_000,
        call_packet_timeout_ms=10_000,
        me_url_prefix="https://t.me/",
        caption_length_max=1024,
        message_length_max=4096,
        webfile_dc_id=server.dc_id,
    )


@handles(functions.updates.GetStateRequest)
async def get_state(call: WireCall, request: Any) -> types.updates.State:
    viewer = call.base.viewer()
    return types.updates.State(
        pts=viewer.box.pts, qts=0, date=when(time.time()), seq=0, unread_count=0
    )


@handles(functions.users.GetUsersRequest)
async def get_users(call: WireCall, request: Any) -> list[types.User]:
    viewer = call.base.viewer()
    world = call.provider.world
    found = []
    for item in request.id:
        try:
            found.append(user_tl(resolve_user(world, viewer, item), viewer))
        except RpcError:
            continue  # Telegram leaves out users it cannot resolve
    return found


@handles(functions.users.GetFullUserRequest)
async def get_full_user(call: WireCall, request: Any) -> types.users.UserFull:
    viewer = call.base.viewer()
    user = resolve_user(call.provider.world, viewer, request.id)
    full = types.UserFull(
        id=user.id,
        settings=types.PeerSettings(),
        notify_settings=types.PeerNotifySettings(),
        common_chats_count=0,
    )
    return types.users.UserFull(full_user=full, chats=[], users=[user_tl(user, viewer)])


@handles(functions.auth.SendCodeRequest, functions.auth.ResendCodeRequest)
async def send_code(call: WireCall, request: Any) -> types.auth.SentCode:
    """A new code (and hash) for the phone; resending needs the current hash."""
    call.base.key.check_alive()
    provider = call.provider
    if isinstance(request, functions.auth.ResendCodeRequest):
        current = provider.login.latest(request.phone_number)
        if current is None or current.phone_code_hash != request.phone_code_hash:
            raise RpcError("PHONE_CODE_EXPIRED")
    sent = provider.login.send_code(provider.world, provider.keys, request.phone_number)
    kind: Any = (
        types.auth.SentCodeTypeApp(length=CODE_LENGTH)
        if sent["type"] == "app"
        else types.auth.SentCodeTypeSms(length=CODE_LENGTH)
    )
    return types.auth.SentCode(
        type=kind, phone_code_hash=sent["phone_code_hash"], timeout=sent["timeout"]
    )


def _authorization(user: FakeUser) -> types.auth.Authorization:
    return types.auth.Authorization(user=user_tl(user, user))


@handles(functions.auth.SignInRequest)
async def sign_in(call: WireCall, request: Any) -> types.auth.Authorization:
    call.base.key.check_alive()
    provider = call.provider
    user = provider.login.sign_in(
        provider.world,
        call.base.key,
        request.phone_number,
        request.phone_code or "",
        request.phone_code_hash,
    )
    return _authorization(user)


def _salts(user: FakeUser) -> tuple[bytes, bytes]:
    """Stable per-account salts, so a verifier computed once serves every login."""
    seed = f"{user.id}:{user.phone}".encode()
    return hashlib.sha256(b"salt1" + seed).digest()[:8], hashlib.sha256(b"salt2" + seed).digest()[
        :16
    ]


@handles(functions.account.GetPasswordRequest)
async def get_password(call: WireCall, request: Any) -> types.account.Password:
    key = call.base.key
    key.check_alive()
    user = call.provider.world.users.get(key.user_id) if key.user_id is not None else None
    unknown = types.PasswordKdfAlgoUnknown()
    secure = types.SecurePasswordKdfAlgoUnknown()
    if (
        user is None
        or not user.password
        or key.state not in (KeyState.PASSWORD, KeyState.AUTHORIZED)
    ):
        return types.account.Password(
            new_algo=unknown, new_secure_algo=secure, secure_random=os.urandom(32)
        )
    salt1, salt2 = _salts(user)
    challenge = srp.SrpChallenge.new(srp.verifier(user.password, salt1, salt2), salt1, salt2)
    call.server.srp[key.key_id] = challenge
    return types.account.Password(
        new_algo=unknown,
        new_secure_algo=secure,
        secure_random=os.urandom(32),
        has_password=True,
        current_algo=srp.algo(salt1, salt2),
        srp_B=challenge.B.to_bytes(256, "big"),
        srp_id=challenge.srp_id,
    )


@handles(functions.auth.CheckPasswordRequest)
async def check_password(call: WireCall, request: Any) -> types.auth.Authorization:
    key = call.base.key
    key.check_alive()
    proof = request.password
    challenge = call.server.srp.pop(key.key_id, None)
    if not isinstance(proof, types.InputCheckPasswordSRP):
        raise RpcError("PASSWORD_HASH_INVALID")
    if challenge is None or challenge.srp_id != proof.srp_id:
        raise RpcError("SRP_ID_INVALID")
    provider = call.provider
    user = provider.login.check_password(
        provider.world, key, proof=lambda _user: challenge.check(proof)
    )
    return _authorization(user)


@handles(functions.auth.LogOutRequest)
async def log_out(call: WireCall, request: Any) -> types.auth.LoggedOut:
    call.base.viewer()
    call.base.key.state = KeyState.LOGGED_OUT
    return types.auth.LoggedOut()
