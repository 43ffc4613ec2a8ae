"""Encoding models to NATS messages and decoding them back to the latest version."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from switchboard.events.base import Message
from switchboard.events.envelope import DEFAULT_WORKSPACE, Envelope, EnvelopeError
from switchboard.events.errors import CatalogError
from switchboard.events.ids import new_id
from switchboard.events.registry import UnknownMessageError, latest_version, model_for, upcast

_TYPE = re.compile(r"^switchboard\.([a-z0-9_]+\.[a-z0-9_]+)\.v([1-9][0-9]*)$")
# A JSON-escaped NUL (``\u0000``) that is not itself an escaped backslash followed by "u0000".
_NUL = re.compile(rb"(?<!\\)((?:\\\\)*)\\u0000")
_NUL_ESCAPE = b"\\u0000"


def without_nul(body: bytes) -> bytes:
    """Replace every NUL character in a JSON document's strings with U+FFFD.

    Any producer may put U+0000 in a string (a customer's message, a webhook's field), but
    Postgres text and jsonb cannot store it, so an event carrying one would be dead-lettered
    by every projection and the message lost. No channel gives NUL a meaning; consumers see
    the replacement character instead. The check is a byte search, so clean bodies pay
    nothing measurable.
    """
    if _NUL_ESCAPE not in body:
        return body
    return _NUL.sub(rb"\1\\ufffd", body)


class DecodeError(CatalogError, ValueError):
    """A message that cannot become a catalog model; ``reason`` says precisely why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Encoded:
    """What goes on the wire."""

    subject: str
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True, slots=True)
class Decoded:
    """A decoded message with its envelope; ``model`` is always the latest version."""

    envelope: Envelope
    model: Message
    wire_version: int


def encode(
    model: Message,
    *,
    source: str,
    id: str | None = None,
    workspace_id: str = DEFAULT_WORKSPACE,
    correlation_id: str | None = None,
    causation_id: str | None = None,
    time: datetime | None = None,
    traceparent: str | None = None,
    tracestate: str | None = None,
    cause: Envelope | None = None,
    body: bytes | None = None,
) -> Encoded:
    """Encode a model: subject from the model, CloudEvents headers, JSON body.

    The id defaults to the model's deterministic id, then to a random one. With ``cause`` the
    new message inherits correlation, workspace and trace context and names it as causation.
    ``body``, when given, is the model's JSON as the caller made it (a sealed copy of it).
    """
    workspace = cause.workspace_id if cause is not None else workspace_id
    event_id = id or _deterministic(model, workspace) or new_id()
    if cause is not None:
        envelope = cause.caused(
            id=event_id, type=model.type_name(), source=source, subject=model.ce_subject()
        )
    else:
        envelope = Envelope(
            id=event_id,
            type=model.type_name(),
            source=source,
            time=time or datetime.now(UTC),
            subject=model.ce_subject(),
            workspace_id=workspace_id,
            correlation_id=correlation_id,
            causation_id=causation_id,
            traceparent=traceparent,
            tracestate=tracestate,
        )
    if body is None:
        body = model.model_dump_json(exclude_none=True).encode()
    return Encoded(subject=model.subject(), headers=envelope.to_headers(), body=body)


def scoped_id(workspace: str, key: str) -> str:
    """``key`` within ``workspace``: keys callers choose are unique per workspace only, so
    workspace B reusing A's ``message_id`` is a new message for B (and no duplicate for
    JetStream). The default workspace keeps the bare key (ids published before scoping)."""
    return key if workspace == DEFAULT_WORKSPACE else f"{workspace}/{key}"


def _deterministic(model: Message, workspace: str) -> str | None:
    key = model.deterministic_id()
    if key is None or not model.caller_keyed:
        return key
    return scoped_id(workspace, key)


def parse_type(ce_type: str) -> tuple[str, int]:
    """``switchboard.<domain>.<name>.v<N>`` -> (``<domain>.<name>``, N)."""
    match = _TYPE.match(ce_type)
    if match is None:
        raise DecodeError(f"ce-type {ce_type!r} is not switchboard.<domain>.<name>.v<N>")
    return match.group(1), int(match.group(2))


def decode_message(subject: str, headers: dict[str, str] | None, body: bytes) -> Decoded:
    """Decode a NATS message into its envelope and the latest version of its model."""
    try:
        envelope = Envelope.from_headers(headers)
    except EnvelopeError as exc:
        raise DecodeError(str(exc)) from None
    name, version = parse_type(envelope.type)
    body = without_nul(body)
    try:
        cls = model_for(name, version)
    except UnknownMessageError as exc:
        raise DecodeError(str(exc)) from None
    if version == latest_version(name):
        # The common case: no upcasting, so pydantic parses and validates the JSON in one
        # pass (measurably faster than json.loads followed by validation).
        try:
            model = cls.model_validate_json(body)
        except ValidationError as exc:
            kinds = {e["type"] for e in exc.errors()}
            if "json_invalid" in kinds:
                raise DecodeError(f"body of {subject} is not JSON") from None
            if "model_type" in kinds and exc.errors()[0]["loc"] == ():
                raise DecodeError(f"body of {subject} is not a JSON object") from None
            raise DecodeError(
                f"{name} v{version} does not validate: {_first_errors(exc)}"
            ) from None
        return Decoded(envelope=envelope, model=model, wire_version=version)
    try:
        data: Any = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise DecodeError(f"body of {subject} is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise DecodeError(f"body of {subject} is not a JSON object")
    try:
        latest, data = upcast(name, version, data)
        model = model_for(name, latest).model_validate(data)
    except UnknownMessageError as exc:
        raise DecodeError(str(exc)) from None
    except ValidationError as exc:
        raise DecodeError(f"{name} v{version} does not validate: {_first_errors(exc)}") from None
    return Decoded(envelope=envelope, model=model, wire_version=version)


def decode(subject: str, headers: dict[str, str] | None, body: bytes) -> Message:
    """Decode a NATS message to the latest version of its model (upcasters applied)."""
    return decode_message(subject, headers, body).model


def _first_errors(exc: ValidationError, limit: int = 3) -> str:
    parts = []
    for err in exc.errors()[:limit]:
        loc = ".".join(str(p) for p in err["loc"]) or "<root>"
        parts.append(f"{loc}: {err['msg']}")
    more = exc.error_count() - limit
    return "; ".join(parts) + (f" (+{more} more)" if more > 0 else "")
