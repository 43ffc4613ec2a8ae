"""Configuration of a whole sandbox: demo mode, record size and each provider's settings."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from switchboard.sandbox.metacapi.config import MetaCapiConfig
from switchboard.sandbox.mtproto.config import MtprotoConfig
from switchboard.sandbox.mtproto_wire.config import WireConfig
from switchboard.sandbox.sendpulse.config import SendPulseConfig
from switchboard.sandbox.telegram.config import TelegramConfig
from switchboard.sandbox.viber.config import ViberConfig
from switchboard.sandbox.whatsapp.config import WhatsAppConfig


@dataclass
class SandboxConfig:
    """Settings of one sandbox; `demo` registers the dev-stack demo accounts."""

    demo: bool = False
    record_limit: int = 100_000
    telegram: TelegramConfig = field(default_factory=TelegramConfig)
    sendpulse: SendPulseConfig = field(default_factory=SendPulseConfig)
    metacapi: MetaCapiConfig = field(default_factory=MetaCapiConfig)
    whatsapp: WhatsAppConfig = field(default_factory=WhatsAppConfig)
    viber: ViberConfig = field(default_factory=ViberConfig)
    mtproto: MtprotoConfig = field(default_factory=MtprotoConfig)
    mtproto_wire: WireConfig = field(default_factory=WireConfig)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SandboxConfig:
        """Build from JSON: `{"demo": true, "telegram": {"strict_chats": true,
        "limits": {"bot": {"limit": 30, "window": 1}}, "webhook_retry": {"initial": 0.1}}}`."""
        config = cls(
            demo=bool(data.get("demo", False)), record_limit=int(data.get("record_limit", 100_000))
        )
        config.sendpulse = SendPulseConfig.from_dict(data.get("sendpulse"))
        config.metacapi = MetaCapiConfig.from_dict(data.get("metacapi"))
        config.whatsapp = WhatsAppConfig.from_dict(data.get("whatsapp"))
        config.viber = ViberConfig.from_dict(data.get("viber"))
        config.mtproto = MtprotoConfig.from_dict(data.get("mtproto"))
        config.mtproto_wire = WireConfig.from_dict(data.get("mtproto_wire"))
        config.telegram = TelegramConfig.from_dict(data.get("telegram"))
        return config

    @classmethod
    def from_file(cls, path: str | Path) -> SandboxConfig:
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
