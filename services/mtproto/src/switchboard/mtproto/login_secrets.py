"""Opening the secrets of login commands from the bus (v2: sealed for the gateway with its
keyring). A secret in the clear (a v1 command) or one that does not open is refused with a
reason, never used, and never written anywhere (the caller erases the command)."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationError

from switchboard.events.catalog.mtproto import (
    ProxyInfo,
    StartLogin,
    SubmitLoginCode,
    SubmitLoginPassword,
)
from switchboard.mtproto.errors import MtprotoServiceError
from switchboard.runtime.crypto import Keyring
from switchboard.runtime.sealing import DecryptError, open_sealed

LoginCommand = StartLogin | SubmitLoginCode | SubmitLoginPassword
PLAINTEXT = (
    "{field} arrived in the clear (a v1 command) and is refused: send {name} v2 with "
    "sealed_{field}, sealed for the gateway (switchboard.runtime.sealing.seal)"
)


class RefusedError(MtprotoServiceError):
    """A login command whose secret is in the clear or does not open."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class StartSecrets:
    api_hash: str | None
    proxy: ProxyInfo | None


def _open(keyring: Keyring, cmd: LoginCommand, field: str, token: str) -> str:
    try:
        return open_sealed(keyring, cmd.name, cmd.session_id, field, token)
    except DecryptError as exc:
        raise RefusedError(f"sealed_{field} does not open: {exc}") from None


def _plain(cmd: LoginCommand, field: str) -> RefusedError:
    return RefusedError(PLAINTEXT.format(field=field, name=cmd.name))


def start_secrets(keyring: Keyring, cmd: StartLogin) -> StartSecrets:
    if cmd.api_hash is not None:
        raise _plain(cmd, "api_hash")
    if cmd.proxy is not None and (cmd.proxy.password or cmd.proxy.secret):
        raise _plain(cmd, "proxy")
    proxy = cmd.proxy
    if cmd.sealed_proxy is not None:
        raw = _open(keyring, cmd, "proxy", cmd.sealed_proxy)
        try:
            proxy = ProxyInfo.model_validate_json(raw)
        except ValidationError:
            raise RefusedError("sealed_proxy does not hold a valid ProxyInfo") from None
    api_hash = None
    if cmd.sealed_api_hash is not None:
        api_hash = _open(keyring, cmd, "api_hash", cmd.sealed_api_hash)
    return StartSecrets(api_hash=api_hash, proxy=proxy)


def code_of(keyring: Keyring, cmd: SubmitLoginCode) -> str:
    if cmd.sealed_code is None:
        raise _plain(cmd, "code")
    code = _open(keyring, cmd, "code", cmd.sealed_code)
    if not code.isdigit() or not 3 <= len(code) <= 10:
        raise RefusedError("sealed_code does not hold a login code (3 to 10 digits)")
    return code


def password_of(keyring: Keyring, cmd: SubmitLoginPassword) -> str:
    if cmd.sealed_password is None:
        raise _plain(cmd, "password")
    password = _open(keyring, cmd, "password", cmd.sealed_password)
    if not 1 <= len(password) <= 256:
        raise RefusedError("sealed_password must hold 1 to 256 characters")
    return password
