"""Flows settings (``SWITCHBOARD_FLOWS_*``, falling back to ``SWITCHBOARD_*``)."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from pydantic import Field, ValidationInfo, field_validator
from pydantic_settings import NoDecode

from switchboard.runtime.settings import ServiceSettings, api_keys_setting


class FlowsSettings(ServiceSettings):
    service: ClassVar[str] = "flows"

    http_port: int = Field(8085, ge=0, le=65535)
    api_keys: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict,
        validate_default=True,
        description="key=workspace[,key=workspace]: development API keys of the flows API "
        "(optional with SWITCHBOARD_API_KEY_PEPPER: stored keys)",
    )
    concurrency: int = Field(32, ge=1, le=1024, description="inputs handled at once")

    @field_validator("api_keys", mode="before")
    @classmethod
    def _keys(cls, value: Any, info: ValidationInfo) -> dict[str, str]:
        return api_keys_setting(value, info)
