"""Analytics settings (``SWITCHBOARD_ANALYTICS_*``, falling back to ``SWITCHBOARD_*``)."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from pydantic import Field, ValidationInfo, field_validator
from pydantic_settings import NoDecode

from switchboard.events.catalog.outbound import ActionSource
from switchboard.runtime.conversion_settings import NAME as _NAME
from switchboard.runtime.conversion_settings import parse_events
from switchboard.runtime.settings import ApiKeysSetting, DatabaseSettings


class AnalyticsSettings(DatabaseSettings):
    service: ClassVar[str] = "analytics"

    http_port: int = Field(8084, ge=0, le=65535)
    # Four projections hold a leader-lock connection each and use another to apply; the
    # conversion publisher listens on one; the API and gauges need the rest.
    database_pool_size: int = Field(20, ge=10, le=200)
    api_keys: ApiKeysSetting = Field(
        description="key=workspace[,key=workspace]: read API and dashboard keys"
    )
    projection_batch: int = Field(500, ge=1, le=10_000)
    lead_stages: Annotated[tuple[str, ...], NoDecode] = Field(
        ("new", "contacted", "qualified", "won", "lost"),
        description="comma-separated, in funnel order (the CRM's stages)",
    )
    conversions: bool = Field(
        True, description="false: no conversion is decided (while a ledger is restored)"
    )
    conversion_pixel: str | None = Field(
        None, description="Meta pixel / dataset id (metacapi account); unset: no conversions"
    )
    conversion_events: Annotated[dict[str, str], NoDecode] = Field(
        {"won": "Purchase"},
        description="stage=EventName[,stage=EventName]: which stages report which event",
    )
    conversion_currency: str = Field(
        "USD", pattern=r"^[A-Z]{3}$", description="when a lead has a value but no currency"
    )
    conversion_action_source: ActionSource = "system_generated"
    conversion_test_event_code: str | None = None
    conversion_max_age_s: int = Field(
        7 * 86400 - 3600,
        ge=0,
        description="a stage change older than this decides no conversion (Meta refuses "
        "events over 7 days old; an hour is left for the send); 0: no limit",
    )
    metrics_refresh_s: float = Field(15.0, gt=0, description="how often gauges read Postgres")
    dashboard_idle_s: int = Field(
        1800, ge=60, description="a dashboard sign-in idle this long ends"
    )
    dashboard_session_max_s: int = Field(
        12 * 3600,
        ge=60,
        le=12 * 3600,
        description="a dashboard sign-in ends this long after it began",
    )
    login_attempts_per_ip: int = Field(
        30, ge=1, description="sign-in attempts per address and window"
    )
    login_attempts_per_key: int = Field(10, ge=1, description="sign-in attempts per key and window")
    login_window_s: int = Field(300, ge=10, description="the window of the sign-in attempt limits")

    @field_validator("lead_stages", mode="before")
    @classmethod
    def _stages(cls, value: Any) -> tuple[str, ...]:
        stages = tuple(s.strip() for s in (value.split(",") if isinstance(value, str) else value))
        if not stages or any(not _NAME.match(s) for s in stages):
            raise ValueError("needs comma-separated stage names (letters, digits, _)")
        if len(set(stages)) != len(stages):
            raise ValueError("stage names must be unique")
        return stages

    @field_validator("conversion_events", mode="before")
    @classmethod
    def _events(cls, value: Any) -> dict[str, str]:
        return parse_events(value)

    @field_validator("conversion_events", mode="after")
    @classmethod
    def _mapped_stages_exist(cls, value: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        stages = info.data.get("lead_stages") or ()
        unknown = [s for s in value if s not in stages]
        if unknown:
            raise ValueError(
                f"stage {unknown[0]!r} is not one of the lead stages ({', '.join(stages)})"
            )
        return value

    @property
    def conversions_enabled(self) -> bool:
        """Whether the deployment's pixel reports (workspaces' own pixels need only
        ``conversions``)."""
        return self.conversions and bool(self.conversion_pixel) and bool(self.conversion_events)
