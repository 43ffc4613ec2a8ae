"""Settings of the WhatsApp Cloud API fake: limits, the 24 h window, status webhooks, retries."""

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

WINDOW_MODES = ("sync", "webhook")


@dataclass
class WhatsAppLimits(RuleLimits):
    """Per business number throughput (130429) and per (number, user) pair rate (131056).

    Defaults follow PROTOCOLS.md: 80 messages/s per number, about 1 message per 6 s to the
    same user. `None` disables one rule, `enabled=False` all of them.
    """

    enabled: bool = True
    throughput: Rule | None = field(default_factory=lambda: SlidingWindow(limit=80, window=1.0))
    pair: Rule | None = field(default_factory=lambda: SlidingWindow(limit=1, window=6.0))


@dataclass
class StatusSettings:
    """Which status webhooks follow an accepted send, and how often things go wrong.

    `sent`, `delivered`, `read` switch each stage on; `read_rate` is the share of delivered
    messages that also get `read`. `failure_rate` turns that share of sends into one
    `failed` status with `failure_code` (131026 "undeliverable" by default) instead.
    `delay` seconds (real time) pass between the stages; 0 queues them all at once.
    """

    sent: bool = True
    delivered: bool = True
    read: bool = True
    read_rate: float = 1.0
    failure_rate: float = 0.0
    failure_code: int = 131026
    delay: float = 0.0

    def __post_init__(self) -> None:
        check_fractions(self, "read_rate", "failure_rate")
        check_not_negative(self, "delay")


@dataclass
class WhatsAppConfig(ProviderSettings):
    """Everything configurable about the WhatsApp fake.

    - `window_seconds`: the customer-service window (24 h) opened by a user message.
    - `window_errors`: "sync" answers free-form sends outside the window with 131047 (what
      the issue asks for); "webhook" accepts them and reports 131047 in a `failed` status,
      which is how Meta has behaved since late 2023.
    - `throttle_status`: HTTP status of throughput-type errors (4, 80007, 130429). Meta's
      error table says 400 for every Graph error; PROTOCOLS.md says 429 for code 4, and
      clients key off the Graph `code` either way. Other Graph errors use 400, bad tokens 401.
    - `duplicate_rate`: share of webhook payloads delivered twice (at-least-once delivery).
    - `graph_version_pattern`: accepted `{version}` path segments.
    """

    LABEL: ClassVar[str] = "whatsapp"
    limits: WhatsAppLimits = field(default_factory=WhatsAppLimits)
    statuses: StatusSettings = field(default_factory=StatusSettings)
    webhook_retry: RetryPolicy = field(default_factory=RetryPolicy)
    window_seconds: float = 24 * 3600.0
    window_errors: str = "sync"
    throttle_status: int = 429
    duplicate_rate: float = 0.0
    verify_timeout: float = 10.0
    max_text: int = 4096
    max_caption: int = 1024
    graph_version_pattern: str = r"v\d{1,3}\.\d{1,2}"
    seed: int = 0

    def check(self) -> None:
        """Raise ValueError for settings the fake cannot honour."""
        if self.window_errors not in WINDOW_MODES:
            raise ValueError(f"window_errors must be one of {', '.join(WINDOW_MODES)}")
        check_fractions(self, "duplicate_rate")
        if self.throttle_status not in (400, 429):
            raise ValueError("throttle_status must be 400 or 429")
