"""Flows settings (``SWITCHBOARD_FLOWS_*``, falling back to ``SWITCHBOARD_*``)."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from pydantic import Field, field_validator
from pydantic_settings import NoDecode

from switchboard.runtime.settings import ServiceSettings, parse_api_keys


class FlowsSettings(ServiceSettings):
    service: ClassVar[str] = "flows"

    http_port: int = Field(8085, ge=0, le=65535)
    api_keys: Annotated[dict[str, str], NoDecode] = Field(
        description="key=workspace[,key=workspace]: API keys of the flows API"
    )
    concurrency: int = Field(32, ge=1, le=1024, description="inputs handled at once")

    @field_validator("api_keys", mode="before")
    @classmethod
    def _keys(cls, value: Any) -> dict[str, str]:
        keys = parse_api_keys(value)
        if not keys:
            raise ValueError("needs at least one key=workspace")
        return keys
