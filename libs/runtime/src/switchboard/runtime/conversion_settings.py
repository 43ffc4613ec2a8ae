"""How a workspace's Meta pixel account asks for the workspace's lead conversions: its
``settings.conversion_events`` (``stage=EventName[,...]``) and optional currency, action
source and test event code. Read by analytics to decide conversions and by the account
check, so a setting analytics could not read is refused when the account is saved."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from switchboard.events.catalog.outbound import ActionSource
from switchboard.runtime.settings import comma_items

NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


def parse_events(value: Any) -> dict[str, str]:
    """``stage=EventName[,stage=EventName...]`` (or a mapping) as a dict; ValueError when an
    item is not one."""
    if isinstance(value, Mapping):
        pairs = [(str(k), str(v)) for k, v in value.items()]
    else:
        pairs = []
        for item in comma_items(value):
            stage, sep, event = item.partition("=")
            if not sep:
                raise ValueError("must be stage=EventName[,stage=EventName...]")
            pairs.append((stage.strip(), event.strip()))
    for stage, event in pairs:
        if not NAME.match(stage) or not NAME.match(event):
            raise ValueError(f"{stage}={event} is not stage=EventName (letters, digits, _)")
    return dict(pairs)


class PixelConversions(BaseModel):
    """The conversion settings of a ``metacapi`` account; ``conversion_events`` set is what
    makes the pixel its workspace's conversion target."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    conversion_events: dict[str, str] | None = None
    conversion_currency: str | None = Field(None, pattern=r"^[A-Z]{3}$")
    conversion_action_source: ActionSource | None = None
    conversion_test_event_code: str | None = Field(None, min_length=1)

    @field_validator("conversion_events", mode="before")
    @classmethod
    def _events(cls, value: Any) -> dict[str, str] | None:
        if value is None:
            return None
        events = parse_events(value)
        if not events:
            raise ValueError("names no stage: stage=EventName[,stage=EventName...]")
        return events

    @classmethod
    def of(cls, settings: Mapping[str, Any]) -> PixelConversions:
        return cls.model_validate(dict(settings))


def problems(settings: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(settings.<name>, why)`` for each conversion setting that cannot be read."""
    try:
        PixelConversions.of(settings)
    except ValidationError as exc:
        return [
            (f"settings.{'.'.join(str(p) for p in err['loc'])}", err["msg"]) for err in exc.errors()
        ]
    return []
