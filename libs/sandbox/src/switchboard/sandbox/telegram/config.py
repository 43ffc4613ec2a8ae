"""Settings of the Telegram fake: limits, chat policy, webhook behaviour, size caps."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from switchboard.sandbox.ratelimit import (
    Penalty,
    Rule,
    SlidingWindow,
    TokenBucket,
    penalty_from_json,
    rule_from_json,
)
from switchboard.sandbox.webhooks import RetryPolicy

MB = 1024 * 1024


@dataclass
class TelegramLimits:
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

    def to_json(self) -> dict[str, Any]:
        def rule(value: Rule | None) -> dict[str, Any] | None:
            return None if value is None else value.to_json()

        return {
            "enabled": self.enabled,
            "bot": rule(self.bot),
            "private_chat": rule(self.private_chat),
            "group": rule(self.group),
            "paid_broadcast": rule(self.paid_broadcast),
            "penalty": None if self.penalty is None else self.penalty.to_json(),
        }

    def update(self, data: dict[str, Any]) -> None:
        """Apply a partial JSON update (`{"bot": {"limit": 5, "window": 1}, "group": null}`)."""
        names = {"enabled", "bot", "private_chat", "group", "paid_broadcast", "penalty"}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown limit names: {sorted(unknown)}")
        if "enabled" in data:
            self.enabled = bool(data["enabled"])
        for name in ("bot", "private_chat", "group", "paid_broadcast"):
            if name in data:
                setattr(self, name, rule_from_json(data[name]))
        if "penalty" in data:
            self.penalty = penalty_from_json(data["penalty"])


@dataclass
class TelegramConfig:
    """Everything configurable about the Telegram fake.

    `strict_chats`: unknown chat ids give "chat not found" instead of being auto-created.
    `require_https_webhook`: enforce Telegram's HTTPS and port rules in setWebhook (off by
    default so local receivers on http://127.0.0.1:<port> work).
    """

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
