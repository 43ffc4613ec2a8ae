"""Verified provider payloads into ``RAW``: the body exactly as received, a deterministic id,
and an envelope in headers. The webhook is answered only after JetStream's ack."""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache

from switchboard.events.envelope import (
    H_CONTENT_TYPE,
    H_CORRELATION,
    H_ID,
    H_MSG_ID,
    H_SOURCE,
    H_SPECVERSION,
    H_SUBJECT,
    H_TIME,
    H_TRACEPARENT,
    H_TRACESTATE,
    H_TYPE,
    H_WORKSPACE,
    JSON,
    SPECVERSION,
    format_time,
)
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
    """Subject and headers of a RAW message (built directly: this runs once per webhook)."""
    received = format_time(received_at)
    headers = {
        H_ID: raw_id,
        H_MSG_ID: raw_id,
        H_TYPE: f"switchboard.raw.{provider}.v1",
        H_SOURCE: source,
        H_SPECVERSION: SPECVERSION,
        H_TIME: received,
        H_CONTENT_TYPE: JSON,
        H_WORKSPACE: workspace_id,
        H_CORRELATION: raw_id,
        H_SUBJECT: account,
        H_RECEIVED_AT: received,
        H_ACCOUNT: account,
        H_PROVIDER: provider,
    }
    if traceparent:
        headers[H_TRACEPARENT] = traceparent
    if tracestate:
        headers[H_TRACESTATE] = tracestate
    return _subject(provider, account), headers


@lru_cache(maxsize=4096)
def _subject(provider: str, account: str) -> str:
    return raw_subject(provider, account)
