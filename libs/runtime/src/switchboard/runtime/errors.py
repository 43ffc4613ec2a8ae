"""The runtime's exceptions under one root, so one ``except SwitchboardRuntimeError`` catches
everything the runtime raises on purpose. Each keeps the builtin base its meaning has (a
``DecryptError`` is still a ``ValueError``), and lives beside the code that raises it.

The tree (``tests/unit/test_exception_roots.py`` checks it against the code)::

    SwitchboardRuntimeError
    ├── InfrastructureError    failures     our bus, a bucket or the database failed, not the
    │   │                                   message: retried without limit, never counted
    │   ├── ConsumerError      delivery.pull   the server ended a pull request (consumer
    │   │                                      gone, leadership change): resubscribe
    │   ├── LeaseLostError     delivery.lease  single ownership lapsed or was taken (also a
    │   │                                      projection whose checkpoint moved): stand by
    │   ├── PlacementPendingError  bus      a cluster cannot place a stream's replicas yet
    │   └── ServerTimeError    servertime   the server's time could not be read yet
    ├── PermanentError         failures     a message that can never be processed: DLQ at once
    ├── ConflictError          aggregates   an aggregate moved since it was read (retry)
    ├── NotFoundError          ownership    not in the caller's workspace (404; LookupError)
    ├── UnknownDurableError    subscribers  a durable the topology does not declare (LookupError)
    ├── NotStartedError        deps         a route ran before its service's dependencies
    │                                       were built (HTTP 503; RuntimeError)
    ├── AlreadyRotatedError    keys         an API key rotated before: one successor (409)
    ├── AuthError              auth         missing or wrong credentials (401)
    ├── ScopeError             auth         a key without the route's scope (403)
    ├── PayloadTooLargeError   bus          over the server's max_payload (ValueError)
    ├── DecryptError           crypto       unknown key or tampered ciphertext (ValueError)
    ├── MigrationError         db           an applied migration changed (RuntimeError)
    ├── BadKeyError            objectstore  an unsafe object key segment (ValueError)
    ├── NotPublicError         addresses    a tenant's URL is not on the public internet
    │                                       (ValueError)
    ├── BodyTooLargeError      app          a request body over the limit (HTTP 413)
    └── ProblemError           http         an error answer raised from a route's helper

Outside the tree on purpose: ``ConfigError`` (settings) is a ``SystemExit``: a wrong
configuration ends start-up with one sentence and is not meant to be caught.
"""

from __future__ import annotations


class SwitchboardRuntimeError(Exception):
    """The root of every exception the runtime raises on purpose (tree above)."""
