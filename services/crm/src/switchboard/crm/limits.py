"""What one contact change may hold. A change becomes one event, its personal fields sealed
(base64: a third more); at these limits the largest is about half of NATS's default 1 MB
``max_payload``, so a change the API or the bus accepts can always be stored. The catalog's
``crm.update_contact.v1`` keeps no limits (tightening a published schema would break its
producers): the API validates them on the request, the decision on every command."""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

NAME_MAX = 1_000
PHONE_MAX = 64
NOTE_MAX = 65_536
TAG_MAX = 100
TAGS_MAX = 100
ATTRIBUTES_MAX_BYTES = 65_536
Tag = Annotated[str, Field(max_length=TAG_MAX)]


class ContactRequest(BaseModel):
    """The changes to a contact a caller may ask for, within the limits."""

    model_config = ConfigDict(extra="ignore")

    display_name: str | None = Field(None, max_length=NAME_MAX)
    phone: str | None = Field(None, max_length=PHONE_MAX)
    attributes: dict[str, Any] = Field(
        default_factory=dict, description=f"at most {ATTRIBUTES_MAX_BYTES} bytes as JSON"
    )
    tags_added: tuple[Tag, ...] = Field((), max_length=TAGS_MAX)
    tags_removed: tuple[Tag, ...] = Field((), max_length=TAGS_MAX)
    note: str | None = Field(None, max_length=NOTE_MAX)

    @field_validator("attributes")
    @classmethod
    def _attributes_fit(cls, value: dict[str, Any]) -> dict[str, Any]:
        size = len(json.dumps(value, ensure_ascii=False, default=str).encode())
        if size > ATTRIBUTES_MAX_BYTES:
            raise ValueError(f"attributes are {size} bytes as JSON, over {ATTRIBUTES_MAX_BYTES}")
        return value


def over_limits(changes: dict[str, Any]) -> str | None:
    """Why ``changes`` (a contact change's fields) are beyond the limits, naming the first
    field; None when they are within. Pure."""
    try:
        ContactRequest.model_validate(changes)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"])
        return f"{field}: {first['msg']}"
    return None
