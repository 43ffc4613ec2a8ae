"""What the projectors need beyond the connection: where the conversion ledger lives, the
conversion rules, and whether to move the live Prometheus metrics."""

from __future__ import annotations

from dataclasses import dataclass, field

from switchboard.analytics.settings import AnalyticsSettings
from switchboard.events.catalog.outbound import ActionSource

LEDGER_SCHEMA = "analytics"


@dataclass(frozen=True)
class ConversionRules:
    """When a lead reaching a stage becomes a Meta CAPI conversion, and how it is reported."""

    pixel: str
    events: dict[str, str] = field(default_factory=lambda: {"won": "Purchase"})
    currency: str = "USD"
    action_source: ActionSource = "system_generated"
    test_event_code: str | None = None

    @classmethod
    def from_settings(cls, settings: AnalyticsSettings) -> ConversionRules | None:
        if not settings.conversions_enabled or settings.conversion_pixel is None:
            return None
        return cls(
            pixel=settings.conversion_pixel,
            events=dict(settings.conversion_events),
            currency=settings.conversion_currency,
            action_source=settings.conversion_action_source,
            test_event_code=settings.conversion_test_event_code,
        )


@dataclass(frozen=True)
class Context:
    rules: ConversionRules | None = None
    ledger_schema: str = LEDGER_SCHEMA
    observe: bool = True
