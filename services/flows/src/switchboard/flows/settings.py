"""Flows settings (``SWITCHBOARD_FLOWS_*``, falling back to ``SWITCHBOARD_*``)."""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import NoDecode
from standardwebhooks import Webhook

from switchboard.flows.document import VAR_NAME
from switchboard.flows.schedules import FIRE_HOP
from switchboard.runtime.schedules import hop_setting
from switchboard.runtime.settings import ApiKeysSetting, ServiceSettings, comma_items


class FlowsSettings(ServiceSettings):
    service: ClassVar[str] = "flows"

    http_port: int = Field(8085, ge=0, le=65535)
    api_keys: ApiKeysSetting = Field(
        description="key=workspace[,key=workspace]: development API keys of the flows API "
        "(optional with SWITCHBOARD_API_KEY_PEPPER: stored keys)",
    )
    concurrency: int = Field(32, ge=1, le=1024, description="inputs handled at once")
    fire_hop_s: float = hop_setting(
        FIRE_HOP, "a schedule trigger's first fire", "FLOW_TIMERS keeps a message 90 days"
    )
    webhook_secrets: Annotated[dict[str, SecretStr], NoDecode] = Field(
        default_factory=dict,
        description="workspace/name=whsec_...[,...]: the Standard Webhooks signing secrets "
        "that webhook steps of that workspace's flows name in their ``secret``",
    )

    webhook_private: bool = Field(
        False,
        description="let webhook steps call addresses that are not public (loopback, "
        "private, link-local): a flow's URL is its author's, so off unless receivers run "
        "inside the network",
    )

    @field_validator("webhook_secrets", mode="before")
    @classmethod
    def _secrets(cls, value: Any) -> dict[str, Any]:
        if isinstance(value, dict):
            return value
        out: dict[str, Any] = {}
        for item in comma_items(value):
            key, sep, secret = item.partition("=")
            workspace, slash, name = key.partition("/")
            if not sep or not secret.startswith("whsec_"):
                raise ValueError("must be workspace/name=whsec_<base64>[,...]")
            if not slash or not workspace or not re.fullmatch(VAR_NAME, name):
                # A secret every workspace could sign with would let one workspace's flow
                # make another's receiver take its payloads as that workspace's.
                raise ValueError(
                    f"{key!r} names no workspace: write <workspace>/<name>=whsec_... "
                    "(a flow signs only with its own workspace's secrets)"
                )
            try:
                Webhook(secret)
            except Exception:  # the library's own check of the secret's shape
                raise ValueError(f"the secret of {key!r} is not whsec_<base64>") from None
            out[key] = secret
        return out

    def webhook_secret(self, workspace: str, name: str) -> SecretStr | None:
        """The signing secret a flow of ``workspace`` names ``name``."""
        return self.webhook_secrets.get(f"{workspace}/{name}")
