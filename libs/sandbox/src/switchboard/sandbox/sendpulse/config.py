"""Settings of the SendPulse fake: token lifetime and the per-account request limit."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from switchboard.sandbox.ratelimit import Rule, SlidingWindow, rule_from_json

DEFAULT_TOKEN_TTL = 3600
_LIMIT_NAMES = ("enabled", "account")


@dataclass
class SendPulseLimits:
    """Request limit of the REST API: about 10 requests/s per account (PROTOCOLS.md).

    `account` counts every authenticated API call of one account (token requests are not
    counted); None disables it, as does `enabled = False`.
    """

    enabled: bool = True
    account: Rule | None = field(default_factory=lambda: SlidingWindow(limit=10, window=1.0))

    def to_json(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "account": None if self.account is None else self.account.to_json(),
        }

    def update(self, data: dict[str, Any]) -> None:
        """Apply a partial JSON update (`{"account": {"limit": 5, "window": 1}}`)."""
        unknown = set(data) - set(_LIMIT_NAMES)
        if unknown:
            raise ValueError(f"unknown limit names: {sorted(unknown)}")
        if "enabled" in data:
            self.enabled = bool(data["enabled"])
        if "account" in data:
            self.account = rule_from_json(data["account"])


@dataclass
class SendPulseConfig:
    """Everything configurable about the SendPulse fake.

    `token_ttl`: `expires_in` of new tokens in seconds (per-account overrides win); tokens
    really expire on the sandbox clock. `seed`: seeds the generated email and campaign ids.
    """

    token_ttl: int = DEFAULT_TOKEN_TTL
    limits: SendPulseLimits = field(default_factory=SendPulseLimits)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.token_ttl < 1:
            raise ValueError("token_ttl must be at least 1 second")

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> SendPulseConfig:
        """Build from JSON: `{"token_ttl": 60, "limits": {"account": {"limit": 10}}}`."""
        values = dict(data or {})
        limits = values.pop("limits", None)
        unknown = set(values) - {"token_ttl", "seed"}
        if unknown:
            raise ValueError(f"unknown sendpulse settings: {sorted(unknown)}")
        config = cls(**values)
        if limits:
            config.limits.update(limits)
        return config

    def to_json(self) -> dict[str, Any]:
        return {"token_ttl": self.token_ttl, "seed": self.seed, "limits": self.limits.to_json()}
