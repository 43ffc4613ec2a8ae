"""The fingerprint of a command's body: how a service that takes an id from its caller (a
send's ``message_id``) tells a repeat of the same command from another body under the id."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
from pydantic import BaseModel

from switchboard.events.base import Message


def fingerprint(cmd: Message) -> str:
    """The hash of a command's canonical body (its type and fields, keys sorted)."""
    return body_fingerprint(cmd.type_name(), cmd)


def body_fingerprint(kind: str, body: BaseModel) -> str:
    """The hash of a request body of ``kind`` (its fields, keys sorted, unset ones left out)."""
    return canonical_hash([kind, body.model_dump(mode="json", exclude_none=True)])


def canonical_hash(value: Any) -> str:
    """SHA-256 of ``value`` as JSON with sorted keys: equal for equal data, whatever order
    its dicts were built in."""
    return hashlib.sha256(orjson.dumps(value, option=orjson.OPT_SORT_KEYS)).hexdigest()


def taken_reason(message_id: str) -> str:
    """What a caller is told when its command's id is taken by another body."""
    return (
        f"message_id {message_id!r} is taken by a command with another body; "
        "send new content under a new message_id"
    )
