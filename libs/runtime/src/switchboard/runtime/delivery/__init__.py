"""Delivery: how messages get from JetStream to a handler, written once for every service.

- :mod:`.pull` — the JetStream pull protocol (batch fetches and a continuous pull), the only
  code that speaks ``$JS.API.CONSUMER.MSG.NEXT``. Workers (``runtime.consumer``),
  projections (``runtime.projection``), outbound lanes and the MTProto gateway's send queue
  all read through it.
- :mod:`.lease` — a single-owner lease on KV revisions that never compares a time written by
  another process with its own clock (MTProto sessions, campaign leaders).

The failure policy the readers apply is :mod:`switchboard.runtime.failures`.
"""
