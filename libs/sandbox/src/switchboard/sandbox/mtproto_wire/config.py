"""Where the wire-level MTProto fake listens and which DC it claims to be."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class WireConfig:
    """`port` 0 picks a free port (read it from `GET /mtproto/server`); `enabled` false
    keeps the TCP server off."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 0
    dc_id: int = 2

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> WireConfig:
        data = dict(data or {})
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown mtproto_wire settings: {sorted(unknown)}")
        config = cls(
            enabled=bool(data.get("enabled", True)),
            host=str(data.get("host", "127.0.0.1")),
            port=int(data.get("port", 0)),
            dc_id=int(data.get("dc_id", 2)),
        )
        if not 0 <= config.port <= 65535 or not 1 <= config.dc_id <= 5:
            raise ValueError("mtproto_wire port must be 0-65535 and dc_id 1-5")
        return config
