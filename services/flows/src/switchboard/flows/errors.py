"""The flows service's exceptions under one root, so one ``except FlowsServiceError`` catches
everything it raises on purpose. Each keeps the builtin base its meaning has.

The tree (``tests/unit/test_exception_roots.py`` checks it against the code)::

    FlowsServiceError
    ├── FlowError            library    a request about a flow that cannot be done, with its
    │                                   HTTP status
    ├── InvalidFlowError     document   a flow document with problems, each with its path
    │                                   (ValueError)
    ├── ContactUnknownError  effects    the CRM has not resolved the customer yet (retried)
    └── WorkspaceBusyError   effects    the workspace's webhook calls hold their share of the
                                        handlers: the input comes again (runtime's
                                        InfrastructureError: never counted)
"""

from __future__ import annotations


class FlowsServiceError(Exception):
    """The root of every exception the flows service raises on purpose (tree above)."""
