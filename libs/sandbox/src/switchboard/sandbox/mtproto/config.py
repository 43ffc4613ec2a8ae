"""Settings of the MTProto fake: login timings and limits, flood slack."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from switchboard.sandbox.settings import check_not_negative


@dataclass
class MtprotoConfig:
    """Everything configurable about the MTProto fake.

    `code_ttl`: seconds a login code stays valid. `flood_grace`: how early a call may come
    before its flood wait ends without being refused. `code_flood_limit` codes (or failed
    sign-ins) per phone within `code_flood_window` seconds before FLOOD_WAIT.
    `max_code_attempts` wrong tries void a code. `seed` makes ids, hashes and codes reproducible.
    """

    code_ttl: float = 300.0
    flood_grace: float = 0.25
    code_flood_limit: int = 5
    code_flood_window: float = 300.0
    max_code_attempts: int = 3
    seed: int = 0

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        if min(self.code_ttl, self.code_flood_window) <= 0:
            raise ValueError("code_ttl and code_flood_window must be > 0")
        check_not_negative(self, "flood_grace")
        if self.code_flood_limit < 1 or self.max_code_attempts < 1:
            raise ValueError("code_flood_limit and max_code_attempts must be >= 1")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def update(self, data: dict[str, Any]) -> None:
        """Apply a partial JSON update; unknown names are refused."""
        known = {f.name: f for f in fields(self)}
        unknown = set(data) - set(known)
        if unknown:
            raise ValueError(f"unknown mtproto settings: {sorted(unknown)}")
        old = self.to_json()
        for name, value in data.items():
            kind = int if known[name].type in ("int", int) else float
            setattr(self, name, kind(value))
        try:
            self.validate()
        except ValueError:
            for name, value in old.items():
                setattr(self, name, value)
            raise

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> MtprotoConfig:
        config = cls()
        config.update(dict(data or {}))
        return config
