"""Settings of the SendPulse fake: token lifetime and the per-account request limit."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from switchboard.sandbox.ratelimit import Rule, SlidingWindow
from switchboard.sandbox.settings import ProviderSettings, RuleLimits

DEFAULT_TOKEN_TTL = 3600


@dataclass
class SendPulseLimits(RuleLimits):
    """Request limit of the REST API: about 10 requests/s per account (PROTOCOLS.md).

    `account` counts every authenticated API call of one account (token requests are not
    counted); None disables it, as does `enabled = False`.
    """

    enabled: bool = True
    account: Rule | None = field(default_factory=lambda: SlidingWindow(limit=10, window=1.0))


@dataclass
class SendPulseConfig(ProviderSettings):
    """Everything configurable about the SendPulse fake.

    `token_ttl`: `expires_in` of new tokens in seconds (per-account overrides win); tokens
    really expire on the sandbox clock. `seed`: seeds the generated email and campaign ids.
    """

    LABEL: ClassVar[str] = "sendpulse"
    token_ttl: int = DEFAULT_TOKEN_TTL
    limits: SendPulseLimits = field(default_factory=SendPulseLimits)
    seed: int = 0

    def check(self) -> None:
        """Raise ValueError for settings the fake cannot honour."""
        if self.token_ttl < 1:
            raise ValueError("token_ttl must be at least 1 second")
