"""RPC errors as Telegram names them, with their codes."""

from __future__ import annotations

from typing import Any

from switchboard.sandbox.errors import SandboxError

# Codes of the error names the fake (or an injected fault) can raise; others default to 400.
CODES: dict[str, int] = {
    "AUTH_KEY_DUPLICATED": 406,
    "AUTH_KEY_UNREGISTERED": 401,
    "AUTH_KEY_INVALID": 401,
    "SESSION_REVOKED": 401,
    "SESSION_EXPIRED": 401,
    "SESSION_PASSWORD_NEEDED": 401,
    "USER_DEACTIVATED": 401,
    "USER_DEACTIVATED_BAN": 401,
    "CHAT_WRITE_FORBIDDEN": 403,
    "CHAT_ADMIN_REQUIRED": 403,
    "USER_BANNED_IN_CHANNEL": 403,
    "INTERNAL_SERVER_ERROR": 500,
    "RPC_CALL_FAIL": 500,
}


class RpcError(SandboxError):
    """An MTProto RPC error: `code` (400, 401, 403, 406, 420, 500) and `name`."""

    def __init__(self, name: str, code: int | None = None, seconds: int | None = None) -> None:
        super().__init__(name)
        self.name = name
        self.code = code if code is not None else CODES.get(name, 400)
        self.seconds = seconds

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.name, "code": self.code}
        if self.seconds is not None:
            body["seconds"] = self.seconds
        return body


def flood_wait(seconds: int) -> RpcError:
    """420 FLOOD_WAIT_X (at least 1 s, as Telegram never asks for 0)."""
    seconds = max(1, int(seconds))
    return RpcError(f"FLOOD_WAIT_{seconds}", 420, seconds)
