"""The catalog's exceptions under one root, so one ``except CatalogError`` catches everything
``switchboard.events`` raises on purpose; each keeps the builtin base its meaning has.

The tree (``tests/unit/test_exception_roots.py`` checks it against the code)::

    CatalogError
    ├── DecodeError          codec     a message that cannot become a catalog model; its
    │                                  ``reason`` says why (ValueError)
    ├── EnvelopeError        envelope  headers that are not a valid envelope (ValueError)
    └── UnknownMessageError  registry  a (name, version) not in the catalog (LookupError)
"""

from __future__ import annotations


class CatalogError(Exception):
    """The root of every exception the event catalog raises on purpose (tree above)."""
