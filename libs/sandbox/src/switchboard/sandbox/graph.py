"""Meta's Graph API errors, for the fakes that speak Graph (the WhatsApp Cloud API and the
Conversions API): ``{"error": {"message", "type", "code", ["error_subcode"],
["is_transient"], ["error_user_title"], ["error_user_msg"], ["error_data"], "fbtrace_id"}}``
with the HTTP status of the answer. Each fake words its own errors (``whatsapp.errors``,
``metacapi.errors``); the shape is Graph's, the same for both."""

from __future__ import annotations

import secrets
import string
from dataclasses import KW_ONLY, dataclass
from typing import Any

from switchboard.sandbox.errors import SandboxError

_TRACE_CHARS = string.ascii_letters + string.digits + "_-"


def fbtrace_id() -> str:
    """A Graph-style trace id (27 URL-safe characters; random, only for correlating logs)."""
    return "A" + "".join(secrets.choice(_TRACE_CHARS) for _ in range(26))


@dataclass(eq=False)
class GraphError(SandboxError):
    """A failed Graph call; ``status`` is the HTTP status (400 for client errors). A
    throttled call carries the seconds until it may succeed in ``retry_after``."""

    code: int
    message: str
    _: KW_ONLY
    status: int = 400
    kind: str = "OAuthException"
    subcode: int | None = None
    transient: bool | None = None
    user_title: str | None = None
    user_msg: str | None = None
    data: dict[str, Any] | None = None
    retry_after: int | None = None

    def __post_init__(self) -> None:
        super().__init__(self.user_msg or self.message)

    @property
    def description(self) -> str:
        """What a recorder stores: the specific text when there is one."""
        return self.user_msg or self.message

    def body(self, trace: str | None = None) -> dict[str, Any]:
        """The JSON answer, under ``trace`` (a new trace id when None)."""
        error: dict[str, Any] = {"message": self.message, "type": self.kind, "code": self.code}
        optional = {
            "error_subcode": self.subcode,
            "is_transient": self.transient,
            "error_user_title": self.user_title,
            "error_user_msg": self.user_msg,
            "error_data": self.data,
        }
        error.update((key, value) for key, value in optional.items() if value is not None)
        error["fbtrace_id"] = trace or fbtrace_id()
        return {"error": error}
