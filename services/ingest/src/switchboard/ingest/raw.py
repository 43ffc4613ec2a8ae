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
from switchboard.runtime.bus import (
    EncodedHeaders,
    encode_header_key,
    encode_header_value,
    encode_headers,
)

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
) -> tuple[str, EncodedHeaders]:
    """Subject and headers of a RAW message, with their encoded block (this runs once per
    webhook): the headers that are the same for every message of an account are encoded
    once (``_constant``), only the id, the times and the trace per message. Encoding all 13
    took 2.3 us of a webhook's CPU, and checking their size 1.1 us more (timeit)."""
    constant, block = _constant(provider, account, source, workspace_id)
    received = format_time(received_at)
    varying = {
        H_ID: raw_id,
        H_MSG_ID: raw_id,
        H_CORRELATION: raw_id,
        H_TIME: received,
        H_RECEIVED_AT: received,
    }
    if traceparent:
        varying[H_TRACEPARENT] = traceparent
    if tracestate:
        varying[H_TRACESTATE] = tracestate
    parts = [block]
    for key, value in varying.items():
        parts += (_VARYING_KEYS[key], encode_header_value(value))
    parts.append(b"\r\n")
    return _subject(provider, account), EncodedHeaders(constant | varying, b"".join(parts))


def _key(name: str) -> bytes:
    key = encode_header_key(name)
    if key is None:
        raise ValueError("a blank header name")
    return key


# the varying headers' names, encoded once
_VARYING_KEYS = {
    name: _key(name)
    for name in (H_ID, H_MSG_ID, H_CORRELATION, H_TIME, H_RECEIVED_AT, H_TRACEPARENT, H_TRACESTATE)
}


@lru_cache(maxsize=4096)
def _constant(
    provider: str, account: str, source: str, workspace_id: str
) -> tuple[dict[str, str], bytes]:
    """An account's constant RAW headers and the start of their block (``NATS/1.0`` and
    theirs, in the dict's order)."""
    headers = {
        H_TYPE: f"switchboard.raw.{provider}.v1",
        H_SOURCE: source,
        H_SPECVERSION: SPECVERSION,
        H_CONTENT_TYPE: JSON,
        H_WORKSPACE: workspace_id,
        H_SUBJECT: account,
        H_ACCOUNT: account,
        H_PROVIDER: provider,
    }
    return headers, encode_headers(headers)[:-2]  # without the blank line that ends it


@lru_cache(maxsize=4096)
def _subject(provider: str, account: str) -> str:
    return raw_subject(provider, account)
