"""CloudEvents 1.0 binary-mode envelope carried in NATS headers (DESIGN §2).

The body is the JSON of the model; every attribute lives in a header so that consumers can
route, dedup and trace without parsing the body.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from switchboard.events.errors import CatalogError

SPECVERSION = "1.0"

H_ID = "ce-id"
H_TYPE = "ce-type"
H_SOURCE = "ce-source"
H_SPECVERSION = "ce-specversion"
H_TIME = "ce-time"
H_SUBJECT = "ce-subject"
H_CONTENT_TYPE = "content-type"
H_TRACEPARENT = "traceparent"
H_TRACESTATE = "tracestate"
H_CORRELATION = "correlation-id"
H_CAUSATION = "causation-id"
H_WORKSPACE = "workspace-id"
H_MSG_ID = "Nats-Msg-Id"

JSON = "application/json"
DEFAULT_WORKSPACE = "default"


class EnvelopeError(CatalogError, ValueError):
    """The headers are not a valid Switchboard envelope."""


@dataclass(frozen=True, slots=True)
class Envelope:
    """The CloudEvents attributes and Switchboard extensions of one message."""

    id: str
    type: str
    source: str
    time: datetime
    subject: str | None = None
    workspace_id: str = DEFAULT_WORKSPACE
    correlation_id: str | None = None
    causation_id: str | None = None
    traceparent: str | None = None
    tracestate: str | None = None
    content_type: str = JSON
    extra: dict[str, str] = field(default_factory=dict)

    def to_headers(self) -> dict[str, str]:
        """The NATS headers; ``Nats-Msg-Id`` equals ``ce-id`` so JetStream dedups retries."""
        headers = {
            H_ID: self.id,
            H_MSG_ID: self.id,
            H_TYPE: self.type,
            H_SOURCE: self.source,
            H_SPECVERSION: SPECVERSION,
            H_TIME: format_time(self.time),
            H_CONTENT_TYPE: self.content_type,
            H_WORKSPACE: self.workspace_id,
            H_CORRELATION: self.correlation_id or self.id,
        }
        optional = {
            H_SUBJECT: self.subject,
            H_CAUSATION: self.causation_id,
            H_TRACEPARENT: self.traceparent,
            H_TRACESTATE: self.tracestate,
        }
        headers.update({k: v for k, v in optional.items() if v})
        headers.update(self.extra)
        return headers

    @classmethod
    def from_headers(cls, headers: dict[str, str] | None) -> Envelope:
        """Read an envelope back; missing required attributes raise :class:`EnvelopeError`."""
        h = {k.lower(): v for k, v in (headers or {}).items()}
        missing = [k for k in (H_ID, H_TYPE, H_SOURCE, H_SPECVERSION) if not h.get(k)]
        if missing:
            raise EnvelopeError(f"missing CloudEvents header(s): {', '.join(missing)}")
        if h[H_SPECVERSION] != SPECVERSION:
            raise EnvelopeError(f"unsupported ce-specversion {h[H_SPECVERSION]!r}")
        return cls(
            id=h[H_ID],
            type=h[H_TYPE],
            source=h[H_SOURCE],
            time=parse_time(h[H_TIME]) if h.get(H_TIME) else datetime.now(UTC),
            subject=h.get(H_SUBJECT),
            workspace_id=h.get(H_WORKSPACE) or DEFAULT_WORKSPACE,
            correlation_id=h.get(H_CORRELATION),
            causation_id=h.get(H_CAUSATION),
            traceparent=h.get(H_TRACEPARENT),
            tracestate=h.get(H_TRACESTATE),
            content_type=h.get(H_CONTENT_TYPE) or JSON,
            extra={k: v for k, v in h.items() if k not in _KNOWN},
        )

    def caused(self, *, id: str, type: str, source: str, subject: str | None = None) -> Envelope:
        """An envelope for a message caused by this one: same correlation, trace and workspace."""
        return replace(
            self,
            id=id,
            type=type,
            source=source,
            time=datetime.now(UTC),
            subject=subject,
            causation_id=self.id,
            correlation_id=self.correlation_id or self.id,
            extra={},
        )


_KNOWN = frozenset(
    {
        H_ID,
        H_TYPE,
        H_SOURCE,
        H_SPECVERSION,
        H_TIME,
        H_SUBJECT,
        H_CONTENT_TYPE,
        H_TRACEPARENT,
        H_TRACESTATE,
        H_CORRELATION,
        H_CAUSATION,
        H_WORKSPACE,
        H_MSG_ID.lower(),
    }
)


def format_time(value: datetime) -> str:
    """RFC 3339 in UTC with microseconds and a ``Z``."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def parse_time(value: str) -> datetime:
    """Parse an RFC 3339 timestamp (``Z`` or offset)."""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise EnvelopeError(f"ce-time {value!r} is not RFC 3339") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
