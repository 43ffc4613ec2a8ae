"""Verified provider payloads into ``RAW``: the body exactly as received, a deterministic id,
and an envelope in headers. The webhook is answered only after JetStream's ack."""

from __future__ import annotations

from datetime import UTC, datetime

from switchboard.events.envelope import Envelope, format_time
from switchboard.events.subjects import raw_subject

H_RECEIVED_AT = "received-at"
H_ACCOUNT = "sb-account"
H_PROVIDER = "sb-provider"


def raw_envelope(
    *,
    provider: str,
    account: str,
    raw_id: str,
    source: str,
    workspace_id: str,
    received_at: datetime,
    traceparent: str | None = None,
    tracestate: str | None = None,
) -> tuple[str, dict[str, str]]:
    """Subject and headers of a RAW message."""
    envelope = Envelope(
        id=raw_id,
        type=f"switchboard.raw.{provider}.v1",
        source=source,
        time=datetime.now(UTC),
        subject=account,
        workspace_id=workspace_id,
        traceparent=traceparent,
        tracestate=tracestate,
        extra={
            H_RECEIVED_AT: format_time(received_at),
            H_ACCOUNT: account,
            H_PROVIDER: provider,
        },
    )
    return raw_subject(provider, account), envelope.to_headers()
