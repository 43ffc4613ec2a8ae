"""CRM settings (``SWITCHBOARD_CRM_*``, falling back to ``SWITCHBOARD_*``)."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from pydantic import Field, field_validator
from pydantic_settings import NoDecode

from switchboard.runtime.settings import DatabaseSettings, parse_api_keys


class CrmSettings(DatabaseSettings):
    service: ClassVar[str] = "crm"

    http_port: int = Field(8081, ge=0, le=65535)
    api_keys: Annotated[dict[str, str], NoDecode] = Field(
        description="key=workspace[,key=workspace]: read API keys"
    )
    projection_batch: int = Field(500, ge=1, le=10_000)

    @field_validator("api_keys", mode="before")
    @classmethod
    def _keys(cls, value: Any) -> dict[str, str]:
        keys = parse_api_keys(value)
        if not keys:
            raise ValueError("needs at least one key=workspace")
        return keys
