"""What every provider normalizer shares: the error, the signature, and the readers that
take one field of a provider's JSON and name its path when it is not what it must be."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Protocol

from pydantic import ValidationError

from switchboard.events import Event
from switchboard.ingest.errors import IngestServiceError


class NormalizeError(IngestServiceError, ValueError):
    """The payload is not one this provider's normalizer can read (it goes to the DLQ)."""


class Normalizer(Protocol):
    """A pure function from one verified provider payload to conversation/delivery events."""

    def __call__(
        self, payload: Any, /, *, account: str, raw_id: str, received_at: datetime
    ) -> list[Event]: ...


@contextmanager
def reading(where: str, *, prefix_own: bool = False) -> Iterator[None]:
    """Turn a model's validation failure (or a stray lookup error) into a NormalizeError
    that names ``where``; with ``prefix_own`` the readers' own errors get the name too
    (when their paths do not already say where they are)."""
    try:
        yield
    except NormalizeError as exc:
        if not prefix_own:
            raise
        raise NormalizeError(f"{where}: {exc}") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"]) or "<root>"
        raise NormalizeError(f"{where}: {loc}: {first['msg']}") from None
    except (KeyError, TypeError, ValueError) as exc:
        raise NormalizeError(f"{where}: malformed: {exc!r}") from None


def as_obj(value: Any, where: str) -> dict[str, Any]:
    """A JSON object."""
    if not isinstance(value, dict):
        raise NormalizeError(f"{where} is missing or not an object")
    return value


def as_list(value: Any, where: str) -> list[Any]:
    """A JSON array (possibly empty)."""
    if not isinstance(value, list):
        raise NormalizeError(f"{where} is not a list")
    return value


def as_str(value: Any, where: str, *, empty: bool = False) -> str:
    """A string, non-empty unless ``empty``."""
    if not isinstance(value, str) or (not value and not empty):
        raise NormalizeError(f"{where} is missing or not a non-empty string")
    return value


def as_opt_str(value: Any, where: str) -> str | None:
    """A string if present; an empty one counts as absent."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise NormalizeError(f"{where} is not a string")
    return value or None


# Telegram's ids have at most 52 significant bits (the Bot API's words); 64 bits is the
# most any provider's integer id takes.
_ID_BITS = 63


def as_int_id(value: Any, where: str) -> str:
    """An integer id as its decimal text. JSON's parser turns an integer past 64 bits into
    a float (orjson), and ``str`` of one is ``1e+40``: two such ids would be one person."""
    if isinstance(value, bool) or not isinstance(value, int) or value.bit_length() > _ID_BITS:
        raise NormalizeError(f"{where} is missing or not an integer id (64 bits at most)")
    return str(value)


def as_number(value: Any, where: str) -> float:
    """A JSON number (never a boolean)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise NormalizeError(f"{where} is missing or not a number")
    return float(value)
