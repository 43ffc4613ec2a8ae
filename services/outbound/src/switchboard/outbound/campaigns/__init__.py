"""Campaigns: one content to many recipients, fanned out into the bulk lane at the rate the
campaign's accounts permit, with progress, pause / resume / cancel and a completion event.

Where the state lives (all in JetStream; any instance can be killed at any moment):
- ``sends`` KV, ``cmp.<hash>.state``: the campaign (definition, status, batches received);
  ``cmp.<hash>.b.<n>``: recipient batch n; ``cmp.<hash>.cursor``: how far the fan-out got;
  ``cmp.<hash>.failed.<n>``: the sends that failed, by error code (8 shards);
- ``OUTBOUND`` stream: the bulk sends not yet done, on subjects that name the campaign, so
  the stream itself counts what is left (``sent = fanned out - left - failed``);
- ``leases`` KV: which instance leads the campaign (fans out, reports progress, completes
  it); another takes over when the lease runs out.
"""
