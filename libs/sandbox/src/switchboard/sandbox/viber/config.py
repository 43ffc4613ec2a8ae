"""Settings of the Viber REST bot API fake: limits, receiver policy, callbacks, retries."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

from switchboard.sandbox.ratelimit import Rule, SlidingWindow, rule_from_json
from switchboard.sandbox.webhooks import RetryPolicy

RETRY_FIELDS = ("initial", "factor", "maximum", "max_attempts", "max_age", "timeout")
RECEIVER_POLICIES = ("auto", "strict")


@dataclass
class ViberLimits:
    """`unreplied`: messages to one user without a reply from them (100 per hour, status 12).

    A message from the user clears the count. `None` disables the rule.
    """

    enabled: bool = True
    unreplied: Rule | None = field(default_factory=lambda: SlidingWindow(limit=100, window=3600.0))

    def to_json(self) -> dict[str, Any]:
        rule = self.unreplied
        return {"enabled": self.enabled, "unreplied": None if rule is None else rule.to_json()}

    def update(self, data: dict[str, Any]) -> None:
        """Apply a partial JSON update (`{"unreplied": {"limit": 5, "window": 3600}}`)."""
        unknown = set(data) - {"enabled", "unreplied"}
        if unknown:
            raise ValueError(f"unknown limit names: {sorted(unknown)}")
        if "enabled" in data:
            self.enabled = bool(data["enabled"])
        if "unreplied" in data:
            self.unreplied = rule_from_json(data["unreplied"])


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
        for name in ("seen_rate", "failed_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")
        if self.delay < 0:
            raise ValueError("delay cannot be negative")

    def to_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _viber_retry() -> RetryPolicy:
    return RetryPolicy(max_age=3600.0)  # "Viber retries callbacks for about an hour"


@dataclass
class ViberConfig:
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

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        """Raise ValueError for settings the fake cannot honour."""
        if self.receivers not in RECEIVER_POLICIES:
            raise ValueError(f"receivers must be one of {', '.join(RECEIVER_POLICIES)}")
        if self.unsubscribed_status not in (5, 6):
            raise ValueError("unsubscribed_status must be 5 or 6")

    def settings_json(self) -> dict[str, Any]:
        """The settings the control API shows (limits have their own route)."""
        plain = ("receivers", "unsubscribed_status", "require_webhook", "require_https_webhook")
        out: dict[str, Any] = {name: getattr(self, name) for name in plain}
        out["max_request_bytes"] = self.max_request_bytes
        out["callbacks"] = self.callbacks.to_json()
        out["webhook_retry"] = {name: getattr(self.webhook_retry, name) for name in RETRY_FIELDS}
        return out

    def update(self, data: dict[str, Any]) -> None:
        """Apply a partial JSON update of settings, limits, callbacks and webhook_retry."""
        plain = {"receivers", "unsubscribed_status", "require_webhook", "require_https_webhook"}
        plain |= {"webhook_check_timeout", "max_request_bytes", "max_sender_name"}
        plain |= {"max_tracking_data", "max_text", "seed"}
        unknown = set(data) - plain - {"limits", "callbacks", "webhook_retry"}
        if unknown:
            raise ValueError(f"unknown viber settings: {sorted(unknown)}")
        candidate = replace(self, **{k: v for k, v in data.items() if k in plain})
        candidate.check()
        for name in plain & set(data):
            setattr(self, name, getattr(candidate, name))
        if isinstance(data.get("limits"), dict):
            self.limits.update(data["limits"])
        if isinstance(data.get("callbacks"), dict):
            self.callbacks = replace(self.callbacks, **data["callbacks"])
        if isinstance(data.get("webhook_retry"), dict):
            retry = {k: v for k, v in data["webhook_retry"].items() if k in RETRY_FIELDS}
            self.webhook_retry = replace(self.webhook_retry, **retry)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> ViberConfig:
        """Build from the `viber` part of a sandbox JSON config."""
        config = cls()
        if data:
            config.update(dict(data))
        return config
