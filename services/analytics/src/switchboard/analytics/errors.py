"""The analytics service's exceptions under one root, so one ``except AnalyticsServiceError``
catches everything it raises on purpose. Each keeps the builtin base its meaning has.

The tree (``tests/unit/test_exception_roots.py`` checks it against the code)::

    AnalyticsServiceError
    └── BadParameterError   params   a query parameter that cannot be used: 400 naming it
                                     (ValueError)
"""

from __future__ import annotations


class AnalyticsServiceError(Exception):
    """The root of every exception the analytics service raises on purpose (tree above)."""
