"""A composition root's typed dependencies, built once the runtime is up.

Routes are declared when the app is built, before any connection exists. Each service's
``bootstrap`` builds one frozen dataclass holding everything its routes use, complete and
typed, once bus and database are up, and stores it in a ``Wired`` slot; a route reads that
object instead of looking a port up by name, so a missing dependency is a type error, not a
``KeyError`` at the first request.
"""

from __future__ import annotations

from typing import Generic, TypeVar

from switchboard.runtime.errors import SwitchboardRuntimeError

T = TypeVar("T")


class NotStartedError(SwitchboardRuntimeError, RuntimeError):
    """A route ran before its service's dependencies were built (answered 503)."""


class Wired(Generic[T]):
    """The slot for one service's dependencies: set by its start, read by its routes."""

    def __init__(self, service: str) -> None:
        self._service = service
        self._deps: T | None = None

    def set(self, deps: T) -> None:
        """Store the dependencies the start built (a restarted lifespan replaces them)."""
        self._deps = deps

    def __call__(self) -> T:
        """The dependencies; raises ``NotStartedError`` before the service started."""
        if self._deps is None:
            raise NotStartedError(f"{self._service} has not started yet")
        return self._deps
