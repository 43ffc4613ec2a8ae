"""Outbound settings (``SWITCHBOARD_OUTBOUND_*``, falling back to ``SWITCHBOARD_*``)."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import NoDecode

from switchboard.runtime.settings import ServiceSettings, parse_api_keys, parse_keyring


class OutboundSettings(ServiceSettings):
    service: ClassVar[str] = "outbound"

    http_port: int = Field(8082, ge=0, le=65535)
    encryption_keys: SecretStr = Field(description="decrypts account secrets (same ring as ingest)")
    api_keys: Annotated[dict[str, str], NoDecode] = Field(description="key=workspace[,...]")
    concurrency: int = Field(64, ge=1, le=4096, description="commands in flight per instance")
    max_attempts: int = Field(6, ge=1, le=50)
    backoff_base_s: float = Field(1.0, gt=0)
    backoff_max_s: float = Field(60.0, gt=0)
    call_timeout_s: float = Field(15.0, gt=0)
    breaker_threshold: int = Field(5, ge=1)
    breaker_cooldown_s: float = Field(10.0, gt=0)
    limit_safety_ms: float = Field(2.0, ge=0, description="added to every rate interval")

    @field_validator("api_keys", mode="before")
    @classmethod
    def _keys(cls, value: Any) -> dict[str, str]:
        keys = parse_api_keys(value)
        if not keys:
            raise ValueError("needs at least one key=workspace")
        return keys

    @field_validator("encryption_keys")
    @classmethod
    def _ring(cls, value: SecretStr) -> SecretStr:
        if not parse_keyring(value.get_secret_value()):
            raise ValueError("needs at least one id:base64key")
        return value
