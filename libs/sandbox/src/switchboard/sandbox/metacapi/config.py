"""Settings of the Meta Conversions API fake: Graph versions, batch size and time windows."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

DAY = 86_400.0
LATEST_VERSION = "v25.0"


@dataclass
class MetaCapiConfig:
    """Everything configurable about the CAPI fake.

    - `versions`: accepted Graph versions (`("v24.0", "v25.0")`); None accepts any `vNN.N`.
    - `latest_version`: named in the "deprecated version" error.
    - `max_events`: events per request (Meta: 1000).
    - `max_event_age`: how old `event_time` may be, in seconds (Meta: 7 days).
    - `max_future`: how far ahead of the sandbox clock `event_time` may be (clock skew
      tolerance; PROTOCOLS.md is silent, 60 s by default).
    - `dedup_window`: seconds in which a repeated (event_name, event_id) is a duplicate
      (Meta: 48 h).
    """

    versions: tuple[str, ...] | None = None
    latest_version: str = LATEST_VERSION
    max_events: int = 1000
    max_event_age: float = 7 * DAY
    max_future: float = 60.0
    dedup_window: float = 2 * DAY

    def __post_init__(self) -> None:
        if self.versions is not None:
            self.versions = tuple(str(v) for v in self.versions)
        if self.max_events < 1:
            raise ValueError("max_events must be at least 1")
        if self.max_event_age <= 0 or self.max_future < 0 or self.dedup_window < 0:
            raise ValueError("time windows must be positive")

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> MetaCapiConfig:
        """Build from JSON: `{"versions": ["v25.0"], "max_future": 300}`."""
        config = cls()
        config.update(dict(data or {}))
        return config

    def update(self, data: dict[str, Any]) -> None:
        """Apply a partial JSON update; unknown names are an error."""
        names = {f.name for f in fields(self)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown metacapi settings: {sorted(unknown)}")
        merged = {**asdict(self), **data}
        versions = merged.get("versions")
        merged["versions"] = None if versions is None else tuple(versions)
        checked = MetaCapiConfig(
            versions=merged["versions"],
            latest_version=str(merged["latest_version"]),
            max_events=int(merged["max_events"]),
            max_event_age=float(merged["max_event_age"]),
            max_future=float(merged["max_future"]),
            dedup_window=float(merged["dedup_window"]),
        )
        for name in names:
            setattr(self, name, getattr(checked, name))

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["versions"] = None if self.versions is None else list(self.versions)
        return out
