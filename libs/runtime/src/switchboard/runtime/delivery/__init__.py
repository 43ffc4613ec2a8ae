"""Delivery: how messages get from JetStream to a handler, written once for every service.

- :mod:`.pull` — the JetStream pull protocol (batch fetches and a continuous pull), the only
  code that speaks ``$JS.API.CONSUMER.MSG.NEXT``. Workers (``runtime.consumer``),
  projections (``runtime.projection``), outbound lanes and the MTProto gateway's send queue
  all read through it.
- :mod:`.lease` — a single-owner lease on KV revisions that never compares a time written by
  another process with its own clock (MTProto sessions, campaign leaders).
- :mod:`.provider_failures` — what a failed call to an outside provider means (permanent,
  rate-limited, retryable -> breaker, pause, backoff, DLQ): one pure ``decide`` that the
  outbound sends, SendPulse commands and CAPI conversions all use.

The failure policy the readers apply is :mod:`switchboard.runtime.failures`.
"""
