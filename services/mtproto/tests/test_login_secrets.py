"""Opening sealed login secrets, without the bus: the right key, command, session and field
open them; anything else, and any secret in the clear, is refused with a reason."""

from __future__ import annotations

import pytest

from switchboard.events.catalog.mtproto import (
    ProxyInfo,
    StartLogin,
    SubmitLoginCode,
    SubmitLoginPassword,
)
from switchboard.mtproto.login_secrets import (
    RefusedError,
    code_of,
    password_of,
    start_secrets,
)
from switchboard.runtime.crypto import Keyring
from switchboard.runtime.sealing import seal

RING = Keyring.from_mapping({"g1": b"\x01" * 32})
OLD = Keyring.from_mapping({"g0": b"\x02" * 32})


def test_sealed_secrets_open_for_their_command_session_and_field() -> None:
    token = seal(RING, "mtproto.login_submit_code", "s1", "code", "12345")
    cmd = SubmitLoginCode(session_id="s1", sealed_code=token)
    assert code_of(RING, cmd) == "12345"
    pw = seal(RING, "mtproto.login_submit_password", "s1", "password", "correct horse")
    assert password_of(RING, SubmitLoginPassword(session_id="s1", sealed_password=pw)) == (
        "correct horse"
    )
    proxy = ProxyInfo(type="socks5", host="10.0.0.5", port=1080, password="p")
    start = StartLogin(
        session_id="s1",
        phone="+15550001111",
        sealed_api_hash=seal(RING, "mtproto.login_start", "s1", "api_hash", "a" * 32),
        sealed_proxy=seal(RING, "mtproto.login_start", "s1", "proxy", proxy.model_dump_json()),
    )
    opened = start_secrets(RING, start)
    assert opened.api_hash == "a" * 32
    assert opened.proxy == proxy


@pytest.mark.parametrize(
    ("sealed_by", "session", "field", "why"),
    [
        (OLD, "s1", "code", "does not open"),  # a key the gateway does not hold
        (RING, "s2", "code", "does not open"),  # sealed for another session
        (RING, "s1", "password", "does not open"),  # sealed for another field
    ],
)
def test_a_sealed_code_from_elsewhere_is_refused(
    sealed_by: Keyring, session: str, field: str, why: str
) -> None:
    token = seal(sealed_by, "mtproto.login_submit_code", session, field, "12345")
    with pytest.raises(RefusedError, match=why):
        code_of(RING, SubmitLoginCode(session_id="s1", sealed_code=token))


def test_secrets_in_the_clear_are_refused() -> None:
    with pytest.raises(RefusedError, match="in the clear"):
        code_of(RING, SubmitLoginCode(session_id="s1", code="12345"))
    with pytest.raises(RefusedError, match="in the clear"):
        password_of(RING, SubmitLoginPassword(session_id="s1", password="pw"))
    with pytest.raises(RefusedError, match="api_hash"):
        start_secrets(RING, StartLogin(session_id="s1", phone="+15550001111", api_hash="a" * 32))
    leaky = ProxyInfo(type="socks5", host="h", port=1, password="p")
    with pytest.raises(RefusedError, match="proxy"):
        start_secrets(RING, StartLogin(session_id="s1", phone="+15550001111", proxy=leaky))
    # A proxy without credentials may travel as is.
    open_proxy = ProxyInfo(type="socks5", host="h", port=1)
    assert start_secrets(RING, StartLogin(session_id="s1", phone="+15550001111",
                                          proxy=open_proxy)).proxy == open_proxy  # fmt: skip


def test_a_sealed_code_must_still_be_a_code() -> None:
    token = seal(RING, "mtproto.login_submit_code", "s1", "code", "not digits")
    with pytest.raises(RefusedError, match="3 to 10 digits"):
        code_of(RING, SubmitLoginCode(session_id="s1", sealed_code=token))
