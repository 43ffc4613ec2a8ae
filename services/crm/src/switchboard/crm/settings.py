"""CRM settings (``SWITCHBOARD_CRM_*``, falling back to ``SWITCHBOARD_*``)."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from pydantic import Field, field_validator
from pydantic_settings import NoDecode

from switchboard.runtime.objectstore import ObjectStoreSettings
from switchboard.runtime.settings import ApiKeysSetting, DatabaseSettings, KeyringSetting


class CrmSettings(DatabaseSettings):
    service: ClassVar[str] = "crm"

    http_port: int = Field(8081, ge=0, le=65535)
    api_keys: ApiKeysSetting = Field(description="key=workspace[,key=workspace]: read API keys")
    projection_batch: int = Field(500, ge=1, le=10_000)
    rebuild_batch: int = Field(
        10_000,
        ge=1,
        le=50_000,
        description="events per transaction when replaying into fresh tables (a replay "
        "updates each conversation once per batch, so larger batches write less)",
    )
    lead_stages: Annotated[tuple[str, ...], NoDecode] = Field(
        ("new", "contacted", "qualified", "won", "lost"),
        description="comma-separated; the first is where new leads start",
    )
    lead_rule: str = Field(
        "first_private_message",
        pattern="^(first_private_message|first_message_from_new_contact|none)$",
        description="when the resolver opens a contact's first lead: at its first message "
        "in a one-to-one chat (first_private_message; a channel read or a group makes no "
        "leads of its authors and members), at its first message anywhere "
        "(first_message_from_new_contact), or never (none)",
    )
    resolver_concurrency: int = Field(16, ge=1, le=256)
    encryption_keys: KeyringSetting | None = Field(
        None,
        description="decrypts account tokens (same ring as ingest and outbound) so that "
        "received files can be downloaded; unset: the media route answers 503",
    )
    objects: ObjectStoreSettings = Field(
        default_factory=ObjectStoreSettings,
        description="where downloaded files are kept (SWITCHBOARD_OBJECTS__*)",
    )
    media_timeout_s: float = Field(30.0, gt=0, description="timeout of one provider download")
    media_breaker_threshold: int = Field(
        5, ge=1, description="provider failures in a row that open an account's download breaker"
    )
    media_breaker_cooldown_s: float = Field(
        10.0, gt=0, description="how long an open download breaker holds calls before a probe"
    )
    media_private_urls: bool = Field(
        False,
        description="download files a message links to (Viber's media URLs) from addresses "
        "that are not public too (loopback, private, link-local: a local sandbox); off, "
        "whoever can sign a Viber account's webhooks could have the CRM fetch from inside "
        "the network",
    )

    @field_validator("lead_stages", mode="before")
    @classmethod
    def _stages(cls, value: Any) -> tuple[str, ...]:
        stages = tuple(s.strip() for s in (value.split(",") if isinstance(value, str) else value))
        if not stages or any(not s or not s.replace("_", "").isalnum() for s in stages):
            raise ValueError("needs comma-separated stage names (letters, digits, _)")
        if len(set(stages)) != len(stages):
            raise ValueError("stage names must be unique")
        return stages

    @property
    def stages(self) -> tuple[str, ...]:
        return self.lead_stages
