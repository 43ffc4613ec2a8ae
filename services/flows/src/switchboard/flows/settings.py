"""Flows settings (``SWITCHBOARD_FLOWS_*``, falling back to ``SWITCHBOARD_*``)."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import NoDecode
from standardwebhooks import Webhook

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
    webhook_secrets: Annotated[dict[str, SecretStr], NoDecode] = Field(
        default_factory=dict,
        description="name=whsec_...[,name=whsec_...]: the Standard Webhooks signing secrets "
        "that webhook steps name in their ``secret``",
    )

    @field_validator("api_keys", mode="before")
    @classmethod
    def _keys(cls, value: Any, info: ValidationInfo) -> dict[str, str]:
        return api_keys_setting(value, info)

    @field_validator("webhook_secrets", mode="before")
    @classmethod
    def _secrets(cls, value: Any) -> dict[str, Any]:
        if isinstance(value, dict):
            return value
        out: dict[str, Any] = {}
        for item in str(value or "").split(","):
            name, sep, secret = item.strip().partition("=")
            if not item.strip():
                continue
            if not sep or not name or not secret.startswith("whsec_"):
                raise ValueError("must be name=whsec_<base64>[,name=whsec_<base64>...]")
            try:
                Webhook(secret)
            except Exception:  # the library's own check of the secret's shape
                raise ValueError(f"the secret of {name!r} is not whsec_<base64>") from None
            out[name] = secret
        return out
