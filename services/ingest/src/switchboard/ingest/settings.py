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
    normalizer: bool = Field(True, description="run the raw -> conv normalizer in this process")
    normalizer_concurrency: int = Field(32, ge=1, le=1024)

    @field_validator("encryption_keys")
    @classmethod
    def _keys(cls, value: SecretStr) -> SecretStr:
        if not parse_keyring(value.get_secret_value()):
            raise ValueError("needs at least one id:base64key")
        return value
