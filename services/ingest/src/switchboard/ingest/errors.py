"""The ingest service's exceptions under one root, so one ``except IngestServiceError``
catches everything it raises on purpose. Each keeps the builtin base its meaning has and
lives beside the code that raises it.

The tree (``tests/unit/test_exception_roots.py`` checks it against the code)::

    IngestServiceError
    ├── RejectedError        webhooks          a webhook answered with a precise 4xx;
    │                                          nothing was published
    ├── BusUnavailableError  webhooks          RAW did not acknowledge in time: 503, the
    │                                          provider retries
    ├── AdminError           admin             an operator request that cannot be done,
    │                                          with its HTTP status
    └── NormalizeError       normalize.base    a payload its provider's normalizer cannot
                                               read: to the DLQ (ValueError)
"""

from __future__ import annotations


class IngestServiceError(Exception):
    """The root of every exception the ingest service raises on purpose (tree above)."""
