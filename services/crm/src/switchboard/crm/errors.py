"""The CRM service's exceptions under one root, so one ``except CrmServiceError`` catches
everything it raises on purpose. Each keeps the base its meaning has (a builtin, or the
runtime's failure classes) and lives beside the code that raises it.

The tree (``tests/unit/test_exception_roots.py`` checks it against the code)::

    CrmServiceError
    ├── RejectedError         decisions     a command that cannot be applied, with its
    │                                       HTTP status (404, 409, 410, 422)
    ├── NotCreatedYetError    store         an append to a contact its founder has not
    │                                       created yet: retried, never counted
    │                                       (runtime InfrastructureError)
    ├── BadCursorError        queries       a list cursor this API did not make (ValueError)
    ├── SegmentError          campaigns     a segment that cannot make a campaign (ValueError)
    ├── MediaError            media         a download that cannot be served, with its status
    └── DownloadAbortedError  media_stream  a file cut off after its answer began
"""

from __future__ import annotations


class CrmServiceError(Exception):
    """The root of every exception the crm service raises on purpose (tree above)."""
