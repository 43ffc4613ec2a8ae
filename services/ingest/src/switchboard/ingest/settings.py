"""Ingest settings (``SWITCHBOARD_INGEST_*``, falling back to ``SWITCHBOARD_*``)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, SecretStr, field_validator

from switchboard.runtime.settings import ServiceSettings, parse_keyring


class IngestSettings(ServiceSettings):
    service: ClassVar[str] = "ingest"

    http_port: int = Field(8080, ge=0, le=65535)
    encryption_keys: SecretStr = Field(
        description="id:base64key[,id:base64key]: decrypts account secrets; first is active"
    )
    admin_token: SecretStr | None = None
    max_body_bytes: int = Field(1024 * 1024, ge=1024)
    publish_timeout_s: float = Field(5.0, gt=0)
    public_url: str | None = Field(
        None, description="how providers reach this service, e.g. https://hooks.example.com"
    )
    telegram_api_url: str = "https://api.telegram.org"
    viber_api_url: str = "https://chatapi.viber.com"
    inbound_rate_per_account: float = Field(1000.0, gt=0, description="webhooks/s per instance")
    inbound_burst_per_account: float = Field(2000.0, ge=1)
    normalizer: bool = Field(True, description="run the raw -> conv normalizer in this process")
    normalizer_concurrency: int = Field(32, ge=1, le=1024)
    probe_interval_s: float = Field(
        300.0, ge=1, description="how often /health/integrations probes each account"
    )

    @field_validator("encryption_keys")
    @classmethod
    def _keys(cls, value: SecretStr) -> SecretStr:
        if not parse_keyring(value.get_secret_value()):
            raise ValueError("needs at least one id:base64key")
        return value
