"""What every provider client promises the outbound core: one call per attempt, with a
timeout, and every failure classified so the core knows whether to retry, wait or give up."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from switchboard.events.catalog.outbound import SendMessage
from switchboard.runtime.accounts import Account


class Failure(StrEnum):
    RETRYABLE = "retryable"  # 5xx, timeouts, resets: try again with backoff
    RATE_LIMITED = "rate_limited"  # 429-like: wait retry_after, for every instance
    PERMANENT = "permanent"  # bad request, blocked, unknown chat, 24 h window: give up


class Scope(StrEnum):
    """What a rate-limit answer pauses: the whole account, or one recipient."""

    ACCOUNT = "account"
    RECIPIENT = "recipient"


@dataclass
class ProviderError(Exception):
    """A failed provider call, classified."""

    failure: Failure
    code: str
    reason: str
    retry_after: float | None = None
    scope: Scope = Scope.ACCOUNT
    raw: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.code}: {self.reason}"


@dataclass(frozen=True)
class Sent:
    """A provider accepted the message."""

    provider_message_id: str
    raw: dict[str, Any] = field(default_factory=dict)


class MessagingClient(Protocol):
    """Sends one ``SendMessage`` through one account (a bot, a number)."""

    channel: str

    async def send(self, account: Account, command: SendMessage) -> Sent: ...
