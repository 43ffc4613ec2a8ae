"""Settings of the Viber REST bot API fake: limits, receiver policy, callbacks, retries."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from switchboard.sandbox.ratelimit import Rule, SlidingWindow
from switchboard.sandbox.settings import (
    ProviderSettings,
    RuleLimits,
    check_fractions,
    check_not_negative,
)
from switchboard.sandbox.webhooks import RetryPolicy

RECEIVER_POLICIES = ("auto", "strict")


@dataclass
class ViberLimits(RuleLimits):
    """`unreplied`: messages to one user without a reply from them (100 per hour, status 12).

    A message from the user clears the count. `None` disables the rule.
    """

    enabled: bool = True
    unreplied: Rule | None = field(default_factory=lambda: SlidingWindow(limit=100, window=3600.0))


@dataclass
class CallbackSettings:
    """Which callbacks follow an accepted send_message.

    `delivered`/`seen` switch each on; `seen_rate` is the share of delivered messages that
    are also seen; `failed_rate` turns that share of sends into one `failed` callback.
    `delay` seconds (real time) pass between callbacks; 0 queues them at once.
    """

    delivered: bool = True
    seen: bool = True
    seen_rate: float = 1.0
    failed_rate: float = 0.0
    delay: float = 0.0

    def __post_init__(self) -> None:
        check_fractions(self, "seen_rate", "failed_rate")
        check_not_negative(self, "delay")


def _viber_retry() -> RetryPolicy:
    return RetryPolicy(max_age=3600.0)  # "Viber retries callbacks for about an hour"


@dataclass
class ViberConfig(ProviderSettings):
    """Everything configurable about the Viber fake.

    - `receivers`: "auto" (default) creates unknown receivers as subscribed users;
      "strict" answers unknown ids with status 5 receiverNotRegistered. Users who
      unsubscribed always get `unsubscribed_status` (6 receiverNotSubscribed; PROTOCOLS.md
      marks 5 and 6 as unverified, so both are configurable).
    - `require_webhook`: send_message before set_webhook gives status 10 webhookNotSet
      (Viber's documented rule; off by default for convenience).
    - `require_https_webhook`: set_webhook accepts only https URLs, as Viber does (off so
      local receivers work).
    """

    LABEL: ClassVar[str] = "viber"
    limits: ViberLimits = field(default_factory=ViberLimits)
    callbacks: CallbackSettings = field(default_factory=CallbackSettings)
    webhook_retry: RetryPolicy = field(default_factory=_viber_retry)
    receivers: str = "auto"
    unsubscribed_status: int = 6
    require_webhook: bool = False
    require_https_webhook: bool = False
    webhook_check_timeout: float = 10.0
    max_request_bytes: int = 30 * 1024
    max_sender_name: int = 28
    max_tracking_data: int = 4000
    max_text: int = 7000
    seed: int = 0

    def check(self) -> None:
        """Raise ValueError for settings the fake cannot honour."""
        if self.receivers not in RECEIVER_POLICIES:
            raise ValueError(f"receivers must be one of {', '.join(RECEIVER_POLICIES)}")
        if self.unsubscribed_status not in (5, 6):
            raise ValueError("unsubscribed_status must be 5 or 6")
