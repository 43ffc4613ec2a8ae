"""Settings of the Telegram fake: limits, chat policy, webhook behaviour, size caps."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from switchboard.sandbox.ratelimit import Penalty, Rule, SlidingWindow, TokenBucket
from switchboard.sandbox.settings import ProviderSettings, RuleLimits
from switchboard.sandbox.webhooks import RetryPolicy

MB = 1024 * 1024


@dataclass
class TelegramLimits(RuleLimits):
    """Rate limits of sending methods (None disables one); Bot FAQ values by default.

    `penalty` (off by default, unverified): repeated refusals of a key lengthen its wait.
    """

    enabled: bool = True
    bot: Rule | None = field(default_factory=lambda: SlidingWindow(limit=30, window=1.0))
    private_chat: Rule | None = field(default_factory=lambda: TokenBucket(rate=1.0, burst=3))
    group: Rule | None = field(default_factory=lambda: SlidingWindow(limit=20, window=60.0))
    paid_broadcast: Rule | None = field(
        default_factory=lambda: SlidingWindow(limit=1000, window=1.0)
    )
    penalty: Penalty | None = None


@dataclass
class TelegramConfig(ProviderSettings):
    """Everything configurable about the Telegram fake.

    `strict_chats`: unknown chat ids give "chat not found" instead of being auto-created.
    `require_https_webhook`: enforce Telegram's HTTPS and port rules in setWebhook (off by
    default so local receivers on http://127.0.0.1:<port> work).
    """

    LABEL: ClassVar[str] = "telegram"
    strict_chats: bool = False
    limits: TelegramLimits = field(default_factory=TelegramLimits)
    webhook_retry: RetryPolicy = field(default_factory=RetryPolicy)
    require_https_webhook: bool = False
    max_text: int = 4096
    max_caption: int = 1024
    max_callback_text: int = 200
    max_photo_upload: int = 10 * MB
    max_other_upload: int = 50 * MB
    max_download: int = 20 * MB
    seed: int = 0
