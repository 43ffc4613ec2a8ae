"""What every provider client promises the outbound core: one call per attempt, with a
timeout, and every failure classified so the core knows whether to retry, wait or give up."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from switchboard.events.catalog.outbound import SendMessage
from switchboard.outbound.errors import OutboundServiceError
from switchboard.runtime.accounts import Account
from switchboard.runtime.delivery.provider_failures import ProviderFailure, ProviderFault

# How a provider call failed: the provider-failure policy's own classes, one enum.
Failure = ProviderFault


class Scope(StrEnum):
    """What a rate-limit answer pauses: the whole account, or one recipient."""

    ACCOUNT = "account"
    RECIPIENT = "recipient"


@dataclass
class ProviderError(OutboundServiceError):
    """A failed provider call, classified."""

    failure: Failure
    code: str
    reason: str
    retry_after: float | None = None
    scope: Scope = Scope.ACCOUNT
    raw: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.code}: {self.reason}"

    @property
    def heard(self) -> bool:
        """Whether the provider answered the call: a refusal is an answer; a call lost on
        the way that may have reached it (``raw["maybe_sent"]``, the transport's) is not."""
        return not self.raw.get("maybe_sent", False)

    def as_failure(self) -> ProviderFailure:
        """What the provider-failure policy decides on."""
        return ProviderFailure(self.failure, self.code, self.reason, self.retry_after)


def timed_out() -> ProviderError:
    """A provider call that did not answer in time: retryable."""
    return ProviderError(
        Failure.RETRYABLE, "timeout", "provider call timed out", raw={"maybe_sent": True}
    )


@dataclass(frozen=True)
class Sent:
    """A provider accepted the message."""

    provider_message_id: str
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def chat_id(self) -> str | None:
        """The chat the provider says the message went to (``raw["chat_id"]``: Telegram's
        numeric id of a ``@username`` recipient, a user account's resolved peer); None when
        its answer names none."""
        value = self.raw.get("chat_id")
        return None if value is None or value == "" else str(value)

    @property
    def chat_type(self) -> str | None:
        """What kind of chat that is (``private``, ``group``, ``supergroup``, ``channel``),
        when the answer says: a post to a channel opens a channel's conversation."""
        value = self.raw.get("chat_type")
        return str(value) if value else None

    @property
    def chat_title(self) -> str | None:
        value = self.raw.get("chat_title")
        return str(value) if value else None


class MessagingClient(Protocol):
    """Sends one ``SendMessage`` through one account (a bot, a number)."""

    channel: str

    async def send(self, account: Account, command: SendMessage) -> Sent: ...
